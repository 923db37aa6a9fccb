"""EasyRec's losses by hand: F1_REWEIGHTED_LOSS, ZILN_LOSS (and its predictions), and the
sample-weighted reduction of TF1's tf.losses."""

import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models import losses as L


def _softplus(x):
    return math.log1p(math.exp(x))


def test_weighted_reduction_is_sum_by_nonzero_weights():
    labels, logits = tf.constant([1.0, 0.0, 1.0]), tf.zeros(3)
    value = L.weighted_classification_loss(labels, logits, 1, tf.constant([2.0, 0.0, 1.0]))
    # each row's cross-entropy is ln 2; (2 ln2 + 0 + ln2) / 2 nonzero weights
    assert float(value) == pytest.approx(1.5 * math.log(2), rel=1e-6)
    l2 = L.weighted_l2_loss(tf.constant([1.0, 3.0]), tf.constant([0.0, 1.0]),
                            tf.constant([0.5, 1.0]))
    assert float(l2) == pytest.approx((0.5 * 1 + 1.0 * 4) / 2, rel=1e-6)


def test_f1_reweighted_loss_by_hand():
    labels = tf.constant([1.0, 0.0, 0.0, 1.0])
    logits = tf.constant([0.0, math.log(3), -math.log(3), math.log(3)])  # p .5 .75 .25 .75
    # TP = 2.25, TN = 4 - 2.25; w_neg = TP / (beta^2 N_pos + N_neg - TN) = 2.25 / (8 + .25)
    w = 2.25 / (4 * 2 + 2 - 1.75)
    ce = [math.log(2), -math.log(0.25), -math.log(0.75), -math.log(0.75)]
    expected = (ce[0] + w * ce[1] + w * ce[2] + ce[3]) / 4
    assert float(L.f1_reweighted_loss(labels, logits, beta_square=4.0)) == pytest.approx(
        expected, rel=1e-5)
    # sample weights multiply the F1 weights; a zero weight leaves the row out of the count
    weighted = L.f1_reweighted_loss(labels, logits, 4.0, weights=tf.constant([1., 1., 0., 2.]))
    assert float(weighted) == pytest.approx((ce[0] + w * ce[1] + 2 * ce[3]) / 3, rel=1e-5)
    # label smoothing 0.2: targets 0.9 / 0.1
    smooth = L.f1_reweighted_loss(labels, logits, 4.0, label_smoothing=0.2)
    p = [0.5, 0.75, 0.25, 0.75]
    y = [0.9, 0.1, 0.1, 0.9]
    ce_s = [-(t * math.log(q) + (1 - t) * math.log(1 - q)) for t, q in zip(y, p)]
    assert float(smooth) == pytest.approx((ce_s[0] + w * (ce_s[1] + ce_s[2]) + ce_s[3]) / 4,
                                          rel=1e-5)


def test_ziln_loss_and_predictions_by_hand():
    labels = tf.constant([0.0, 2.0])
    logits = tf.constant([[0.0, 0.0, 0.0], [1.0, 0.5, 1.0]])
    classification = (math.log(2) + _softplus(-1.0)) / 2
    sigma = _softplus(1.0)
    log_prob = -(math.log(2) - 0.5) ** 2 / (2 * sigma**2) - math.log(2) - math.log(sigma) \
        - 0.5 * math.log(2 * math.pi)
    regression = -log_prob / (1 + 1e-8)
    penalty = 0.01 * (0 + 0.25) / 2 + 0.01 * (0 + 1.0) / 2
    value = L.ziln_loss(labels, logits)
    assert float(value) == pytest.approx(classification + regression + penalty, rel=1e-5)
    weighted = L.ziln_loss(labels, logits, class_weight=2.0, reg_weight=0.5, mu_reg=0.0,
                           sigma_reg=0.0)
    assert float(weighted) == pytest.approx(2 * classification + 0.5 * regression, rel=1e-5)
    probs, y = L.ziln_predictions(logits)
    p1 = 1 / (1 + math.exp(-1))
    np.testing.assert_allclose(probs.numpy(), [0.5, p1], rtol=1e-6)
    sigma0 = _softplus(0.0)
    np.testing.assert_allclose(
        y.numpy(), [0.5 * math.exp(sigma0**2 / 2), p1 * math.exp(0.5 + sigma**2 / 2)], rtol=1e-5)
    # max_sigma clips sigma
    _, y_clipped = L.ziln_predictions(logits, max_sigma=0.5)
    assert float(y_clipped[1]) == pytest.approx(p1 * math.exp(0.5 + 0.125), rel=1e-5)


def _resolve(model: str, extra: str = ""):
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } '
                       'concat_blocks: "b" }\n' + model, extra=extra)
    return resolve(parse_config_text(text, "t.config"))


def test_ziln_tower_needs_three_logits_and_predicts_y():
    with pytest.raises(ConfigError, match="ZILN_LOSS needs num_class 3"):
        _resolve("losses { loss_type: ZILN_LOSS }")
    spec = _resolve("num_class: 3 losses { loss_type: ZILN_LOSS ziln_loss { max_sigma: 2 } }")
    tower = spec.towers[0]
    assert tower.ziln.params["max_sigma"] == 2 and tower.ziln.params["mu_regularization"] == \
        pytest.approx(0.01)
    assert "logloss" not in tower.metrics
    from easyblocks.models.build import build_and_initialize, dummy_columns

    model, pre = build_and_initialize(spec)
    out = model(pre(dummy_columns(spec)), training=False)
    assert out["logits_clk"].shape == (4, 3) and out["y_clk"].shape == (4,)
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } '
                       '}\nnum_class: 3 losses { loss_type: ZILN_LOSS }')
    text = text.replace('label_fields: "clk"', 'label_fields: "clk"\n  sample_weight: "buy"')
    with pytest.raises(ConfigError, match="ZILN_LOSS with data_config.sample_weight"):
        resolve(parse_config_text(text, "t.config"))


def test_loss_parameters_must_match_the_loss_type():
    with pytest.raises(ConfigError, match="ziln_loss {} do not apply to loss_type "
                                          "F1_REWEIGHTED_LOSS"):
        _resolve("losses { loss_type: F1_REWEIGHTED_LOSS ziln_loss {} }")
    spec = _resolve("losses { loss_type: F1_REWEIGHTED_LOSS f1_reweighted_loss { "
                    "f1_beta_square: 4 } }")
    assert spec.towers[0].losses[0].params == {"f1_beta_square": 4.0, "label_smoothing": 0.0}
    assert spec.towers[0].losses[0].key == "f1_reweighted"


def test_sample_weight_reaches_the_tower_losses():
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } '
                       'concat_blocks: "b" }')
    text = text.replace('label_fields: "clk"', 'label_fields: "clk"\n  sample_weight: "buy"')
    spec = resolve(parse_config_text(text, "t.config"))
    assert spec.data.sample_weight == "buy"
    from easyblocks.config.specs import SAMPLE_WEIGHT
    from easyblocks.models.build import build_and_initialize, dummy_columns

    model, pre = build_and_initialize(spec)
    outputs, l2 = model.forward(pre(dummy_columns(spec)), training=False)
    labels = {"clk": tf.constant([1.0, 0.0, 1.0, 0.0])}
    plain = model.compute_losses(labels, outputs, l2)["loss/clk/classification"]
    weights = tf.constant([1.0, 0.0, 0.0, 3.0])
    weighted = model.compute_losses({**labels, SAMPLE_WEIGHT: weights}, outputs, l2)[
        "loss/clk/classification"]
    logits = outputs["logits_clk"]
    expected = L.weighted_classification_loss(labels["clk"], logits, 1, weights)
    assert float(weighted) == pytest.approx(float(expected), rel=1e-6)
    assert float(weighted) != pytest.approx(float(plain), rel=1e-3)
    with pytest.raises(ConfigError, match="sample_weight 'user' must be a number"):
        resolve(parse_config_text(text.replace('sample_weight: "buy"', 'sample_weight: "user"'),
                                  "t.config"))


def test_pairwise_loss_by_hand():
    labels, logits = tf.constant([1.0, 0.0, 0.0]), tf.constant([2.0, 1.0, 0.0])
    # pairs (0, 1): s diff 1, (0, 2): 2
    expected = (_softplus(-1.0) + _softplus(-2.0)) / 2
    assert float(L.pairwise_loss(labels, logits)) == pytest.approx(expected, rel=1e-6)
    # margin 0.5, temperature 2: diffs 0.5 - 0.5 = 0 and 1 - 0.5 = 0.5
    value = L.pairwise_loss(labels, logits, margin=0.5, temperature=2.0)
    assert float(value) == pytest.approx((_softplus(0.0) + _softplus(-0.5)) / 2, rel=1e-6)
    # sessions: row 2 is in another session, only (0, 1) is a pair
    sessions = tf.constant(["a", "a", "b"])
    assert float(L.pairwise_loss(labels, logits, sessions)) == pytest.approx(
        _softplus(-1.0), rel=1e-6)
    # a pair weighs the positive's sample weight
    weighted = L.pairwise_loss(tf.constant([1.0, 0.0, 1.0]), tf.constant([2.0, 1.0, 0.0]),
                               weights=tf.constant([3.0, 1.0, 1.0]))
    assert float(weighted) == pytest.approx((3 * _softplus(-1.0) + _softplus(1.0)) / 2, rel=1e-6)
    assert float(L.pairwise_loss(tf.zeros(3), logits)) == 0.0  # no pairs


def test_pairwise_session_name_is_a_feature_or_an_input_field():
    spec = _resolve('losses { loss_type: PAIR_WISE_LOSS pairwise_loss { session_name: "user" } }')
    assert spec.data.loss_columns == ("user",)
    assert spec.towers[0].losses[0].params["session_column"] == "user"
    with pytest.raises(ConfigError, match="session_name 'usr' is neither a feature nor an input "
                                          "field.*user"):
        _resolve('losses { loss_type: PAIR_WISE_LOSS pairwise_loss { session_name: "usr" } }')
