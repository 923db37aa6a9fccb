"""Bounded-memory evaluation (eval/streaming.py): the histogram AUC against the exact one,
hand-computed small cases, and state that does not grow with the rows."""

import numpy as np
import pytest

from easyblocks.eval.metrics import auc, compute_metrics, gauc, max_f1
from easyblocks.eval.streaming import HistogramAUC, RowsMetrics


def _hist(labels, scores, buckets=1 << 16):
    h = HistogramAUC(buckets)
    h.update(np.asarray(labels), np.asarray(scores))
    return h


def test_histogram_auc_by_hand_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1: (0.8>0.4) (0.8>0.1) (0.4=0.4 -> 1/2) (0.4>0.1)
    h = _hist([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1])
    assert h.result() == pytest.approx(3.5 / 4)
    assert h.error_bound() == 0.0 and h.shift == 0  # 3 distinct scores, 3 buckets: exact
    assert np.isnan(_hist([1, 1], [0.2, 0.3]).result())


def test_coarse_buckets_by_hand():
    # 2 buckets for 4 scores: dropping 21 bits of the float32 pattern leaves {0.25, 0.3}
    # (exponent of [0.25, 0.5), mantissa 00...) and {0.75, 0.8} ([0.5, 1), mantissa 10...);
    # with 20 bits 0.25 and 0.3 still differ. positives 0.3, 0.8; negatives 0.25, 0.75
    h = _hist([1, 0, 1, 0], [0.3, 0.25, 0.8, 0.75], buckets=2)
    # 0.8 beats 0.25 (lower bucket) + half of 0.75 (its bucket) = 1.5; 0.3: half of 0.25
    assert h.result() == pytest.approx(2.0 / 4)
    assert h.shift == 21
    # exact: 0.8>0.25, 0.8>0.75, 0.3>0.25 -> 3 / 4, within the bound (1 + 1) / 2 / 4
    assert h.error_bound() == pytest.approx(0.25)
    assert abs(h.result() - auc([1, 0, 1, 0], [0.3, 0.25, 0.8, 0.75])) <= h.error_bound()
    # one bucket: every pair a tie. max F1 predicts all: 2 x 2 / (4 + 2)
    one = _hist([1, 1, 0, 0], [0.9, 0.2, 0.3, 0.6], buckets=1)
    assert one.result() == 0.5 and one.error_bound() == pytest.approx(0.5)
    assert one.max_f1() == pytest.approx(4 / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_auc_within_1e_4_of_the_exact_on_skewed_data_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 200_000
    # CTR-like: skewed scores (most below 0.1), 4 % positives, a tenth of rows rounded to
    # three decimals (ties), labels correlated with the score
    scores = rng.beta(0.7, 12.0, n)
    scores[: n // 10] = np.round(scores[: n // 10], 3)
    labels = (rng.random(n) < np.clip(scores * 0.6, 0, 1)).astype(np.int64)
    h = HistogramAUC(4096)  # far fewer buckets than distinct scores: coarse buckets
    for part in np.array_split(np.arange(n), 17):  # batch by batch
        h.update(labels[part], scores[part])
    exact = auc(labels, scores)
    assert abs(h.result() - exact) <= h.error_bound() + 1e-12
    assert h.shift > 0 and h.keys.size <= 4096
    assert abs(h.result() - exact) < 1e-4
    assert h.error_bound() < 1e-3
    assert h.max_f1() == pytest.approx(max_f1(labels, scores), abs=1e-3)


def test_rows_metrics_are_exact_below_the_budget_and_close_above():
    rng = np.random.default_rng(5)
    n = 30_000
    probs = rng.random(n).astype(np.float32)
    labels = (rng.random(n) < probs).astype(np.int64)
    uids = rng.integers(0, 300, n)
    names = ["auc", "logloss", "gauc", "max_f1"]
    exact = compute_metrics(labels, probs, names, uids)
    small = RowsMetrics(names, exact_rows=n)
    large = RowsMetrics(names, exact_rows=1000, buckets=2048)
    for part in np.array_split(np.arange(n), 30):
        for r in (small, large):
            r.update(labels[part], probs[part], uids=uids[part])
    assert small.result() == exact  # the same computation: identical numbers
    out = large.result()
    assert out["count"] == n
    assert out["auc"] == pytest.approx(exact["auc"], abs=1e-4)
    assert out["auc_error_bound"] < 1e-3
    assert out["logloss"] == pytest.approx(exact["logloss"], rel=1e-6)
    assert out["gauc"] == pytest.approx(gauc(labels, probs, uids), abs=1e-6)
    assert out["max_f1"] == pytest.approx(exact["max_f1"], abs=1e-3)


def test_one_class_is_undefined_with_its_reason_past_the_budget():
    r = RowsMetrics(["auc", "logloss"], exact_rows=2)
    r.update(np.zeros(5), np.full(5, 0.2))
    out = r.result()
    assert np.isnan(out["auc"])
    assert out["undefined"]["auc"].startswith("only one class in the labels (all 0)")
    assert out["logloss"] == pytest.approx(-np.log(0.8))


def test_regression_and_multiclass_sums_past_the_budget():
    r = RowsMetrics(["mean_absolute_error", "root_mean_squared_error"], exact_rows=1)
    r.update(np.array([2.0, 4.0]), np.array([0.5, 0.5]), predictions=np.array([1.0, 6.0]))
    out = r.result()
    assert out["mean_absolute_error"] == pytest.approx(1.5)  # |1-2|, |6-4|
    assert out["root_mean_squared_error"] == pytest.approx(np.sqrt(2.5))
    m = RowsMetrics(["accuracy", "logloss", "auc"], exact_rows=1)
    m.update(np.array([0, 2, 1]), np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]))
    out = m.result()
    assert out["accuracy"] == pytest.approx(2 / 3)  # the third row: argmax 0 (first on ties)
    assert out["logloss"] == pytest.approx(-(np.log(0.5) + np.log(0.8) + np.log(0.4)) / 3)
    assert "needs a binary tower" in out["undefined"]["auc"]


def test_state_does_not_grow_with_the_rows_past_the_budget():
    rng = np.random.default_rng(0)
    sizes = []
    r = RowsMetrics(["auc", "logloss", "max_f1"], exact_rows=10_000, buckets=4096)
    for i in range(1, 201):  # 200 batches of 5,000 rows: a million rows
        p = rng.random(5000)
        r.update((rng.random(5000) < p).astype(np.int64), p)
        if i in (10, 200):
            sizes.append(r.state_bytes())
    # at most 4,096 buckets (uint32 key, two int64 counts) and under 4,096 rows waiting to
    # be merged (uint32 key, bool label): nothing per row evaluated
    bound = 4096 * (4 + 8 + 8) + 4096 * 5
    assert sizes[0] <= bound and sizes[1] <= bound
    assert r.result()["count"] == 1_000_000


def test_the_evaluators_state_is_independent_of_the_rows_evaluated(tmp_path, monkeypatch):
    import dataclasses

    from conftest import ROOT, SAMPLES

    from easyblocks import api
    from easyblocks.eval.evaluator import Evaluator
    from easyblocks.models.state import ModelState

    monkeypatch.chdir(ROOT)
    spec = api.resolve(f"{SAMPLES}/configs/mlp_on_taobao.config")
    state = ModelState(spec, str(tmp_path))  # untrained weights: any model will do
    sizes, aucs = [], []
    for rows in (4096, 16384):
        state.spec = spec = dataclasses.replace(
            spec, eval=dataclasses.replace(spec.eval, num_examples=rows))
        evaluator = Evaluator(state)
        evaluator.exact_rows = 1000  # summaries past 1,000 rows per tower and domain
        summarised = evaluator.compute()
        sizes.append(evaluator.state_bytes)
        evaluator.exact_rows = rows  # every row kept: the exact metrics
        exact = evaluator.compute()
        assert summarised["towers"]["clk"]["overall"]["count"] == rows
        for domain, m in exact["towers"]["clk"]["domains"].items():
            s = summarised["towers"]["clk"]["domains"][domain]
            assert s["auc"] == pytest.approx(m["auc"], abs=1e-4)
            assert s["logloss"] == pytest.approx(m["logloss"], rel=1e-5)
        aucs.append((summarised["towers"]["clk"]["overall"]["auc"],
                     exact["towers"]["clk"]["overall"]["auc"]))
    # overall + 3 pid domains, each at most 2**16 buckets (uint32, 2 int64) and 2**16 rows
    # waiting to be merged (uint32, bool), whatever the rows
    bound = 4 * (1 << 16) * (20 + 5)
    assert 0 < sizes[0] <= bound and 0 < sizes[1] <= bound
    for s, e in aucs:
        assert s == pytest.approx(e, abs=1e-4)
