"""EasyRec's max_f1, recall_at_topk and session_auc, exact, against hand-computed values."""

import numpy as np
import pytest
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.eval.metrics import compute_metrics, max_f1, metrics_by_domain, recall_at_topk


def test_max_f1_by_hand():
    # cut after k rows (scores descending): F1 = 2 TP / (k + positives)
    # k=1: 2/4, k=2: 2/5, k=3: 4/6, k=4: 4/7, k=5: 6/8
    assert max_f1([1, 0, 1, 0, 1], [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.75)
    assert max_f1([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(1.0)
    # tied scores are cut together: {.9, .9} -> 2/4, all -> 4/5
    assert max_f1([0, 1, 1], [0.9, 0.9, 0.5]) == pytest.approx(0.8)
    assert max_f1([0, 0], [0.3, 0.4]) == 0.0


def test_recall_at_topk_by_hand_with_ties_to_the_lower_class():
    scores = [[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]]
    labels = [2, 1, 2]
    assert recall_at_topk(labels, scores, 1) == 0.0
    # k=2: row 0 hits; row 1: class 2 is higher and class 0 ties first; row 2: class 1 ties
    # first
    assert recall_at_topk(labels, scores, 2) == pytest.approx(1 / 3)
    assert recall_at_topk(labels, scores, 3) == 1.0


def test_session_auc_is_the_auc_per_session():
    labels = [1, 0, 0, 0, 1, 1, 0, 1]
    probs = [0.9, 0.1, 0.2, 0.5, 0.2, 0.6, 0.4, 0.5]
    sessions = ["a", "a", "a", "b", "b", "b", "b", "c"]
    # a: 1.0 (3 rows), b: 2 of 4 pairs = 0.5 (4 rows), c: one class, left out
    out = compute_metrics(labels, probs, ["session_auc", "max_f1"], sessions=sessions,
                          session_reduction="mean_by_sample_num")
    assert out["session_auc"] == pytest.approx((1.0 * 3 + 0.5 * 4) / 7)
    by_domain = metrics_by_domain(labels, probs, ["x"] * 4 + ["y"] * 4, ["session_auc"],
                                  sessions=sessions)
    assert by_domain["x"]["session_auc"] == pytest.approx(1.0)  # b has one class in x


def _resolve(metrics: str, model: str = ""):
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } '
                       'concat_blocks: "b" }\n' + model,
                       extra=f"eval_config {{ {metrics} }}\n")
    return resolve(parse_config_text(text, "t.config"))


def test_eval_config_metrics_are_resolved_and_checked():
    spec = _resolve('metrics_set { max_f1 {} } metrics_set { session_auc { '
                    'session_id_field: "user" reduction: "mean_by_positive_num" } }')
    assert spec.eval.metrics == ["max_f1", "session_auc"]
    assert (spec.eval.session_field, spec.eval.session_reduction) == (
        "user", "mean_by_positive_num")
    assert "user" in spec.eval.keep_columns
    with pytest.raises(ConfigError, match="session_id_field 'usr' is not an input field.*user"):
        _resolve('metrics_set { session_auc { session_id_field: "usr" } }')
    with pytest.raises(ConfigError, match="recall_at_topk needs a multi-class tower"):
        _resolve("metrics_set { recall_at_topk { topk: 2 } }")
    spec = _resolve("metrics_set { recall_at_topk { topk: 2 } }", "num_class: 3")
    assert spec.eval.recall_topk == 2


def test_regression_metrics_and_accuracy_by_hand():
    labels, probs = [1, 0, 1, 0], [0.9, 0.2, 0.6, 0.5]
    out = compute_metrics(labels, probs, ["mean_absolute_error", "mean_squared_error",
                                          "root_mean_squared_error"])
    # errors .1 .2 .4 .5
    assert out["mean_absolute_error"] == pytest.approx(1.2 / 4)
    assert out["mean_squared_error"] == pytest.approx(0.46 / 4)
    assert out["root_mean_squared_error"] == pytest.approx((0.46 / 4) ** 0.5)
    # a regression tower compares its predictions (EasyRec's y), not the probabilities
    out = compute_metrics([2.0, 4.0], [0.5, 0.5], ["mean_absolute_error"],
                          predictions=[1.0, 7.0])
    assert out["mean_absolute_error"] == pytest.approx(2.0)
    out = compute_metrics([0, 2, 1], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]],
                          ["accuracy"])
    assert out["accuracy"] == pytest.approx(2 / 3)  # the tie in row 3 goes to class 0


def test_accuracy_needs_several_classes_and_errors_a_single_output():
    with pytest.raises(ConfigError, match="accuracy needs a multi-class tower"):
        _resolve("metrics_set { accuracy {} }")
    with pytest.raises(ConfigError, match="mean_squared_error needs a tower with one output"):
        _resolve("metrics_set { mean_squared_error {} }", "num_class: 3")
    spec = _resolve("metrics_set { mean_squared_error {} }", "loss_type: L2_LOSS")
    assert spec.towers[0].prediction_key == "y_clk"  # the logit itself (main's y_<tower>)


def test_multi_class_probabilities_by_hand_and_undefined_binary_metrics():
    labels = [1, 0, 1]
    two = [[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]
    out = compute_metrics(labels, two, ["auc", "logloss", "max_f1", "accuracy"])
    # two classes: AUC and max F1 of class 1's column (0.8, 0.4, 0.3): pairs (0.8 > 0.4),
    # (0.3 < 0.4) -> 1/2; logloss: -(log .8 + log .6 + log .3) / 3
    assert out["auc"] == pytest.approx(0.5)
    assert out["logloss"] == pytest.approx(-(np.log(0.8) + np.log(0.6) + np.log(0.3)) / 3)
    # cuts after 0.8: 2 / (1 + 2); after 0.4: 2 / (2 + 2); after 0.3: 4 / (3 + 2)
    assert out["max_f1"] == pytest.approx(0.8)
    assert out["accuracy"] == pytest.approx(2 / 3)  # argmax 1, 0, 0
    three = [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]
    out = compute_metrics([0, 2, 1], three, ["auc", "logloss", "accuracy"])
    assert out["logloss"] == pytest.approx(-(np.log(0.5) + np.log(0.8) + np.log(0.4)) / 3)
    assert np.isnan(out["auc"])
    assert out["undefined"] == {"auc": "needs a binary tower (num_class 1 or 2); this one has "
                                       "3 classes"}


def test_regression_metrics_with_no_rows_are_undefined():
    out = compute_metrics([], [], ["mean_squared_error"], predictions=[])
    assert np.isnan(out["mean_squared_error"])
    assert out["undefined"] == {"mean_squared_error": "no rows"}
