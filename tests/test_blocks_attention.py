"""Tests of InteractingLayer (AutoInt) and BiasAdd, pinned by hand."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer
from google.protobuf import text_format

from easyblocks.blocks.attention import InteractingLayer
from easyblocks.blocks.linear import BiasAdd
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

E = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # one example, F = 2 fields, d = 2


def _identity_weights(layer: InteractingLayer) -> None:
    for dense in (layer.query, layer.key, layer.value) + ((layer.residual,) if layer.residual
                                                          else ()):
        dense.kernel.assign(np.eye(2, dtype="float32"))


def test_one_head_with_residual_by_hand():
    layer = InteractingLayer(multi_head_num=1, multi_head_size=2)
    layer(E)
    _identity_weights(layer)
    out = layer(E).numpy()
    # field 1 scores <e1, e1> / sqrt(2), <e1, e2> / sqrt(2) = [0.7071, 0]:
    # softmax = [0.66976, 0.33024]; attended = 0.66976 e1 + 0.33024 e2; + e1 (residual), ReLU
    a = np.exp(1 / np.sqrt(2)) / (np.exp(1 / np.sqrt(2)) + 1)
    np.testing.assert_allclose(out[0], [[1 + a, 1 - a], [1 - a, 1 + a]], rtol=1e-5)


def test_two_heads_split_the_projection_without_residual():
    layer = InteractingLayer(multi_head_num=2, multi_head_size=1, use_residual=False)
    layer(E)
    _identity_weights(layer)
    assert layer.residual is None and len(layer.weights) == 3
    out = layer(E).numpy()
    # head 1 sees coordinate 0: fields (1, 0): field 1 scores [1, 0] -> 0.7311 of value 1;
    # field 2 scores [0, 0] -> mean of (1, 0) = 0.5. Head 2 (coordinate 1) mirrors it.
    s = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(out[0], [[s, 0.5], [0.5, s]], rtol=1e-5)


def test_shapes_list_input_default_head_size_config_and_gradients():
    x = np.random.default_rng(1).normal(size=(3, 4, 8)).astype("float32")
    layer = InteractingLayer(multi_head_num=2)  # head size 8 // 2 = 4
    out = layer(x)
    assert tuple(out.shape) == (3, 4, 8) and layer.head_size == 4
    assert layer.compute_output_shape((None, 4, 8)) == (None, 4, 8)
    listed = layer([x[:, i] for i in range(4)])
    np.testing.assert_allclose(listed.numpy(), out.numpy(), rtol=1e-6)
    clone = InteractingLayer.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), out.numpy(), rtol=1e-6)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x))
    assert all(g is not None for g in tape.gradient(y, layer.trainable_weights))


def test_errors_and_typed_params():
    with pytest.raises(ConfigError, match="expected positive `multi_head_num`"):
        InteractingLayer(multi_head_num=0)
    with pytest.raises(ConfigError, match="field width 2 is smaller than multi_head_num=4"):
        InteractingLayer(multi_head_num=4)(E)
    with pytest.raises(ConfigError, match="expected a 3-D input"):
        InteractingLayer()(np.ones((2, 3), "float32"))
    proto = text_format.Parse('class_name: "InteractingLayer" interacting_layer { '
                              'multi_head_num: 2 multi_head_size: 16 }', backbone_pb2.KerasLayer())
    built = create_layer(proto, "att", "block att")
    assert (built.multi_head_num, built.multi_head_size, built.use_residual) == (2, 16, True)


def test_bias_add_learns_a_bias_per_unit():
    layer = BiasAdd()
    x = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    np.testing.assert_allclose(layer(x).numpy(), x)  # starts at 0
    layer.bias.assign([0.5, -1.0])
    np.testing.assert_allclose(layer(x).numpy(), [[1.5, 1.0], [3.5, 3.0]])
    opt = keras.optimizers.SGD(1.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights),
                            layer.trainable_weights))
    np.testing.assert_allclose(layer.bias.numpy(), [0.5 - 2, -1.0 - 2])  # d/db = batch size
    built = create_layer(backbone_pb2.KerasLayer(class_name="BiasAdd"), "b", "block b")
    assert isinstance(built, BiasAdd)
    with pytest.raises(ConfigError, match="last dimension must be known"):
        BiasAdd().build((None, None))
