"""Tests of SENet, Bilinear and FiBiNet (math pinned by hand numbers and numpy formulas)."""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.fibinet import Bilinear, FiBiNet, SENet
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

# batch 2, F = 3 fields, d = 2 (as in test_blocks_interaction)
V = np.array(
    [
        [[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]],
        [[-1.0, 1.0], [2.0, 2.0], [1.0, -3.0]],
    ],
    dtype="float32",
)
FIELDS = [V[:, i] for i in range(3)]


def layer_norm(x, eps=1e-3):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def senet_numpy(fields, g, w1, b1, w2, b2, skip=True, ln=True):
    """SENet+ by the formula: squeeze (max, mean per group), excite, re-weight, skip, LN."""
    z = []
    for f in fields:
        groups = f.reshape(f.shape[0], g, -1)
        z += [groups.max(axis=-1), groups.mean(axis=-1)]
    z = np.concatenate(z, axis=1)
    a = np.maximum(z @ w1 + b1, 0.0) @ w2 + b2
    v = np.concatenate(fields, axis=1)
    out = v * a + (v if skip else 0.0)
    return layer_norm(out) if ln else out


def st_layer(class_name, params):
    proto = backbone_pb2.KerasLayer(class_name=class_name)
    proto.st_params.update(params)
    return create_layer(proto, "blk", f"block {class_name}")


# ---------------------------------------------------------------------------- SENet


def test_senet_by_hand_one_group():
    layer = SENet(reduction_ratio=4, num_squeeze_group=1, use_output_layer_norm=False)
    v1 = np.array([[1.0, 3.0]], "float32")
    v2 = np.array([[2.0, -2.0]], "float32")
    layer([v1, v2])
    # W1 (4 -> max(1, 2*1*2 // 4) = 1 unit)
    assert layer.reduce_layer.kernel.shape == (4, 1)
    layer.reduce_layer.kernel.assign(np.ones((4, 1), "float32"))
    layer.excite_layer.kernel.assign(np.array([[0.1, 0.2, 0.3, 0.4]], "float32"))
    # z = [max v1, mean v1, max v2, mean v2] = [3, 2, 2, 0]; relu(3 + 2 + 2 + 0) = 7
    # weights = 7 * [.1 .2 .3 .4] = [.7 1.4 2.1 2.8]; v * w + v with v = [1 3 2 -2]
    np.testing.assert_allclose(layer([v1, v2]).numpy(), [[1.7, 7.2, 6.2, -7.6]], rtol=1e-6)


def test_senet_groups_skip_and_layer_norm_match_numpy():
    rng = np.random.default_rng(0)
    fields = [rng.normal(size=(5, d)).astype("float32") for d in (4, 6, 2)]
    for skip, ln in ((True, True), (False, False), (True, False)):
        layer = SENet(reduction_ratio=2, num_squeeze_group=2, use_skip_connection=skip,
                      use_output_layer_norm=ln)
        out = layer(fields).numpy()
        assert out.shape == (5, 12)
        # 2 g F = 12 squeezed values; W1 has 12 // 2 = 6 units
        assert layer.reduce_layer.kernel.shape == (12, 6)
        r, e = layer.reduce_layer, layer.excite_layer
        want = senet_numpy(fields, 2, r.kernel.numpy(), r.bias.numpy(), e.kernel.numpy(),
                           e.bias.numpy(), skip, ln)
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_senet_3d_input_counts_fields_and_weights():
    layer = SENet()
    out = layer(V)  # 3 fields of d = 2
    np.testing.assert_allclose(out.numpy(), layer(FIELDS).numpy(), rtol=1e-6)
    # W1 (12 -> 12 // 4 = 3) + bias, W2 (3 -> 6) + bias, LayerNorm gamma and beta
    assert sorted(tuple(w.shape) for w in layer.weights) == sorted(
        [(12, 3), (3,), (3, 6), (6,), (6,), (6,)])


def test_senet_errors_training_step_and_round_trip():
    with pytest.raises(ConfigError, match="multiple of num_squeeze_group=2.*widths \\[2, 3\\]"):
        SENet()([FIELDS[0], np.ones((2, 3), "float32")])
    with pytest.raises(ConfigError, match="expected a list of \\(batch, d_i\\)"):
        SENet()(V[:, 0])
    with pytest.raises(ConfigError, match="positive"):
        SENet(reduction_ratio=0)
    layer = SENet(name="se")
    layer(FIELDS)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(FIELDS) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = SENet.from_config(layer.get_config())
    clone(FIELDS)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)(FIELDS).numpy(), layer(FIELDS).numpy(),
                               rtol=1e-5)
    assert clone.get_config() == layer.get_config()
    assert layer.compute_output_shape([(None, 2)] * 3) == (None, 6)


def test_senet_typed_params_and_st_params_same_defaults():
    proto = backbone_pb2.KerasLayer(class_name="SENet")
    proto.senet.reduction_ratio = 2
    typed = create_layer(proto, "se", "block se")
    loose = st_layer("SENet", {"reduction_ratio": 2})
    keys = ("reduction_ratio", "num_squeeze_group", "use_skip_connection",
            "use_output_layer_norm")
    assert {k: typed.get_config()[k] for k in keys} == {k: loose.get_config()[k] for k in keys} \
        == {"reduction_ratio": 2, "num_squeeze_group": 2, "use_skip_connection": True,
            "use_output_layer_norm": True}


# ------------------------------------------------------------------------- Bilinear


def bilinear_numpy(fields, kind, plus, layers, out_kernel, out_bias):
    """The bilinear products by loops from the layer's own Dense weights."""
    f = len(fields)
    products = []
    for k, (i, j) in enumerate(itertools.combinations(range(f), 2)):
        dense = layers[0] if kind == "all" else layers[i] if kind == "each" else layers[k]
        wv = fields[i] @ dense.kernel.numpy() + dense.bias.numpy()
        products.append((wv * fields[j]).sum(axis=1, keepdims=True) if plus else wv * fields[j])
    return np.concatenate(products, axis=1) @ out_kernel + out_bias


def test_bilinear_with_identity_weights_is_the_pairwise_inner_product_sum():
    for plus in (True, False):
        layer = Bilinear(num_output_units=1, type="all", use_plus=plus)
        layer(FIELDS)
        layer.pair_layers[0].kernel.assign(np.eye(2, dtype="float32"))
        layer.output_layer.kernel.assign(np.ones(layer.output_layer.kernel.shape, "float32"))
        # sum_{i<j} <v_i, v_j>: example 0: 1 + .5 + 1.5 = 3, example 1: 0 - 4 - 4 = -8
        np.testing.assert_allclose(layer(FIELDS).numpy(), [[3.0], [-8.0]], rtol=1e-6)


@pytest.mark.parametrize("kind", ["all", "each", "interaction"])
@pytest.mark.parametrize("plus", [True, False])
def test_bilinear_matches_loops(kind, plus):
    rng = np.random.default_rng(1)
    fields = [rng.normal(size=(4, 3)).astype("float32") for _ in range(4)]
    layer = Bilinear(num_output_units=5, type=kind, use_plus=plus)
    out = layer(fields).numpy()
    assert out.shape == (4, 5)
    n_pair_layers = {"all": 1, "each": 3, "interaction": 6}[kind]
    assert len(layer.pair_layers) == n_pair_layers
    assert layer.output_layer.kernel.shape == ((6 if plus else 18), 5)
    want = bilinear_numpy(fields, kind, plus, layer.pair_layers,
                          layer.output_layer.kernel.numpy(), layer.output_layer.bias.numpy())
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_bilinear_interaction_takes_fields_of_different_widths():
    rng = np.random.default_rng(2)
    fields = [rng.normal(size=(3, d)).astype("float32") for d in (2, 4, 1)]
    layer = Bilinear(num_output_units=2, use_plus=False)
    out = layer(fields).numpy()
    # W_01: 2 -> 4, W_02: 2 -> 1, W_12: 4 -> 1; Hadamard products of widths 4 + 1 + 1
    assert [tuple(d.kernel.shape) for d in layer.pair_layers] == [(2, 4), (2, 1), (4, 1)]
    assert layer.output_layer.kernel.shape == (6, 2)
    want = bilinear_numpy(fields, "interaction", False, layer.pair_layers,
                          layer.output_layer.kernel.numpy(), layer.output_layer.bias.numpy())
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="type 'each' needs fields of one width"):
        Bilinear(num_output_units=2, type="each")(fields)


def test_bilinear_errors_training_and_round_trip():
    with pytest.raises(ConfigError, match="expected `type` to be one of all, each, interaction"):
        Bilinear(num_output_units=2, type="field")
    with pytest.raises(ConfigError, match="at least 2 fields"):
        Bilinear(num_output_units=2)([FIELDS[0]])
    with pytest.raises(ConfigError, match="missing required parameter.*num_output_units"):
        st_layer("Bilinear", {"type": "all"})
    layer = Bilinear(num_output_units=3, type="each", name="bi")
    layer(FIELDS)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(FIELDS)))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 2 * 2 + 2 and all(g is not None for g in grads)
    clone = Bilinear.from_config(layer.get_config())
    clone(FIELDS)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)(FIELDS).numpy(), layer(FIELDS).numpy(),
                               rtol=1e-5)
    proto = backbone_pb2.KerasLayer(class_name="Bilinear")
    proto.bilinear.num_output_units = 4
    typed = create_layer(proto, "bi", "block bi")
    assert (typed.type, typed.use_plus, typed.num_output_units) == ("interaction", True, 4)


# -------------------------------------------------------------------------- FiBiNet


def test_fibinet_is_the_concat_of_senet_and_bilinear_then_mlp():
    fib = FiBiNet(senet={"reduction_ratio": 2}, bilinear={"num_output_units": 3, "type": "all"})
    out = fib(FIELDS).numpy()
    assert out.shape == (2, 6 + 3)
    senet = SENet(reduction_ratio=2)
    bilinear = Bilinear(num_output_units=3, type="all")
    senet(FIELDS), bilinear(FIELDS)
    senet.set_weights(fib.senet.get_weights())
    bilinear.set_weights(fib.bilinear.get_weights())
    want = np.concatenate([senet(FIELDS).numpy(), bilinear(FIELDS).numpy()], axis=1)
    np.testing.assert_allclose(out, want, rtol=1e-5)
    with_mlp = FiBiNet(senet={}, mlp={"hidden_units": [4], "use_bn": False,
                                      "use_final_bn": False, "final_activation": "linear"})
    assert with_mlp(FIELDS).shape == (2, 4)
    assert with_mlp.mlp.dense_layers[0].kernel.shape == (6, 4)  # SENet only: 6 wide


def test_fibinet_training_round_trip_and_params():
    layer = FiBiNet(senet={"num_squeeze_group": 1}, bilinear={"num_output_units": 2},
                    mlp={"hidden_units": [4]}, name="fib")
    layer(V, training=True)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(V, training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    clone = FiBiNet.from_config(layer.get_config())
    clone(V)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(V).numpy(), layer(V).numpy(), rtol=1e-5)
    assert layer.compute_output_shape([(None, 2)] * 3) == (None, 4)
    with pytest.raises(ConfigError, match="bad parameters"):
        FiBiNet(senet={"ratio": 2})
    built = st_layer("FiBiNet", {"senet": {"reduction_ratio": 4},
                                 "bilinear": {"type": "each", "num_output_units": 8}})
    assert built.bilinear.type == "each" and built.senet.num_squeeze_group == 2


# ------------------------------------------------------------- EasyRec-style configs

EQUAL_DIM = """
feature_configs { input_names: "price" feature_name: "price_bucket" feature_type: RawFeature
                  boundaries: [1.0, 2.0] embedding_dim: 4 }
"""
COLUMNS = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
           "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
           "price": tf.constant([0.5, 2.0, 4.0])}


def build(model_text, extra=EQUAL_DIM):
    resolved = resolve(parse_config_text(tiny_config(model_text, extra), "t.config"))
    return build_and_initialize(resolved)


def test_easyrec_fibinet_config_validates_and_builds():
    # EasyRec's fibinet_on_taobao.config wiring (its input block, named like the group and with
    # do_batch_norm, is the config-language issue's)
    model, pre = build("""
      feature_groups { group_name: "fields" feature_names: ["user", "tags", "price_bucket"] }
      backbone {
        blocks { name: "all_fields" inputs { feature_group_name: "fields" }
          input_layer { only_output_feature_list: true } }
        blocks { name: "fibinet" inputs { block_name: "all_fields" }
          keras_layer { class_name: 'FiBiNet'
            fibinet {
              senet { reduction_ratio: 4 }
              bilinear { type: 'each' num_output_units: 16 }
              mlp { hidden_units: [8, 4] }
            } } }
        concat_blocks: ['fibinet']
      }
    """)
    fib = model.backbone.dag.blocks["fibinet"].steps[0].layers[0]
    assert isinstance(fib, FiBiNet) and fib.bilinear.type == "each"
    assert model(pre(COLUMNS))["probs_clk"].shape == (3,)


def test_easyrec_senet_mmoe_config_validates_and_builds():
    # EasyRec's mmoe_backbone_on_taobao.config / dssm_senet wiring: SENet on the field list
    model, pre = build("""
      feature_groups { group_name: "fields" feature_names: ["user", "tags", "price_bucket"] }
      backbone {
        blocks { name: 'all_fields' inputs { feature_group_name: 'fields' }
          input_layer { only_output_feature_list: true } }
        blocks { name: "senet" inputs { block_name: "all_fields" }
          keras_layer { class_name: 'SENet'
            senet { num_squeeze_group: 2 reduction_ratio: 4 use_skip_connection: false
                    use_output_layer_norm: false } } }
        blocks { name: "dnn" inputs { block_name: "senet" }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [8, 4] } } }
        concat_blocks: ['dnn']
      }
    """)
    senet = model.backbone.dag.blocks["senet"].steps[0].layers[0]
    assert not senet.use_skip_connection and senet.layer_norm is None
    values = model.backbone.dag.block_values(model.feature_groups(pre(COLUMNS)))
    assert values["senet"].shape == (3, 12)
