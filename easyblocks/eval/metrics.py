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
    return float(np.mean(np.abs(predictions - labels))) if labels.size else float("nan")


def mean_squared_error(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = (np.asarray(a, np.float64).reshape(-1) for a in (labels, predictions))
    return float(np.mean(np.square(predictions - labels))) if labels.size else float("nan")


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class accuracy: the share of rows whose most probable class (the first on ties,
    as argmax) is the label."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return float(np.mean(np.argmax(np.asarray(probs), axis=1) == labels))


def multiclass_logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Softmax cross-entropy: the mean of -log p(label) over probs (rows, num_class)."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    p = np.asarray(probs, dtype=np.float64)[np.arange(labels.size), labels]
    return float(-np.mean(np.log(np.clip(p, eps, 1.0))))


REGRESSION_METRICS = ("mean_absolute_error", "mean_squared_error", "root_mean_squared_error")
# metrics of one positive score per row: a tower of more than two classes has none
BINARY_METRICS = ("auc", "gauc", "session_auc", "max_f1")


def _binary_scores(probs: np.ndarray) -> np.ndarray | None:
    """The positive-class score: probs (rows,), or the class-1 column of (rows, 2); None for
    more classes."""
    probs = np.asarray(probs)
    if probs.ndim < 2:
        return probs
    return probs[:, 1] if probs.shape[1] == 2 else None


def _why_undefined(name: str, labels: np.ndarray, probs: np.ndarray) -> str:
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return "no rows"
    if name in BINARY_METRICS and _binary_scores(probs) is None:
        return (f"needs a binary tower (num_class 1 or 2); this one has "
                f"{np.asarray(probs).shape[1]} classes")
    if name in ("auc", "gauc", "session_auc"):
        positives = int((labels > 0.5).sum())
        if name == "gauc":
            return "no group (uid) has both positive and negative labels"
        if name == "session_auc":
            return "no session has both positive and negative labels"
        return f"only one class in the labels (all {1 if positives else 0}): AUC needs both"
    return "not a finite number (the predictions are not finite)"


def compute_metrics(labels: np.ndarray, probs: np.ndarray, names: list[str],
                    uids: np.ndarray | None = None, gauc_reduction: str = "mean",
                    sessions: np.ndarray | None = None, session_reduction: str = "mean",
                    topk: int = 5, predictions: np.ndarray | None = None) -> dict:
    """The named metrics ('auc', 'logloss', 'gauc', 'session_auc', 'max_f1',
    'recall_at_topk', 'accuracy', 'mean_absolute_error', 'mean_squared_error',
    'root_mean_squared_error') of one tower on one set of rows. probs: (rows,), or
    (rows, num_class) of a multi-class tower (AUC and the other metrics of one positive score
    take the class-1 column of two classes). The regression metrics compare the labels with
    `predictions` (a regression or ZILN tower's value; default: probs).

    A metric that is undefined on these rows (AUC with one class) is NaN, and "undefined"
    maps its name to the reason.
    """
    out: dict = {"count": float(np.asarray(labels).size)}
    probs = np.asarray(probs)
    binary = _binary_scores(probs)
    for name in names:
        if name in BINARY_METRICS and binary is None:
            out[name] = float("nan")
        elif name == "auc":
            out["auc"] = auc(labels, binary)
        elif name == "logloss":
            out["logloss"] = (logloss(labels, probs) if probs.ndim < 2
                              else multiclass_logloss(labels, probs))
        elif name == "gauc" and uids is not None:
            out["gauc"] = gauc(labels, binary, uids, gauc_reduction)
        elif name == "session_auc" and sessions is not None:
            # EasyRec's session AUC: the GAUC of the session_id_field
            out["session_auc"] = gauc(labels, binary, sessions, session_reduction)
        elif name == "max_f1":
            out["max_f1"] = max_f1(labels, binary)
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
    undefined = {k: _why_undefined(k, labels, probs) for k, v in out.items()
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
