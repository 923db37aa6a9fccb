"""Exact evaluation metrics on numpy arrays: AUC, logloss, GAUC, session AUC, max F1,
recall@k, per domain."""

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


def max_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """The largest F1 over every threshold t (a row is predicted positive when its score is
    >= t): F1 = 2 TP / (predicted positives + positives), at each distinct score. 0.0 without
    positives."""
    labels = np.asarray(labels).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    s, tp = scores[order], np.cumsum(labels[order])
    ends = np.append(s[1:] != s[:-1], True)  # cut only after a run of equal scores
    predicted = np.arange(1, s.size + 1)
    return float(np.max(2.0 * tp[ends] / (predicted[ends] + n_pos)))


def recall_at_topk(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Multi-class recall@k (TF's recall_at_k, EasyRec's recall_at_topk): the share of rows
    whose label (a class id) is among the k highest of its scores (batch, num_class); ties
    go to the lower class id, as tf.nn.top_k."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"recall_at_topk needs scores of shape (rows, num_class), got "
                         f"{scores.shape}")
    own = scores[np.arange(labels.size), labels][:, None]
    classes = np.arange(scores.shape[1])[None, :]
    rank = np.sum(scores > own, axis=1) + np.sum((scores == own) & (classes < labels[:, None]),
                                                 axis=1)
    return float(np.mean(rank < k))


def mean_absolute_error(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = (np.asarray(a, np.float64).reshape(-1) for a in (labels, predictions))
    return float(np.mean(np.abs(predictions - labels)))


def mean_squared_error(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = (np.asarray(a, np.float64).reshape(-1) for a in (labels, predictions))
    return float(np.mean(np.square(predictions - labels)))


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class accuracy: the share of rows whose most probable class (the first on ties,
    as argmax) is the label."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return float(np.mean(np.argmax(np.asarray(probs), axis=1) == labels))


REGRESSION_METRICS = ("mean_absolute_error", "mean_squared_error", "root_mean_squared_error")


def _binary_scores(probs: np.ndarray) -> np.ndarray:
    """The positive-class score: probs (rows,), or the class-1 column of (rows, 2)."""
    probs = np.asarray(probs)
    return probs[:, 1] if probs.ndim == 2 and probs.shape[1] == 2 else probs


def compute_metrics(labels: np.ndarray, probs: np.ndarray, names: list[str],
                    uids: np.ndarray | None = None, gauc_reduction: str = "mean",
                    sessions: np.ndarray | None = None, session_reduction: str = "mean",
                    topk: int = 5, predictions: np.ndarray | None = None) -> dict[str, float]:
    """The named metrics ('auc', 'logloss', 'gauc', 'session_auc', 'max_f1',
    'recall_at_topk', 'accuracy', 'mean_absolute_error', 'mean_squared_error',
    'root_mean_squared_error') of one tower on one set of rows. The last three compare the
    labels with `predictions` (a regression tower's value; default: probs)."""
    out: dict[str, float] = {"count": float(np.asarray(labels).size)}
    for name in names:
        if name == "auc":
            out["auc"] = auc(labels, probs)
        elif name == "logloss":
            out["logloss"] = logloss(labels, probs)
        elif name == "gauc" and uids is not None:
            out["gauc"] = gauc(labels, probs, uids, gauc_reduction)
        elif name == "session_auc" and sessions is not None:
            # EasyRec's session AUC: the GAUC of the session_id_field
            out["session_auc"] = gauc(labels, _binary_scores(probs), sessions,
                                      session_reduction)
        elif name == "max_f1":
            out["max_f1"] = max_f1(labels, _binary_scores(probs))
        elif name == "recall_at_topk":
            out["recall_at_topk"] = recall_at_topk(labels, probs, topk)
        elif name == "accuracy":
            out["accuracy"] = accuracy(labels, probs)
        elif name in REGRESSION_METRICS:
            values = probs if predictions is None else predictions
            mse = mean_squared_error(labels, values)
            out[name] = {"mean_absolute_error": mean_absolute_error(labels, values),
                         "mean_squared_error": mse,
                         "root_mean_squared_error": float(np.sqrt(mse))}[name]
    return out


def metrics_by_domain(labels: np.ndarray, probs: np.ndarray, domains: np.ndarray,
                      names: list[str], uids: np.ndarray | None = None,
                      gauc_reduction: str = "mean", **kwargs) -> dict[str, dict]:
    """compute_metrics on the rows of each domain value, keyed by the value as text
    (kwargs: compute_metrics' sessions, session_reduction, topk)."""
    labels, domains = (np.asarray(a).reshape(-1) for a in (labels, domains))
    probs = np.asarray(probs)
    probs = probs.reshape(-1) if probs.ndim < 2 else probs
    sessions = kwargs.pop("sessions", None)
    predictions = kwargs.pop("predictions", None)
    out = {}
    for value in np.unique(domains):
        mask = domains == value
        key = value.decode() if isinstance(value, bytes) else str(value)
        out[key] = compute_metrics(labels[mask], probs[mask], names,
                                   None if uids is None else np.asarray(uids)[mask],
                                   gauc_reduction,
                                   None if sessions is None else np.asarray(sessions)[mask],
                                   predictions=None if predictions is None
                                   else np.asarray(predictions)[mask], **kwargs)
    return out
