"""Metrics against hand-computed values: AUC with ties, logloss, GAUC, per domain."""

import math

import numpy as np
import pytest

from easyblocks.eval.metrics import auc, gauc, logloss, metrics_by_domain


def test_auc_by_hand_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) (0.8>0.1) (0.4=0.4 -> 1/2) (0.4>0.1)
    assert auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_logloss_by_hand():
    expected = -(math.log(0.8) + math.log(1 - 0.4)) / 2
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(expected)


def test_gauc_reductions_by_hand_and_skips_one_class_groups():
    labels = [1, 0, 0, 0, 1, 1, 0, 1]
    scores = [0.9, 0.1, 0.2, 0.5, 0.2, 0.6, 0.4, 0.5]
    users = ["a", "a", "a", "b", "b", "b", "b", "c"]  # c has one class only
    # a: AUC 1 (3 rows, 1 positive); b: positives 0.2, 0.6 vs negatives 0.5, 0.4 win
    # (0.6>0.5) (0.6>0.4) = 2 of 4 pairs -> 0.5 (4 rows, 2 positives)
    assert gauc(labels, scores, users) == pytest.approx((1.0 + 0.5) / 2)  # EasyRec's "mean"
    assert gauc(labels, scores, users, "mean_by_sample_num") == pytest.approx(
        (1.0 * 3 + 0.5 * 4) / 7)
    assert gauc(labels, scores, users, "mean_by_positive_num") == pytest.approx(
        (1.0 * 1 + 0.5 * 2) / 3)
    with pytest.raises(ValueError, match="reduction"):
        gauc(labels, scores, users, "median")


def test_metrics_per_domain_by_hand():
    labels = np.array([1, 0, 1, 0, 1, 0, 0])
    probs = np.array([0.9, 0.2, 0.3, 0.6, 0.7, 0.7, 0.1])
    domains = np.array([b"x", b"x", b"x", b"x", b"y", b"y", b"y"])
    out = metrics_by_domain(labels, probs, domains, ["auc", "logloss"])
    assert set(out) == {"x", "y"}
    # x: positives 0.9, 0.3; negatives 0.2, 0.6 -> pairs won: (0.9,0.2) (0.9,0.6) (0.3,0.2) = 3/4
    assert out["x"]["auc"] == pytest.approx(0.75)
    assert out["x"]["count"] == 4
    # y: positive 0.7; negatives 0.7 (tie: 1/2), 0.1 (win) -> 1.5 / 2
    assert out["y"]["auc"] == pytest.approx(0.75)
    expected = -(math.log(0.7) + math.log(0.3) + math.log(0.9)) / 3
    assert out["y"]["logloss"] == pytest.approx(expected)
