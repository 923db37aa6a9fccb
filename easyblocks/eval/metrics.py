"""Exact evaluation metrics on numpy arrays: AUC, logloss, GAUC, per domain."""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    Returns nan when only one class is present.
    """
    labels = np.asarray(labels).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # average rank (1-based) of each run of equal scores
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


GAUC_REDUCTIONS = ("mean", "mean_by_sample_num", "mean_by_positive_num")


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray,
         reduction: str = "mean") -> float:
    """Group AUC: the AUC of each group with both classes, averaged over those groups.

    reduction (EasyRec's GAUC.reduction): "mean" weighs every group equally,
    "mean_by_sample_num" by its number of rows, "mean_by_positive_num" by its positives.
    """
    if reduction not in GAUC_REDUCTIONS:
        raise ValueError(f"gauc reduction {reduction!r}: expected one of {GAUC_REDUCTIONS}")
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    order = np.argsort(groups, kind="mergesort")
    g_sorted = groups[order]
    bounds = np.flatnonzero(g_sorted[1:] != g_sorted[:-1]) + 1
    total, weight = 0.0, 0.0
    for idx in np.split(order, bounds):
        value = auc(labels[idx], scores[idx])
        if np.isnan(value):
            continue
        w = {"mean": 1.0, "mean_by_sample_num": float(idx.size),
             "mean_by_positive_num": float(np.sum(labels[idx] > 0.5))}[reduction]
        total += value * w
        weight += w
    return total / weight if weight else float("nan")


def mse(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean squared error (regression towers)."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(np.mean(np.square(np.asarray(predictions, np.float64).reshape(-1) - labels)))


def mae(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean absolute error (regression towers)."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(np.mean(np.abs(np.asarray(predictions, np.float64).reshape(-1) - labels)))


def _why_undefined(name: str, labels: np.ndarray) -> str:
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return "no rows"
    if name in ("auc", "gauc"):
        positives = int((labels > 0.5).sum())
        if name == "gauc":
            return "no group (uid) has both positive and negative labels"
        return f"only one class in the labels (all {1 if positives else 0}): AUC needs both"
    return "not a finite number (the predictions are not finite)"


def compute_metrics(labels: np.ndarray, probs: np.ndarray, names: list[str],
                    uids: np.ndarray | None = None,
                    gauc_reduction: str = "mean") -> dict:
    """The named metrics ('auc', 'logloss', 'gauc'; 'mse', 'mae' for regression) of one tower
    on one set of rows. A metric that is undefined on these rows (AUC with one class) is NaN,
    and "undefined" maps its name to the reason."""
    out: dict = {"count": float(np.asarray(labels).size)}
    for name in names:
        if name == "auc":
            out["auc"] = auc(labels, probs)
        elif name == "logloss":
            out["logloss"] = logloss(labels, probs)
        elif name == "gauc" and uids is not None:
            out["gauc"] = gauc(labels, probs, uids, gauc_reduction)
        elif name == "mse":
            out["mse"] = mse(labels, probs)
        elif name == "mae":
            out["mae"] = mae(labels, probs)
    undefined = {k: _why_undefined(k, labels) for k, v in out.items()
                 if k != "count" and not np.isfinite(v)}
    if undefined:
        out["undefined"] = undefined
    return out


def metric_values(metrics: dict) -> dict[str, float]:
    """The finite metric values of a compute_metrics result (no count, nothing undefined)."""
    return {k: v for k, v in metrics.items() if k not in ("count", "undefined")
            and isinstance(v, float) and np.isfinite(v)}


def strict_json(value):
    """`value` with every NaN or inf float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def metrics_by_domain(labels: np.ndarray, probs: np.ndarray, domains: np.ndarray,
                      names: list[str], uids: np.ndarray | None = None,
                      gauc_reduction: str = "mean") -> dict[str, dict]:
    """compute_metrics on the rows of each domain value, keyed by the value as text."""
    labels, probs, domains = (np.asarray(a).reshape(-1) for a in (labels, probs, domains))
    out = {}
    for value in np.unique(domains):
        mask = domains == value
        key = value.decode() if isinstance(value, bytes) else str(value)
        out[key] = compute_metrics(labels[mask], probs[mask], names,
                                   None if uids is None else np.asarray(uids)[mask],
                                   gauc_reduction)
    return out
