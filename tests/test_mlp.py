"""MLP: outputs against numbers computed by hand, EasyRec's defaults, config round trip."""

import numpy as np
import pytest
import tensorflow as tf

from easyblocks.blocks.mlp import MLP
from easyblocks.errors import ConfigError

W1 = np.array([[1.0, -1.0], [2.0, 0.0]], np.float32)
W2 = np.array([[1.0], [3.0]], np.float32)


def test_mlp_with_bias_no_bn_by_hand():
    mlp = MLP([2, 1], use_bn=False, use_final_bn=False, use_bias=True, use_final_bias=True,
              final_activation="linear")
    x = np.array([[1.0, 2.0], [-1.0, 0.0]], np.float32)
    mlp(x)
    mlp.set_weights([W1, np.array([0.0, 0.5], np.float32), W2, np.array([-1.0], np.float32)])
    # row 1: h = [1+4, -1+0.5] -> relu [5, 0] -> 5*1 + 0*3 - 1 = 4
    # row 2: h = [-1, 1+0.5] -> relu [0, 1.5] -> 0 + 4.5 - 1 = 3.5
    np.testing.assert_allclose(mlp(x).numpy(), [[4.0], [3.5]], rtol=1e-6)


def test_easyrec_defaults_bn_no_bias_at_inference():
    mlp = MLP([2, 1])
    x = np.array([[1.0, 2.0]], np.float32)
    mlp(x)
    assert len(mlp.trainable_weights) == 2 + 2 + 2  # 2 kernels, 2x(gamma, beta), no bias
    mlp.dense_layers[0].kernel.assign(W1)
    mlp.dense_layers[1].kernel.assign(W2)
    # BN at inference with fresh statistics divides by sqrt(1 + 1e-3); relu after each layer
    # h = [5, -1] / sqrt(1.001) -> relu -> [5/sqrt(1.001), 0] -> *[1, 3] -> /sqrt(1.001)
    np.testing.assert_allclose(mlp(x, training=False).numpy(), [[5.0 / 1.001]], rtol=1e-5)


def test_dropout_only_in_training_and_config_round_trip():
    mlp = MLP([8, 4], dropout_ratio=[0.5, 0.0], use_bn=False, use_final_bn=False)
    x = tf.ones((3, 5))
    a = mlp(x, training=False)
    clone = MLP.from_config(mlp.get_config())
    clone(x)
    clone.set_weights(mlp.get_weights())
    np.testing.assert_allclose(clone(x, training=False).numpy(), a.numpy())
    assert mlp.dropouts[0] is not None and mlp.dropouts[1] is None


def test_training_step_changes_weights():
    mlp = MLP([4, 1])
    x = tf.random.normal((16, 3))
    mlp(x)
    before = [w.numpy().copy() for w in mlp.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(mlp(x, training=True) - 1.0))
    grads = tape.gradient(loss, mlp.trainable_weights)
    for g, w in zip(grads, mlp.trainable_weights):
        w.assign_sub(0.1 * g)
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, mlp.trainable_weights))


@pytest.mark.parametrize("kwargs, match", [
    ({"hidden_units": [0]}, "positive integers"),
    ({"hidden_units": [2, 2], "dropout_ratio": [0.1, 0.2, 0.3]}, "expected 1 or 2 values"),
    ({"hidden_units": [2], "activation": "rellu"},
     r"unknown activation 'rellu' \(did you mean: relu"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MLP(**kwargs)


def test_activation_names_like_easyrec():
    mlp = MLP([2], activation="tf.nn.relu", final_activation="tf.nn.sigmoid", use_bn=False,
              use_final_bn=False)
    out = mlp(tf.ones((1, 2)))
    assert np.all((out.numpy() > 0) & (out.numpy() < 1))
