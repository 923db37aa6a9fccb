"""Tests of DIN attention pooling: masking, the activation unit's math, normalisation."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer

from easyblocks.blocks.din import DEFAULT_ATTENTION_MLP, DIN
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

# batch 2, L = 3, d = 2; example 0 has 2 behaviours, example 1 has 1
SEQ = np.array(
    [[[1.0, 0.5], [-1.0, 2.0], [0.0, 0.0]], [[0.5, -0.5], [0.0, 0.0], [0.0, 0.0]]], "float32"
)
IDS = np.array([[7, 3, -1], [4, -1, -1]], "int64")
CAND = np.array([[0.5, 1.0], [-1.0, 0.0]], "float32")

# activation unit: 8 -> 2 (sigmoid, with bias), then the linear score unit 2 -> 1
W1 = np.array(
    [[0.1, -0.2], [0.3, 0.0], [-0.1, 0.2], [0.0, 0.4],
     [0.5, -0.5], [0.2, 0.1], [-0.3, 0.3], [0.1, 0.0]], "float32"
)
B1 = np.array([0.05, -0.1], "float32")
W2 = np.array([[1.5], [-2.0]], "float32")
B2 = np.array([0.3], "float32")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def hand_weights():
    """Unnormalised a(b_j, c) for every position, by numpy (padding included)."""
    a = np.zeros(IDS.shape)
    for n in range(2):
        for j in range(3):
            b, c = SEQ[n, j], CAND[n]
            unit = np.concatenate([b, c, b - c, b * c])
            a[n, j] = (sigmoid(unit @ W1 + B1) @ W2 + B2)[0]
    return a


def small_din(**kwargs):
    layer = DIN(attention_mlp={"hidden_units": [2]}, **kwargs)
    layer([SEQ, IDS, CAND])
    layer.attention.dense_layers[0].kernel.assign(W1)
    layer.attention.dense_layers[0].bias.assign(B1)
    layer.score.kernel.assign(W2)
    layer.score.bias.assign(B2)
    return layer


def test_output_is_the_hand_computed_unnormalised_weighted_sum():
    layer = small_din()
    a = hand_weights()
    mask = IDS >= 0
    want = np.stack([sum(a[n, j] * SEQ[n, j] for j in range(3) if mask[n, j]) for n in range(2)])
    out = layer([SEQ, IDS, CAND]).numpy()
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    weights = layer.attention_weights([SEQ, IDS, CAND]).numpy()
    np.testing.assert_allclose(weights, np.where(mask, a, 0.0), rtol=1e-5, atol=1e-6)
    assert abs(weights[0].sum() - 1.0) > 1e-3  # not normalised


def test_padded_positions_have_zero_weight_whatever_their_embedding():
    garbage = SEQ.copy()
    garbage[0, 2] = [100.0, -50.0]
    garbage[1, 1:] = [[3.0, 3.0], [-7.0, 9.0]]
    for kwargs in ({}, {"normalize": "softmax"}):
        layer = small_din(**kwargs)
        clean = layer([SEQ, IDS, CAND]).numpy()
        np.testing.assert_allclose(layer([garbage, IDS, CAND]).numpy(), clean, rtol=1e-6)
        w = layer.attention_weights([garbage, IDS, CAND]).numpy()
        assert w[0, 2] == 0.0 and w[1, 1] == 0.0 and w[1, 2] == 0.0


def test_batch_norm_in_training_does_not_see_padding_garbage():
    layer = DIN(attention_mlp={"hidden_units": [4], "use_bn": True, "use_final_bn": True})
    garbage = SEQ.copy()
    garbage[1, 1:] = 1e3
    clean = layer([SEQ, IDS, CAND], training=True).numpy()
    np.testing.assert_allclose(layer([garbage, IDS, CAND], training=True).numpy(), clean,
                               rtol=1e-5)


def test_softmax_normalisation_over_valid_positions_and_empty_sequences():
    layer = small_din(normalize="softmax")
    a = hand_weights()
    e0 = np.exp(a[0, :2] - a[0, :2].max())
    w = layer.attention_weights([SEQ, IDS, CAND]).numpy()
    np.testing.assert_allclose(w[0], np.append(e0 / e0.sum(), 0.0), rtol=1e-5)
    np.testing.assert_allclose(w[1], [1.0, 0.0, 0.0], rtol=1e-6)
    empty = np.full_like(IDS, -1)
    out = layer([SEQ, empty, CAND]).numpy()
    np.testing.assert_array_equal(out, np.zeros((2, 2)))


def test_concat_candidate_and_id_forms():
    layer = small_din(concat_candidate=True)
    out = layer([SEQ, IDS, CAND]).numpy()
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out[:, 2:], CAND)
    np.testing.assert_allclose(layer([SEQ, IDS[..., None], CAND[:, None, :]]).numpy(), out)
    np.testing.assert_allclose(layer([SEQ, IDS.astype("float32"), CAND]).numpy(), out)
    assert layer.compute_output_shape([(None, 3, 2), (None, 3), (None, 2)]) == (None, 4)


def test_training_step_changes_weights_and_round_trip():
    layer = DIN(name="din")
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(8, 5, 4)).astype("float32")
    ids = np.where(rng.random((8, 5)) < 0.3, -1, 1).astype("int64")
    cand = rng.normal(size=(8, 4)).astype("float32")
    out = layer([seq, ids, cand], training=True)
    assert out.shape == (8, 4)
    assert layer.attention.dense_layers[0].kernel.shape == (16, 80)
    assert len(layer.trainable_weights) == 6  # (80, 40) kernels and biases + the score unit
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer([seq, ids, cand], training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    tf.keras.optimizers.SGD(0.5).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = DIN.from_config(layer.get_config())
    clone([seq, ids, cand])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone([seq, ids, cand]).numpy(), layer([seq, ids, cand]).numpy(),
                               rtol=1e-5)
    assert clone.get_config() == layer.get_config()


def test_bad_inputs_and_params_are_config_errors():
    layer = DIN(name="din")
    with pytest.raises(ConfigError, match="expected a list .*received: a list of 2 inputs"):
        layer([SEQ, CAND])
    with pytest.raises(ConfigError, match=r"received: one tensor of shape \(2, 3, 2\)"):
        layer(SEQ)
    with pytest.raises(ConfigError, match=r"same L and d, received shapes .*\(2, 3\)"):
        layer([SEQ, IDS, np.ones((2, 3), "float32")])
    with pytest.raises(ConfigError, match="expected `normalize`.*received: normalize='sum'"):
        DIN(normalize="sum")
    with pytest.raises(ConfigError, match="bad `attention_mlp` parameters"):
        DIN(attention_mlp={"units": 3})
    with pytest.raises(ConfigError, match="unknown activation 'dice'"):
        DIN(attention_mlp={"activation": "dice"})


def test_created_from_st_params_with_din_defaults_for_missing_keys():
    proto = backbone_pb2.KerasLayer(class_name="DIN")
    proto.st_params.update({"attention_mlp": {"hidden_units": [16, 8], "activation": "relu"},
                            "normalize": "softmax"})
    layer = create_layer(proto, "din", "block din")
    assert isinstance(layer, DIN) and layer.normalize == "softmax"
    assert layer.attention_mlp == {**DEFAULT_ATTENTION_MLP, "hidden_units": [16, 8],
                                   "activation": "relu"}
    assert layer.attention.use_bn is False and layer.attention.final_activation == "sigmoid"
    assert layer([SEQ, IDS, CAND]).shape == (2, 2)
    default = create_layer(backbone_pb2.KerasLayer(class_name="DIN"), "din", "block din")
    assert default.attention_mlp == DEFAULT_ATTENTION_MLP and default.normalize == "none"
