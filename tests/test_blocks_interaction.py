"""Tests of FM, InnerProduct and PNN (math pinned by brute-force numpy loops)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer

from easyblocks.blocks.interaction import FM, PNN, InnerProduct, pair_indices
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

# batch 2, F = 3 fields, d = 2
V = np.array(
    [
        [[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]],
        [[-1.0, 1.0], [2.0, 2.0], [1.0, -3.0]],
    ],
    dtype="float32",
)


def brute_force_pairs(v):
    """<v_i, v_j> for i < j by a double loop, in the order (0,1), (0,2), ..., (1,2), ..."""
    b, f, _ = v.shape
    out = []
    for i in range(f):
        for j in range(i + 1, f):
            out.append([float(np.dot(v[n, i], v[n, j])) for n in range(b)])
    return np.array(out).T  # (batch, pairs)


def st_layer(class_name, params):
    proto = backbone_pb2.KerasLayer(class_name=class_name)
    proto.st_params.update(params)
    return create_layer(proto, "blk", f"block {class_name}")


# ---------------------------------------------------------------------------- FM


def test_fm_equals_the_double_loop_and_hand_numbers():
    out = FM()(V).numpy()
    assert out.shape == (2, 1)
    want = brute_force_pairs(V).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    # example 0 by hand: <v0,v1> = 3 - 2 = 1, <v0,v2> = 0.5, <v1,v2> = 1.5 -> 3
    # example 1: <v0,v1> = -2 + 2 = 0, <v0,v2> = -1 - 3 = -4, <v1,v2> = 2 - 6 = -4 -> -8
    np.testing.assert_allclose(out[:, 0], [3.0, -8.0], rtol=1e-6)


def test_fm_variant_is_the_per_dimension_vector():
    out = FM(use_variant=True)(V).numpy()
    assert out.shape == (2, 2)
    want = np.zeros((2, 2))
    for n in range(2):
        for i in range(3):
            for j in range(i + 1, 3):
                want[n] += V[n, i] * V[n, j]
    np.testing.assert_allclose(out, want, rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1, keepdims=True), FM()(V).numpy(), rtol=1e-6)


def test_fm_random_input_matches_brute_force():
    v = np.random.default_rng(0).normal(size=(5, 7, 4)).astype("float32")
    np.testing.assert_allclose(
        FM()(v).numpy(), brute_force_pairs(v).sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-5
    )


def test_fm_accepts_a_list_of_2d_tensors_and_mixed_3d_parts():
    want = FM()(V).numpy()
    np.testing.assert_allclose(FM()([V[:, 0], V[:, 1], V[:, 2]]).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(FM()([V[:, :2], V[:, 2]]).numpy(), want, rtol=1e-6)


def test_fm_gradient_is_the_sum_of_the_other_fields():
    v = tf.constant(V)
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = tf.reduce_sum(FM()(v))
    grad = tape.gradient(y, v).numpy()
    # d/dv_i sum_{a<b} <v_a, v_b> = sum_{j != i} v_j
    want = V.sum(axis=1, keepdims=True) - V
    np.testing.assert_allclose(grad, want, rtol=1e-6)


def test_fm_bad_inputs_are_config_errors():
    with pytest.raises(ConfigError, match=r"expected a 3-D input .*received: shape \(2, 6\)"):
        FM(name="fm")(V.reshape(2, 6))
    with pytest.raises(ConfigError, match="same dimension d.*received"):
        FM()([V[:, 0], np.ones((2, 3), "float32")])
    with pytest.raises(ConfigError, match="expected.*received: an empty list"):
        FM()([])


def test_fm_config_round_trip_and_st_params():
    layer = FM(use_variant=True, name="fm")
    clone = FM.from_config(layer.get_config())
    assert clone.use_variant and clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone(V).numpy(), layer(V).numpy())
    assert layer.weights == []
    built = st_layer("FM", {"use_variant": True})
    assert isinstance(built, FM) and built.use_variant
    assert st_layer("FM", {}).use_variant is False
    assert FM().compute_output_shape((None, 3, 2)) == (None, 1)
    assert FM(use_variant=True).compute_output_shape([(None, 2), (None, 2)]) == (None, 2)


# ---------------------------------------------------------------------- InnerProduct


def test_pair_order_is_fixed():
    rows, cols = pair_indices(4)
    assert list(zip(rows.tolist(), cols.tolist())) == [
        (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)
    ]


def test_inner_product_equals_the_double_loop():
    out = InnerProduct()(V).numpy()
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, [[1.0, 0.5, 1.5], [0.0, -4.0, -4.0]], rtol=1e-6)
    v = np.random.default_rng(1).normal(size=(3, 6, 5)).astype("float32")
    out = InnerProduct()(v).numpy()
    assert out.shape == (3, 15)
    np.testing.assert_allclose(out, brute_force_pairs(v), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(InnerProduct()([v[:, i] for i in range(6)]).numpy(), out,
                               rtol=1e-6)


def test_inner_product_errors_shapes_config():
    with pytest.raises(ConfigError, match="at least 2 fields.*received: 1"):
        InnerProduct()(V[:, :1])
    with pytest.raises(ConfigError, match="expected a 3-D input"):
        InnerProduct()(V[:, 0])
    layer = InnerProduct(name="ip")
    assert layer.compute_output_shape((None, 6, 4)) == (None, 15)
    assert layer.compute_output_shape([(None, 4), (None, 2, 4)]) == (None, 3)
    assert InnerProduct.from_config(layer.get_config()).get_config() == layer.get_config()
    assert isinstance(st_layer("InnerProduct", {}), InnerProduct)


# ------------------------------------------------------------------------------ PNN


def linear_pnn():
    """A PNN whose MLP is one linear unit without bias or BN: out = concat[z, p] @ w."""
    return PNN(
        hidden_units=[1],
        mlp={"use_bn": False, "use_final_bn": False, "final_activation": "linear"},
    )


def test_pnn_is_an_mlp_over_flattened_fields_and_inner_products():
    layer = linear_pnn()
    layer(V)
    w = np.arange(1, 10, dtype="float32").reshape(9, 1) / 10.0  # 6 (z) + 3 (p) inputs
    layer.mlp.dense_layers[0].kernel.assign(w)
    out = layer(V).numpy()
    features = np.concatenate([V.reshape(2, 6), brute_force_pairs(V)], axis=1)  # (2, 9)
    np.testing.assert_allclose(out, features @ w, rtol=1e-6)
    # example 0 by hand: z = [1 2 3 -1 .5 0], p = [1 .5 1.5]
    # .1 + .4 + .9 - .4 + .25 + 0 + .7 + .4 + 1.35 = 3.7
    np.testing.assert_allclose(out[0, 0], 3.7, rtol=1e-6)


def test_pnn_shapes_training_step_and_round_trip():
    layer = PNN(hidden_units=[8, 4], mlp={"dropout_ratio": 0.0}, name="pnn")
    v = np.random.default_rng(2).normal(size=(16, 4, 3)).astype("float32")
    out = layer(v, training=True)
    assert out.shape == (16, 4)
    assert layer.mlp.dense_layers[0].kernel.shape == (4 * 3 + 6, 8)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    opt = tf.keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(v, training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    assert any(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = PNN.from_config(layer.get_config())
    clone(v)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(v).numpy(), layer(v).numpy(), rtol=1e-5)
    assert clone.get_config() == layer.get_config()


def test_pnn_outer_product_and_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match=r"outer.*not supported.*O\(F\^2 d\^2\)"):
        PNN(hidden_units=[4], product="outer")
    with pytest.raises(ConfigError, match="expected product='inner', received: product='kernel'"):
        PNN(hidden_units=[4], product="kernel")
    with pytest.raises(ConfigError, match="hidden_units"):
        PNN(hidden_units=[4], mlp={"hidden_units": [8]})
    with pytest.raises(ConfigError, match="bad `mlp` parameters"):
        PNN(hidden_units=[4], mlp={"units": 3})
    with pytest.raises(ConfigError, match="expected a 3-D input"):
        PNN(hidden_units=[4])(V.reshape(2, 6))


def test_pnn_from_st_params():
    built = st_layer("PNN", {"hidden_units": [8, 4], "mlp": {"use_bn": False}})
    assert isinstance(built, PNN)
    assert built.hidden_units == [8, 4] and built.mlp.use_bn is False
    assert built.get_config()["mlp"] == {"use_bn": False}
    assert built(V).shape == (2, 4)
    proto = backbone_pb2.KerasLayer(class_name="PNN")
    proto.st_params.update({"hidden_units": [4], "product": "outer"})
    with pytest.raises(ConfigError, match="not supported"):
        create_layer(proto, "pnn", "block pnn")
    with pytest.raises(ConfigError, match="missing required parameter.*hidden_units"):
        st_layer("PNN", {})
