"""Tests of MLR / LS-PLM: the returned logit is logit(f(x)), f pinned by hand in numpy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer

from easyblocks.blocks.mlr import MLR
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

X = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0], [2.0, 0.0, 1.0], [-1.0, 1.5, 0.2]], "float32")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(g):
    e = np.exp(g - g.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def logit(p):
    return np.log(p / (1.0 - p))


def test_one_piece_is_logistic_regression():
    layer = MLR(num_pieces=1)
    layer(X)
    w = np.array([[0.5], [-1.0], [2.0]], "float32")
    layer.fit_kernel.assign(w)
    layer.fit_bias.assign([0.25])
    layer.divide_kernel.assign(np.array([[3.0], [1.0], [-7.0]], "float32"))  # irrelevant, m=1
    out = layer(X).numpy()
    assert out.shape == (4, 1)
    np.testing.assert_allclose(out, X @ w + 0.25, rtol=1e-5, atol=1e-6)
    # first row by hand: 0.5 + 2 + 1 + 0.25
    np.testing.assert_allclose(out[0, 0], 3.75, rtol=1e-6)


def test_two_pieces_equal_the_formula_by_hand():
    layer = MLR(num_pieces=2)
    layer(X)
    u = np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]], "float32")
    u0 = np.array([0.1, -0.1], "float32")
    w = np.array([[2.0, -1.0], [-1.0, 0.5], [0.5, 1.5]], "float32")
    w0 = np.array([0.0, 0.3], "float32")
    layer.divide_kernel.assign(u)
    layer.divide_bias.assign(u0)
    layer.fit_kernel.assign(w)
    layer.fit_bias.assign(w0)
    f = (softmax(X @ u + u0) * sigmoid(X @ w + w0)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(layer(X).numpy(), logit(f), rtol=1e-5, atol=1e-5)
    # row 0 by hand: gate = [1 - 1 + .1, -1 + 1 - .1] = [.1, -.1]; z = [2 + 2 + .25, -1 - 1 + .75
    # + .3] = [4.25, -0.95]
    pi = np.exp([0.1, -0.1]) / np.exp([0.1, -0.1]).sum()
    f0 = pi[0] * sigmoid(4.25) + pi[1] * sigmoid(-0.95)
    np.testing.assert_allclose(tf.sigmoid(layer(X)).numpy()[0, 0], f0, rtol=1e-5)


def test_structure_prior_divides_with_the_first_input_and_fits_with_the_second():
    x_d = X[:, :2]
    x_f = np.array([[1.0], [2.0], [-1.0], [0.0]], "float32")
    layer = MLR(num_pieces=2)
    layer([x_d, x_f])
    assert layer.divide_kernel.shape == (2, 2) and layer.fit_kernel.shape == (1, 2)
    u = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    w = np.array([[1.0, -2.0]], "float32")
    layer.divide_kernel.assign(u)
    layer.fit_kernel.assign(w)
    f = (softmax(x_d @ u) * sigmoid(x_f @ w)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(layer([x_d, x_f]).numpy(), logit(f), rtol=1e-5, atol=1e-5)


def bias_layer(mode):
    x_d, x_f, x_b = X[:, :2], X[:, 2:], np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0, 0]],
                                                   "float32")
    layer = MLR(num_pieces=2, bias_mode=mode)
    layer([x_d, x_f, x_b])
    layer.divide_kernel.assign([[1.0, -1.0], [0.5, 0.5]])
    layer.fit_kernel.assign([[2.0, -1.0]])
    layer.fit_bias.assign([0.0, 0.5])
    layer.bias_kernel.assign([[-1.0], [0.5]])
    layer.bias_offset.assign([0.2])
    f = (softmax(x_d @ np.array([[1.0, -1.0], [0.5, 0.5]]))
         * sigmoid(x_f @ np.array([[2.0, -1.0]]) + [0.0, 0.5])).sum(axis=1, keepdims=True)
    b = x_b @ np.array([[-1.0], [0.5]]) + 0.2
    return layer, [x_d, x_f, x_b], f, b


def test_linear_bias_multiplies_the_probabilities_by_default():
    layer, inputs, f, b = bias_layer("product")
    assert layer.bias_mode == "product" and MLR().bias_mode == "product"
    out = layer(inputs).numpy()
    np.testing.assert_allclose(tf.sigmoid(out).numpy(), f * sigmoid(b), rtol=1e-5)
    np.testing.assert_allclose(out, logit(f * sigmoid(b)), rtol=1e-5, atol=1e-5)


def test_linear_bias_can_be_added_to_the_logit():
    layer, inputs, f, b = bias_layer("logit")
    np.testing.assert_allclose(layer(inputs).numpy(), logit(f) + b, rtol=1e-5, atol=1e-5)


def test_extreme_inputs_give_the_exact_finite_logit_and_gradients():
    layer = MLR(num_pieces=1)
    x = np.array([[200.0], [-300.0], [0.0]], "float32")
    layer(x)
    layer.fit_kernel.assign([[1.0]])
    np.testing.assert_allclose(layer(x).numpy()[:, 0], [200.0, -300.0, 0.0], rtol=1e-6)
    layer2 = MLR(num_pieces=3)
    xb = [x, x, x]
    with tf.GradientTape() as tape:
        out = layer2(xb)
        loss = tf.reduce_sum(out)
    grads = tape.gradient(loss, layer2.trainable_weights)
    assert np.all(np.isfinite(out.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_l2_regularization_on_the_kernels():
    layer = MLR(num_pieces=2, l2_regularization=0.5)
    inputs = [X[:, :2], X[:, 2:], X]
    layer(inputs)
    want = 0.5 * sum(float(np.sum(k.numpy() ** 2)) for k in
                     (layer.divide_kernel, layer.fit_kernel, layer.bias_kernel))
    np.testing.assert_allclose(float(sum(layer.losses)), want, rtol=1e-5)
    assert MLR().losses == []


def test_training_step_changes_weights_and_round_trip():
    layer = MLR(num_pieces=4, name="mlr")
    inputs = [X[:, :2], X[:, 1:], X]
    layer(inputs)
    assert len(layer.trainable_weights) == 6  # U, W, u0, w0, w_b, c
    before = [w.numpy().copy() for w in layer.trainable_weights]
    y = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, layer(inputs)))
    grads = tape.gradient(loss, layer.trainable_weights)
    tf.keras.optimizers.SGD(0.5).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = MLR.from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(inputs).numpy(), layer(inputs).numpy(), rtol=1e-6)
    assert clone.get_config() == layer.get_config()
    assert layer.compute_output_shape([(None, 2), (None, 2), (None, 3)]) == (None, 1)


def test_three_d_input_is_flattened_and_integers_are_cast():
    x3 = X.reshape(4, 3, 1)
    layer = MLR(num_pieces=2)
    out3 = layer(x3)
    np.testing.assert_allclose(layer(X).numpy(), out3.numpy(), rtol=1e-6)
    ints = np.array([[1, 0, 1], [0, 1, 1]], "int64")
    np.testing.assert_allclose(layer(ints).numpy(), layer(ints.astype("float32")).numpy())


def test_bad_params_and_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="expected `num_pieces` to be a positive integer, "
                                          "received: num_pieces=0"):
        MLR(num_pieces=0)
    with pytest.raises(ConfigError, match="expected `bias_mode`.*received: bias_mode='sum'"):
        MLR(bias_mode="sum")
    with pytest.raises(ConfigError, match="l2_regularization"):
        MLR(l2_regularization=-1.0)
    with pytest.raises(ConfigError, match="received: a list of 4 inputs"):
        MLR()([X, X, X, X])
    with pytest.raises(ConfigError, match=r"expected the divide features as \(batch, n\)"):
        MLR()(X[:, 0])
    built = MLR()
    built([X, X])
    with pytest.raises(ConfigError, match="built for inputs without bias features, received 3"):
        built([X, X, X])


def test_created_from_st_params():
    proto = backbone_pb2.KerasLayer(class_name="MLR")
    proto.st_params.update({"num_pieces": 3, "l2_regularization": 1e-4, "bias_mode": "logit"})
    layer = create_layer(proto, "mlr", "block mlr")
    assert isinstance(layer, MLR)
    assert (layer.num_pieces, layer.l2_regularization, layer.bias_mode) == (3, 1e-4, "logit")
    assert layer(X).shape == (4, 1)
    default = create_layer(backbone_pb2.KerasLayer(class_name="MLR"), "mlr", "block mlr")
    assert default.num_pieces == 12
    bad = backbone_pb2.KerasLayer(class_name="MLR")
    bad.st_params.update({"pieces": 3})
    with pytest.raises(ConfigError, match="unknown parameter.*pieces"):
        create_layer(bad, "mlr", "block mlr")
