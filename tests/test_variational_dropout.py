"""EasyRec's model_config.variational_dropout, pinned by hand: the concrete relaxation, the
feature-wise and embedding-wise layer (inference and training with fixed noise), its
regularization term by name, and where it applies.

With temperature 0.1 and e negligible, the keep value of concrete dropout is
    1 - sigmoid(10 (logit p + logit u)) = 1 / (1 + (odds(p) odds(u))^10),   odds(x) = x / (1 - x)
which is what the numbers below are computed from.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.features.embedding import VariationalDropout, concrete_keep
from easyblocks.models.build import build_and_initialize, dummy_columns
from easyblocks.models.model import VARIATIONAL_DROPOUT

LN3 = math.log(3.0)


class FixedNoise(VariationalDropout):
    """The layer with its uniform noise given (and the shape it was asked for recorded)."""

    def __init__(self, noise, **kwargs):
        super().__init__(**kwargs)
        self.noise = tf.constant(noise, tf.float32)
        self.asked = None

    def uniform_noise(self, shape):
        self.asked = [int(v) for v in shape]
        return self.noise


def inputs():
    return [tf.constant([[1.0, 2.0], [3.0, 4.0]]), tf.constant([[5.0], [6.0]])]


def test_concrete_keep_by_hand():
    p = tf.constant([0.5, 0.5, 0.75, 0.5, 0.75])
    u = tf.constant([0.5, 0.6, 0.25, 0.1, 0.5])
    # odds products 1, 1.5, 1, 1/9, 3 -> 1 / (1 + product^10)
    want = [0.5, 1 / (1 + 57.6650390625), 0.5, 1 / (1 + 9.0 ** -10), 1 / (1 + 59049.0)]
    np.testing.assert_allclose(concrete_keep(p, u).numpy(), want, rtol=1e-5, atol=2e-7)


def test_feature_wise_inference_scales_by_one_minus_p_and_the_term_is_easyrecs():
    layer = VariationalDropout(regularization_lambda=0.1, embedding_wise=False)
    layer(inputs())  # builds logit_p: one per feature
    assert tuple(layer.logit_p.shape) == (2,)
    layer.logit_p.assign([0.0, LN3])  # p = 0.5, 0.75: keep 0.5, 0.25
    out, term = layer(inputs(), training=False)
    np.testing.assert_allclose(out[0].numpy(), [[0.5, 1.0], [1.5, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), [[1.25], [1.5]], rtol=1e-6)
    # lambda / batch * sum(1 - p) = 0.1 / 2 * (0.5 + 0.25)
    assert float(term) == pytest.approx(0.0375, rel=1e-6)


def test_feature_wise_training_draws_one_keep_value_per_example_and_feature():
    layer = FixedNoise([[0.5, 0.25], [0.6, 0.5]], regularization_lambda=0.1)
    layer(inputs())
    layer.logit_p.assign([0.0, LN3])  # p = 0.5, 0.75
    out, term = layer(inputs(), training=True)
    assert layer.asked == [2, 2]  # (batch, features)
    # row 0: odds 1 x 1, 3 x 1/3 -> keep 0.5, 0.5; row 1: 1 x 1.5, 3 x 1 -> 1/(1+1.5^10),
    # 1/(1+3^10); each over the feature's dimensions, without 1 / (1 - p) rescaling
    k1, k2 = 1 / (1 + 57.6650390625), 1 / (1 + 59049.0)
    np.testing.assert_allclose(out[0].numpy(), [[0.5, 1.0], [3 * k1, 4 * k1]], rtol=1e-5)
    # (1 - sigmoid(x) near 1 in float32, as EasyRec computes it: absolute error ~ 6e-8)
    np.testing.assert_allclose(out[1].numpy(), [[2.5], [6 * k2]], rtol=1e-5, atol=1e-6)
    assert float(term) == pytest.approx(0.0375, rel=1e-6)  # the same term as in inference


def test_embedding_wise_has_one_probability_per_dimension():
    layer = FixedNoise([[0.5, 0.9, 0.5], [0.1, 0.6, 0.25]], regularization_lambda=0.2,
                       embedding_wise=True)
    layer(inputs())
    assert tuple(layer.logit_p.shape) == (3,)
    layer.logit_p.assign([0.0, 0.0, LN3])  # p = 0.5, 0.5, 0.75
    out, term = layer(inputs(), training=True)
    assert layer.asked == [2, 3]
    np.testing.assert_allclose(
        out[0].numpy(), [[0.5, 2 / (1 + 9.0 ** 10)], [3 / (1 + 9.0 ** -10), 4 / 58.6650390625]],
        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), [[5 / 59050.0], [3.0]], rtol=1e-5, atol=1e-6)
    # 0.2 / 2 * (0.5 + 0.5 + 0.25)
    assert float(term) == pytest.approx(0.125, rel=1e-6)
    out, _ = layer(inputs(), training=False)
    np.testing.assert_allclose(out[0].numpy(), [[0.5, 1.0], [1.5, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), [[1.25], [1.5]], rtol=1e-6)


def test_the_training_keep_values_are_differentiable_in_logit_p():
    layer = FixedNoise([[0.5, 0.25], [0.6, 0.5]])
    layer(inputs())
    layer.logit_p.assign([0.0, 0.0])
    with tf.GradientTape() as tape:
        out, _ = layer(inputs(), training=True)
        total = tf.add_n([tf.reduce_sum(t) for t in out])
    grad = tape.gradient(total, layer.logit_p).numpy()
    # d keep / d logit_p = -10 s (1 - s), s = sigmoid(10 (logit p + logit u)), times the
    # inputs it multiplies: feature 0: u = 0.5 (s = 0.5) on 1 + 2, u = 0.6 on 3 + 4;
    # feature 1: u = 0.25 (s = 1 / (1 + 3^10)) on 5, u = 0.5 on 6
    s06 = 57.6650390625 / 58.6650390625 ** 2
    s025 = 59049 / 59050 ** 2
    np.testing.assert_allclose(grad, [-2.5 * 3 - 10 * s06 * 7, -10 * s025 * 5 - 2.5 * 6],
                               rtol=1e-4)


VD_MODEL = """
  variational_dropout { regularization_lambda: 0.1 }
  backbone {
    blocks { name: "all" inputs { feature_group_name: "all" } input_layer {} }
    blocks { name: "top" inputs { block_name: "all" } inputs { feature_group_name: "user" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [2] } } }
    concat_blocks: "top"
  }
"""


def test_every_group_is_dropped_and_the_term_is_a_named_loss():
    spec = resolve(parse_config_text(tiny_config(VD_MODEL), "t.config"))
    assert spec.model.variational_dropout.regularization_lambda == pytest.approx(0.1)
    model, pre = build_and_initialize(spec)
    fg = model.feature_groups
    assert set(fg.dropouts) == {"all", "user"}
    features = pre(dummy_columns(spec))  # a batch of 4
    for layer in fg.dropouts.values():  # p = sigmoid(-100): keep 1
        layer.logit_p.assign(tf.fill(layer.logit_p.shape, -100.0))
    plain = fg(features, training=False)
    fg.dropouts["all"].logit_p.assign([0.0, LN3, -LN3])  # user, tags, price: p .5, .75, .25
    fg.dropouts["user"].logit_p.assign([LN3])
    dropped = fg(features, training=False)
    keep = np.array([0.5] * 4 + [0.25] * 4 + [0.75])  # user (4), tags (4), price (1)
    np.testing.assert_allclose(dropped["groups"]["all"].numpy(),
                               plain["groups"]["all"].numpy() * keep, rtol=1e-6)
    np.testing.assert_allclose(dropped["lists"]["user"][0].numpy(),
                               plain["lists"]["user"][0].numpy() * 0.25, rtol=1e-6)
    outputs, emb_l2 = model.forward(features, training=True)
    terms = model.compute_losses({"clk": tf.constant([1.0, 0.0, 1.0, 0.0])}, outputs, emb_l2)
    # 0.1 / 4 x ((0.5 + 0.25 + 0.75) + 0.25)
    assert float(terms["loss/variational_dropout"]) == pytest.approx(0.04375, rel=1e-5)
    total = sum(float(v) for k, v in terms.items() if k != "loss/total")
    assert float(terms["loss/total"]) == pytest.approx(total, rel=1e-6)
    assert VARIATIONAL_DROPOUT not in model(features, training=False)  # never served


def test_without_variational_dropout_there_is_no_term():
    spec = resolve(parse_config_text(tiny_config(VD_MODEL.replace(
        "variational_dropout { regularization_lambda: 0.1 }", "")), "t.config"))
    model, pre = build_and_initialize(spec)
    outputs, emb_l2 = model.forward(pre(dummy_columns(spec)), training=True)
    terms = model.compute_losses({"clk": tf.constant([1.0, 0.0, 1.0, 0.0])}, outputs, emb_l2)
    assert "loss/variational_dropout" not in terms and not model.feature_groups.dropouts


def test_a_sequence_group_cannot_be_dropped_one_line():
    text = tiny_config(VD_MODEL).replace(
        'features { input_names: "price" feature_type: RawFeature }',
        'features { input_names: "price" feature_type: RawFeature }\n'
        '  features { feature_name: "seq" input_names: "tags" feature_type: SequenceFeature '
        'embedding_dim: 4 hash_bucket_size: 50 }').replace(
        'feature_groups { group_name: "user" feature_names: "user" }',
        'feature_groups { group_name: "user" feature_names: "user" }\n'
        '  feature_groups { group_name: "seq" feature_names: "seq" }')
    with pytest.raises(ConfigError) as e:
        resolve(parse_config_text(text, "t.config"))
    line = text.splitlines().index("  variational_dropout { regularization_lambda: 0.1 }") + 1
    assert str(e.value).startswith(f"t.config:{line}: variational_dropout: feature group 'seq' "
                                   "has SequenceFeature 'seq' without sequence_combiner")
