"""Tests of Cross (DCN-v2) and CrossV1 (DCN) (math pinned by hand numbers and numpy)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.cross import Cross, CrossV1
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

X0 = np.array([[1.0, 2.0]], dtype="float32")
XL = np.array([[3.0, -1.0]], dtype="float32")


def st_layer(class_name, params):
    proto = backbone_pb2.KerasLayer(class_name=class_name)
    proto.st_params.update(params)
    return create_layer(proto, "blk", f"block {class_name}")


def test_cross_full_rank_by_hand():
    layer = Cross()
    layer(X0)
    layer.dense.kernel.assign([[1.0, 2.0], [0.0, 1.0]])
    layer.dense.bias.assign([0.5, -1.0])
    # W x + b = [1, 1*2 + 2*1] + [.5, -1] = [1.5, 3]; x0 * that + x = [1.5, 6] + [1, 2]
    np.testing.assert_allclose(layer(X0).numpy(), [[2.5, 8.0]], rtol=1e-6)
    np.testing.assert_allclose(layer([X0, X0]).numpy(), [[2.5, 8.0]], rtol=1e-6)
    diag = Cross(diag_scale=1.0)
    diag(X0)
    diag.set_weights(layer.get_weights())
    # + diag_scale * x: [1.5 + 1, 3 + 2] = [2.5, 5]; x0 * that + x = [2.5, 10] + [1, 2]
    np.testing.assert_allclose(diag(X0).numpy(), [[3.5, 12.0]], rtol=1e-6)


def test_cross_two_inputs_low_rank_and_preactivation_by_hand():
    layer = Cross(use_bias=False)
    layer([X0, XL])
    layer.dense.kernel.assign(np.eye(2, dtype="float32"))
    # W x_l = x_l = [3, -1]; x0 * x_l + x_l = [3, -2] + [3, -1]
    np.testing.assert_allclose(layer([X0, XL]).numpy(), [[6.0, -3.0]], rtol=1e-6)
    low = Cross(projection_dim=1)
    low(X0)
    assert [tuple(w.shape) for w in low.weights] == [(2, 1), (1, 2), (2,)]
    low.dense_u.kernel.assign([[1.0], [1.0]])
    low.dense.kernel.assign([[2.0, -1.0]])
    # U x = 3, V (U x) = [6, -3]; x0 * that + x = [6, -6] + [1, 2]
    np.testing.assert_allclose(low(X0).numpy(), [[7.0, -4.0]], rtol=1e-6)
    act = Cross(projection_dim=1, preactivation="relu")
    act(X0)
    act.set_weights(low.get_weights())
    # relu([6, -3]) = [6, 0]; + x = [7, 2]
    np.testing.assert_allclose(act(X0).numpy(), [[7.0, 2.0]], rtol=1e-6)


def test_cross_v1_by_hand():
    layer = CrossV1()
    layer([X0, XL])
    assert [tuple(w.shape) for w in layer.weights] == [(2, 1), (2,)]
    layer.kernel.assign([[1.0], [1.0]])
    layer.bias.assign([0.5, 0.5])
    # <w, x_l> = 2; x0 * 2 + b + x_l = [2, 4] + [.5, .5] + [3, -1]
    np.testing.assert_allclose(layer([X0, XL]).numpy(), [[5.5, 3.5]], rtol=1e-6)
    assert len(CrossV1(use_bias=False)(X0).shape) == 2


def test_cross_matches_numpy_on_random_weights():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(5, 6)).astype("float32")
    x = rng.normal(size=(5, 6)).astype("float32")
    layer = Cross(projection_dim=2, diag_scale=0.5)
    out = layer([x0, x]).numpy()
    u, v, b = (w.numpy() for w in layer.weights)
    np.testing.assert_allclose(out, x0 * (x @ u @ v + b + 0.5 * x) + x, rtol=1e-4, atol=1e-5)
    v1 = CrossV1()
    out = v1([x0, x]).numpy()
    w, b = (t.numpy() for t in v1.weights)
    np.testing.assert_allclose(out, x0 * (x @ w) + b + x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [(Cross, {"projection_dim": 3, "preactivation": "tanh",
                                                 "kernel_regularizer": "l2"}),
                                        (CrossV1, {})])
def test_cross_training_step_round_trip(cls, kwargs):
    x = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    layer = cls(name="c", **kwargs)
    layer(x)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x) - 1.0)) + sum(layer.losses)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = cls.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)([x, x]).numpy(), layer(x).numpy(), rtol=1e-5)
    assert clone.get_config() == layer.get_config()
    assert layer.compute_output_shape((None, 4)) == (None, 4)


def test_cross_errors_and_params():
    with pytest.raises(ConfigError, match="diag_scale.*non-negative"):
        Cross(diag_scale=-1.0)
    with pytest.raises(ConfigError, match="unknown regularizer 'l3'"):
        Cross(kernel_regularizer="l3")
    with pytest.raises(ConfigError, match="unknown activation"):
        Cross(preactivation="relux")
    with pytest.raises(ConfigError, match="same shape \\(batch, d\\)"):
        Cross()([X0, np.ones((1, 3), "float32")])
    with pytest.raises(ConfigError, match="list \\[x_0, x_l\\] of two"):
        CrossV1()([X0, X0, X0])
    # EasyRec's DCN configs give Cross no parameters: EasyRec's defaults
    default = st_layer("Cross", {})
    assert (default.projection_dim, default.diag_scale, default.use_bias,
            default.kernel_initializer) == (None, 0.0, True, "truncated_normal")
    proto = backbone_pb2.KerasLayer(class_name="Cross")
    proto.cross.projection_dim = 4
    assert create_layer(proto, "c", "block c").projection_dim == 4


def test_easyrec_dcn_config_recurrent_cross_is_a_stack_of_layers():
    # EasyRec's dcn_backbone_on_taobao.config, on the tiny features
    text = tiny_config("""
      backbone {
        blocks { name: "deep" inputs { feature_group_name: "all" }
          keras_layer { class_name: "MLP" mlp { hidden_units: [8, 4] } } }
        blocks { name: "cross"
          inputs { feature_group_name: "all" input_fn: "lambda x: [x, x]" }
          recurrent { num_steps: 3 fixed_input_index: 0 keras_layer { class_name: "Cross" } } }
        concat_blocks: ['deep', 'cross']
        top_mlp { hidden_units: [4] }
      }
      model_params { l2_regularization: 1e-6 }
    """)
    model, pre = build_and_initialize(resolve(parse_config_text(text, "t.config")))
    layers = model.backbone.dag.blocks["cross"].steps[0].layers
    assert len(layers) == 3 and all(isinstance(c, Cross) for c in layers)
    assert len({id(c.dense.kernel) for c in layers}) == 3  # one W per layer
    columns = {"clk": tf.constant([1, 0]), "buy": tf.constant([0, 1]),
               "user": tf.constant(["u1", "u2"]), "tags": tf.constant(["a|b", ""]),
               "price": tf.constant([0.5, 2.0])}
    fg = model.feature_groups(pre(columns))
    x0 = x = fg["groups"]["all"].numpy()
    for c in layers:
        x = x0 * (x @ c.dense.kernel.numpy() + c.dense.bias.numpy()) + x
    values = model.backbone.dag.block_values(fg)
    np.testing.assert_allclose(values["cross"].numpy(), x, rtol=1e-4, atol=1e-5)


def test_dcn_v1_cross_tower_as_a_recurrent_block():
    # what EasyRec's DCN model class builds: `cross_tower { cross_num: 2 }` on group "all"
    text = tiny_config("""
      backbone {
        blocks { name: "cross"
          inputs { feature_group_name: "all" input_fn: "lambda x: [x, x]" }
          recurrent { num_steps: 2 fixed_input_index: 0
                      keras_layer { class_name: "CrossV1" cross_v1 { } } } }
        concat_blocks: 'cross'
      }
    """)
    model, pre = build_and_initialize(resolve(parse_config_text(text, "t.config")))
    layers = model.backbone.dag.blocks["cross"].steps[0].layers
    assert [type(c) for c in layers] == [CrossV1, CrossV1]
    assert layers[0].kernel.shape == (9, 1)  # group "all": 4 + 4 + 1 wide
