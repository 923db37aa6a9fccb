"""Tests of APG: decomposed low-rank generated layers, over-parameterisation, conditions."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, layer_kwargs
from google.protobuf import text_format

from easyblocks.blocks.apg import APG
from easyblocks.blocks.registry import get_block
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

RNG = np.random.default_rng(3)
X = RNG.normal(size=(5, 4)).astype("float32")  # N = 4
Z = RNG.normal(size=(5, 3)).astype("float32")  # condition width 3
Z2 = RNG.normal(size=(5, 2)).astype("float32")


def relu(x):
    return np.maximum(x, 0.0)


def set_random(layer, seed=0):
    """Random values in every weight, so no test passes by an identity or zero init."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32")
                       for w in layer.get_weights()])


def np_apg_layer(dense, x, z):
    """y_i = x_i (U S_i V) + b with W_i materialised (numpy)."""
    h = z
    for g in dense.generator_hidden:
        k, b = g.get_weights()
        h = relu(h @ k + b)
    gen = h @ dense.generator_kernel.numpy() + dense.generator_bias.numpy()
    kk = dense.rank_k
    s = gen[:, : kk * kk].reshape(-1, kk, kk)
    if dense.overparam_p:
        u = dense.u_left.numpy() @ dense.u_right.numpy()
        v = dense.v_left.numpy() @ dense.v_right.numpy()
    else:
        u, v = dense.u.numpy(), dense.v.numpy()
    w = np.einsum("nk,bkl,lm->bnm", u, s, v)  # (batch, N, M): the materialised W_i
    bias = gen[:, kk * kk:] if dense.generate_bias else dense.bias.numpy()
    return np.einsum("bn,bnm->bm", x, w) + bias, w


def test_decomposed_forward_equals_materialised_weights():
    layer = APG(hidden_units=[3], rank_k=2, condition="group", activation="linear")
    layer([X, Z])
    set_random(layer)
    out = layer([X, Z]).numpy()
    want, w = np_apg_layer(layer.apg_layers[0], X, Z)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    assert w.shape == (5, 4, 3)
    assert np.abs(w[0] - w[1]).max() > 1e-3  # the weights really differ per example


def test_hand_computed_single_example():
    # N = M = 2, K = 1: U = [[1], [2]], V = [[3, -1]], S = z @ G + g = [[0.5]]
    layer = APG(hidden_units=[2], rank_k=1, condition="group", activation="linear")
    layer([X[:1, :2], Z[:1, :1]])
    dense = layer.apg_layers[0]
    dense.u.assign([[1.0], [2.0]])
    dense.v.assign([[3.0, -1.0]])
    dense.generator_kernel.assign([[0.25]])
    dense.generator_bias.assign([0.0])
    dense.bias.assign([0.1, 0.2])
    x = np.array([[1.0, -1.0]], dtype="float32")
    z = np.array([[2.0]], dtype="float32")
    # x U = -1; S = 0.5; (x U) S V = -0.5 * [3, -1] = [-1.5, 0.5]; + b
    np.testing.assert_allclose(layer([x, z]).numpy(), [[-1.4, 0.7]], rtol=1e-6)


def test_identity_initialised_generator_bias_gives_u_v_at_start():
    layer = APG(hidden_units=[3], rank_k=2, condition="group", activation="linear")
    layer([X, Z])
    dense = layer.apg_layers[0]
    np.testing.assert_allclose(dense.generator_bias.numpy(), [1.0, 0.0, 0.0, 1.0])
    dense.generator_kernel.assign(np.zeros_like(dense.generator_kernel.numpy()))
    want = X @ dense.u.numpy() @ dense.v.numpy()
    np.testing.assert_allclose(layer([X, Z]).numpy(), want, rtol=1e-5, atol=1e-6)


def test_self_condition_generates_from_each_layers_input():
    layer = APG(hidden_units=[4, 3], rank_k=2, generator_hidden_units=[5])
    out = layer(X)
    set_random(layer, seed=1)
    out = layer(X).numpy()
    first, second = layer.apg_layers
    h = relu(np_apg_layer(first, X, X)[0])
    want = relu(np_apg_layer(second, h, h)[0])
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
    assert first.generator_hidden[0].kernel.shape == (4, 5)


def test_mix_condition_concatenates_conditions_at_the_input():
    mix = APG(hidden_units=[3], rank_k=2, condition="mix", generate_bias=True)
    mix([X, Z, Z2])
    set_random(mix, seed=2)
    group = APG(hidden_units=[3], rank_k=2, condition="group", generate_bias=True)
    zz = np.concatenate([Z, Z2], axis=-1)
    group([X, zz])
    group.set_weights(mix.get_weights())
    np.testing.assert_allclose(mix([X, Z, Z2]).numpy(), group([X, zz]).numpy(), rtol=1e-6)
    # generated bias: the generator's last M outputs
    want, _ = np_apg_layer(mix.apg_layers[0], X, zz)
    np.testing.assert_allclose(mix([X, Z, Z2]).numpy(), relu(want), rtol=1e-4, atol=1e-5)
    assert not hasattr(mix.apg_layers[0], "bias")
    assert mix.apg_layers[0].generator_kernel.shape == (5, 2 * 2 + 3)


def test_overparameterised_layer_equals_its_merged_form():
    layer = APG(hidden_units=[3, 2], rank_k=2, overparam_p=6, condition="group",
                generator_hidden_units=[4], use_bn=True)
    layer([X, Z], training=True)
    set_random(layer, seed=4)
    for bn in layer.bn_layers:  # keep the moving variance positive
        bn.moving_variance.assign(tf.abs(bn.moving_variance) + 0.5)
    dense = layer.apg_layers[0]
    assert dense.u_left.shape == (4, 6) and dense.u_right.shape == (6, 2)
    assert dense.v_left.shape == (2, 6) and dense.v_right.shape == (6, 3)
    (u0, v0), (u1, v1) = layer.merged_weights()
    np.testing.assert_allclose(u0, dense.u_left.numpy() @ dense.u_right.numpy(), rtol=1e-5)
    np.testing.assert_allclose(v0, dense.v_left.numpy() @ dense.v_right.numpy(), rtol=1e-5)
    assert u1.shape == (3, 2) and v1.shape == (2, 2)
    merged = layer.merged_layer()
    assert merged.overparam_p == 0 and not hasattr(merged.apg_layers[0], "u_left")
    np.testing.assert_allclose(merged.apg_layers[0].u.numpy(), u0, rtol=1e-6)
    np.testing.assert_allclose(merged([X, Z], training=False).numpy(),
                               layer([X, Z], training=False).numpy(), rtol=1e-4, atol=1e-5)
    # and it is the materialised-matrix math
    h, _ = np_apg_layer(merged.apg_layers[0], X, Z)
    assert h.shape == (5, 3)


def test_merged_layer_self_condition():
    layer = APG(hidden_units=[3], rank_k=2, overparam_p=2)
    layer(X)
    set_random(layer, seed=5)
    np.testing.assert_allclose(layer.merged_layer()(X).numpy(), layer(X).numpy(), rtol=1e-5)


def test_naive_generator_materialises_full_matrix():
    layer = APG(hidden_units=[3], condition="group", naive_generator=True, activation="linear")
    layer([X, Z])
    set_random(layer, seed=6)
    dense = layer.apg_layers[0]
    assert dense.generator_kernel.shape == (3, 4 * 3)
    w = (Z @ dense.generator_kernel.numpy() + dense.generator_bias.numpy()).reshape(5, 4, 3)
    want = np.einsum("bn,bnm->bm", X, w) + dense.bias.numpy()
    np.testing.assert_allclose(layer([X, Z]).numpy(), want, rtol=1e-4, atol=1e-5)


def test_constraints_rejected_with_config_error():
    with pytest.raises(ConfigError, match=r"rank_k <= min\(N, M\) = min\(4, 8\) = 4"):
        APG(hidden_units=[8], rank_k=6)(X)  # K > N (known at build)
    with pytest.raises(ConfigError, match=r"layer 1: expected rank_k <= min\(N, M\)"):
        APG(hidden_units=[8, 2], rank_k=4)  # K > M of layer 1
    with pytest.raises(ConfigError, match="overparam_p >= rank_k = 3"):
        APG(hidden_units=[4], rank_k=3, overparam_p=2)
    with pytest.raises(ConfigError, match="condition"):
        APG(hidden_units=[4], rank_k=2, condition="selfish")
    with pytest.raises(ConfigError, match=r"\[x, z\]"):
        APG(hidden_units=[4], rank_k=2, condition="group")(X)
    APG(hidden_units=[4], rank_k=2, overparam_p=2)(X)  # P == K is allowed
    APG(hidden_units=[8], rank_k=4, condition="self-wise")(X)  # K == N is allowed


def test_training_step_changes_weights_and_config_round_trip():
    # no batch norm here: a bias right before a batch norm has (numerically) no gradient
    keras.utils.set_random_seed(0)
    layer = APG(hidden_units=[4, 2], rank_k=2, overparam_p=3, condition="group",
                generator_hidden_units=[3], dropout_ratio=[0.1, 0.0])
    layer([X, Z])
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer([X, Z], training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(w.numpy() - b).max() > 0
               for w, b in zip(layer.trainable_weights, before))
    clone = APG.from_config(layer.get_config())
    clone([X, Z])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone([X, Z]).numpy(), layer([X, Z]).numpy(), rtol=1e-5)
    assert clone.get_config() == layer.get_config()


def test_typed_params_and_st_params_give_the_same_layer():
    typed = text_format.Parse(
        'class_name: "APG" apg { hidden_units: [4, 3] rank_k: 2 overparam_p: 4 '
        'condition: "group" generator_hidden_units: [6] generate_bias: true }',
        backbone_pb2.KerasLayer())
    st = text_format.Parse(
        'class_name: "APG" st_params {'
        ' fields { key: "hidden_units" value { list_value { values { number_value: 4 }'
        '   values { number_value: 3 } } } }'
        ' fields { key: "rank_k" value { number_value: 2 } }'
        ' fields { key: "overparam_p" value { number_value: 4 } }'
        ' fields { key: "condition" value { string_value: "group" } }'
        ' fields { key: "generator_hidden_units" value { list_value {'
        '   values { number_value: 6 } } } }'
        ' fields { key: "generate_bias" value { bool_value: true } } }',
        backbone_pb2.KerasLayer())
    spec = get_block("APG")
    assert layer_kwargs(typed, spec, "b") == layer_kwargs(st, spec, "b")
    a = create_layer(typed, "apg", "block apg")
    b = create_layer(st, "apg", "block apg")
    assert a.get_config() == b.get_config()
    assert a([X, Z]).shape == (5, 3)
    with pytest.raises(ConfigError, match="rank_k"):
        create_layer(text_format.Parse('class_name: "APG" apg { hidden_units: [8] }',
                                       backbone_pb2.KerasLayer()), "apg", "block apg")


def test_apg_keras_save_and_reload_round_trip(tmp_path):
    x_in, z_in, z2_in = keras.Input((4,)), keras.Input((3,)), keras.Input((2,))
    mix = APG(hidden_units=[4, 3], rank_k=2, overparam_p=4, condition="mix",
              generator_hidden_units=[5], use_bn=True)([x_in, z_in, z2_in])
    own = APG(hidden_units=[3], rank_k=3)(x_in)
    model = keras.Model([x_in, z_in, z2_in], [mix, own])
    path = str(tmp_path / "apg.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(loaded([X, Z, Z2]), model([X, Z, Z2])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
