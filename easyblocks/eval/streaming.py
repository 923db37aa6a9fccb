"""Metrics over any number of rows in bounded memory, batch by batch.

`RowsMetrics` keeps a set of rows' labels and predictions exactly while they are few
(up to `exact_rows`) and gives compute_metrics' exact values on them; past that it keeps
fixed-size summaries instead: sums for logloss, accuracy, recall@k and the regression
metrics, and for AUC and max F1 a histogram of the scores per label (`HistogramAUC`).
GAUC and session AUC group rows by a key, so they keep three columns per row (label, score,
group) however many rows: bounded only by the rows evaluated (eval_config.num_examples).
"""

from __future__ import annotations

import numpy as np

from easyblocks.eval import metrics as M

# rows kept exactly (compute_metrics on them) before switching to summaries: about 16 MB of
# labels and scores per set of rows
EXACT_ROWS = 1_000_000
# at most this many distinct score buckets per histogram (about 1.3 MB)
BUCKETS = 1 << 16


def _sortable(scores: np.ndarray) -> np.ndarray:
    """float32 scores as uint32 keys in the same order (equal scores: equal keys)."""
    bits = np.ascontiguousarray(np.asarray(scores, np.float32).reshape(-1)).view(np.uint32)
    return np.where(bits >> 31 == 1, ~bits, bits | np.uint32(1 << 31)).astype(np.uint32)


class HistogramAUC:
    """AUC from counts of positives and negatives per score bucket, at most `buckets` of
    them whatever the number of rows.

    A bucket starts as one float32 score value, so while there are at most `buckets`
    distinct scores the AUC is exact (equal scores are 1/2 a pair, as auc() counts them).
    Past that, the buckets coarsen where the scores are: neighbouring buckets merge by
    dropping the lowest bit of the float32 pattern (`shift` bits dropped so far; a bucket
    then spans a relative width of 2**(shift - 23)). Rows of different scores in one bucket
    count as ties, so the AUC is within `error_bound()` (0 while exact) = the sum over
    buckets of positives x negatives / 2, over all positive-negative pairs.
    """

    def __init__(self, buckets: int = BUCKETS):
        self.buckets = buckets
        self.shift = 0
        self.keys = np.zeros(0, np.uint32)
        self.pos = np.zeros(0, np.int64)
        self.neg = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0

    def update(self, labels: np.ndarray, scores: np.ndarray) -> None:
        positive = np.asarray(labels).reshape(-1) > 0.5
        self._pending.append((_sortable(scores) >> self.shift, positive))
        self._pending_rows += positive.size
        if self._pending_rows >= self.buckets:
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self.keys] + [k for k, _ in self._pending])
        positive = np.concatenate([p for _, p in self._pending])
        pos = np.concatenate([self.pos, positive.astype(np.int64)])
        neg = np.concatenate([self.neg, (~positive).astype(np.int64)])
        self._pending, self._pending_rows = [], 0
        while True:
            self.keys, inverse = np.unique(keys, return_inverse=True)
            self.pos = np.bincount(inverse, weights=pos, minlength=self.keys.size).astype(np.int64)
            self.neg = np.bincount(inverse, weights=neg, minlength=self.keys.size).astype(np.int64)
            if self.keys.size <= self.buckets:
                return
            self.shift += 1  # twice as wide: merge neighbours
            keys, pos, neg = self.keys >> 1, self.pos, self.neg

    def result(self) -> float:
        self._merge()
        n_pos, n_neg = int(self.pos.sum()), int(self.neg.sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        # pairs a positive wins: the negatives in lower buckets, and half of its own bucket's
        below = np.cumsum(self.neg) - self.neg
        wins = np.sum(self.pos * (below + 0.5 * self.neg), dtype=np.float64)
        return float(wins / (n_pos * n_neg))

    def error_bound(self) -> float:
        self._merge()
        n_pos, n_neg = int(self.pos.sum()), int(self.neg.sum())
        if n_pos == 0 or n_neg == 0 or self.shift == 0:
            return 0.0
        return float(np.sum(self.pos * self.neg, dtype=np.float64) / 2 / (n_pos * n_neg))

    def max_f1(self) -> float:
        """max F1 over thresholds at the buckets' lower edges (a row is predicted positive
        when its bucket is at or above the threshold's): compute_metrics' max_f1 while
        exact."""
        self._merge()
        n_pos = int(self.pos.sum())
        if n_pos == 0:
            return 0.0
        tp = np.cumsum(self.pos[::-1])
        predicted = tp + np.cumsum(self.neg[::-1])
        used = predicted > 0
        return float(np.max(2.0 * tp[used] / (predicted[used] + n_pos)))

    @property
    def nbytes(self) -> int:
        return (self.keys.nbytes + self.pos.nbytes + self.neg.nbytes +
                sum(k.nbytes + p.nbytes for k, p in self._pending))


class RowsMetrics:
    """compute_metrics' names of one tower on one set of rows (overall, or one domain's),
    fed batch by batch with `update`, in bounded memory past `exact_rows` rows."""

    def __init__(self, names: list[str], gauc_reduction: str = "mean",
                 session_reduction: str = "mean", topk: int = 5,
                 exact_rows: int = EXACT_ROWS, buckets: int = BUCKETS):
        self.names, self.topk = list(names), topk
        self.gauc_reduction, self.session_reduction = gauc_reduction, session_reduction
        self.exact_rows, self.buckets = exact_rows, buckets
        self.rows = 0
        self._exact: dict[str, list] | None = {}  # None once summarised
        self._sums: dict[str, float] = {}
        self._hist: HistogramAUC | None = None
        self._groups: dict[str, list] = {}  # gauc / session_auc: (labels, scores, keys)
        self._binary = True  # one positive score per row (num_class 1 or 2)
        self._num_class = 1

    # ---- feeding ------------------------------------------------------------------------
    def update(self, labels, probs, predictions=None, uids=None, sessions=None) -> None:
        labels, probs = np.asarray(labels).reshape(-1), np.asarray(probs)
        if probs.ndim >= 2:
            self._num_class = probs.shape[1]
        self._binary = M._binary_scores(probs) is not None
        batch = {"labels": labels, "probs": probs,
                 "predictions": probs if predictions is None else np.asarray(predictions),
                 "uids": uids, "sessions": sessions}
        self.rows += labels.size
        if self._exact is not None:
            for k, v in batch.items():
                if v is not None:
                    self._exact.setdefault(k, []).append(np.asarray(v))
            if self.rows > self.exact_rows:  # too many to keep: summaries from now on
                kept = {k: np.concatenate(v) for k, v in self._exact.items()}
                self._exact = None
                self._summarise(**{k: kept.get(k) for k in batch})
            return
        self._summarise(**batch)

    def _add(self, name: str, value: float) -> None:
        self._sums[name] = self._sums.get(name, 0.0) + float(value)

    def _summarise(self, labels, probs, predictions, uids, sessions) -> None:
        names = set(self.names)
        labels_f = labels.astype(np.float64)
        scores = M._binary_scores(probs)
        self._add("count", labels.size)
        if scores is not None and names & {"auc", "max_f1"}:
            if self._hist is None:
                self._hist = HistogramAUC(self.buckets)
            self._hist.update(labels, scores)
        if "logloss" in names:
            if probs.ndim < 2:
                self._add("logloss", M.logloss(labels, probs) * labels.size)
            else:
                self._add("logloss", M.multiclass_logloss(labels, probs) * labels.size)
        if "accuracy" in names and probs.ndim == 2:
            self._add("accuracy", M.accuracy(labels, probs) * labels.size)
        if "recall_at_topk" in names and probs.ndim == 2:
            self._add("recall_at_topk", M.recall_at_topk(labels, probs, self.topk) * labels.size)
        if names & set(M.REGRESSION_METRICS) and labels.size:
            diff = np.asarray(predictions, np.float64).reshape(-1) - labels_f
            self._add("abs", np.sum(np.abs(diff)))
            self._add("sq", np.sum(np.square(diff)))
        for name, keys in (("gauc", uids), ("session_auc", sessions)):
            if name in names and keys is not None and scores is not None:
                self._groups.setdefault(name, []).append(
                    (labels, np.asarray(scores, np.float32), np.asarray(keys).reshape(-1)))

    # ---- results ------------------------------------------------------------------------
    def result(self) -> dict:
        """compute_metrics' dict: exact on up to exact_rows rows, else from the summaries
        (AUC within "auc_error_bound" of the exact one, which is then added)."""
        if self._exact is not None:
            kept = {k: np.concatenate(v) for k, v in self._exact.items()}
            if not kept:
                return M.compute_metrics(np.zeros(0), np.zeros(0), self.names)
            return M.compute_metrics(kept["labels"], kept["probs"], self.names, kept.get("uids"),
                                     self.gauc_reduction, kept.get("sessions"),
                                     self.session_reduction, self.topk, kept["predictions"])
        count = self._sums["count"]
        out: dict = {"count": count}
        undefined: dict = {}
        for name in self.names:
            value = self._summary_value(name, count)
            if value is None:
                continue
            out[name] = value
            if not np.isfinite(value):
                undefined[name] = self._why_undefined(name)
        if self._hist is not None and "auc" in out:
            out["auc_error_bound"] = self._hist.error_bound()
        if undefined:
            out["undefined"] = undefined
        return out

    def _summary_value(self, name: str, count: float) -> float | None:
        if name in M.BINARY_METRICS and not self._binary:
            return float("nan")
        if name == "auc":
            return self._hist.result()
        if name == "max_f1":
            return self._hist.max_f1()
        if name in ("logloss", "accuracy", "recall_at_topk"):
            return self._sums.get(name, 0.0) / count
        if name in ("gauc", "session_auc"):
            parts = self._groups.get(name)
            if not parts:
                return None  # no uid / session field: not computed (as compute_metrics)
            labels, scores, keys = (np.concatenate(p) for p in zip(*parts))
            reduction = self.gauc_reduction if name == "gauc" else self.session_reduction
            return M.gauc(labels, scores, keys, reduction)
        if name == "mean_absolute_error":
            return self._sums["abs"] / count
        if name == "mean_squared_error":
            return self._sums["sq"] / count
        if name == "root_mean_squared_error":
            return float(np.sqrt(self._sums["sq"] / count))
        return None

    def _why_undefined(self, name: str) -> str:
        if name in M.BINARY_METRICS and not self._binary:
            return (f"needs a binary tower (num_class 1 or 2); this one has "
                    f"{self._num_class} classes")
        if name == "gauc":
            return "no group (uid) has both positive and negative labels"
        if name == "session_auc":
            return "no session has both positive and negative labels"
        if name == "auc" and self._hist is not None:
            self._hist.result()
            positives = int(self._hist.pos.sum())
            return f"only one class in the labels (all {1 if positives else 0}): AUC needs both"
        return "not a finite number (the predictions are not finite)"

    def state_bytes(self) -> int:
        """Bytes of numpy state held (for the memory test)."""
        arrays = [a for v in (self._exact or {}).values() for a in v]
        arrays += [a for parts in self._groups.values() for p in parts for a in p]
        return sum(a.nbytes for a in arrays) + (self._hist.nbytes if self._hist else 0)
