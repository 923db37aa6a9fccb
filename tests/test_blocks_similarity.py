"""Tests of Cosine and Similarity (DSSM / two towers), pinned by hand."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer

from easyblocks.blocks.similarity import Cosine, Similarity
from easyblocks.errors import ConfigError
from easyblocks.protos import backbone_pb2

U = np.array([[3.0, 4.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], "float32")
V = np.array([[4.0, 3.0], [0.0, 2.0], [-2.0, -2.0], [1.0, 5.0]], "float32")


def test_cosine_over_temperature_by_hand():
    out = Cosine()([U, V]).numpy()
    assert out.shape == (4, 1)
    # 24/25 = .96 -> 9.6; orthogonal -> 0; opposite -> -1 -> -10; zero vector -> 0 (no NaN)
    np.testing.assert_allclose(out[:, 0], [9.6, 0.0, -10.0, 0.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Cosine(temperature=0.5)([U, V]).numpy()[:, 0],
                               [1.92, 0.0, -2.0, 0.0], rtol=1e-6, atol=1e-6)


def test_scale_invariance_and_gradient_matches_the_formula():
    u = tf.constant(U[:3])
    v = tf.constant(V[:3])
    np.testing.assert_allclose(Cosine()([u * 7.0, v * 0.1]).numpy(), Cosine()([u, v]).numpy(),
                               rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(u)
        y = tf.reduce_sum(Cosine(temperature=1.0)([u, v]))
    grad = tape.gradient(y, u).numpy()
    un, vn = np.linalg.norm(U[:3], axis=1, keepdims=True), np.linalg.norm(V[:3], axis=1,
                                                                          keepdims=True)
    cos = np.sum(U[:3] * V[:3], axis=1, keepdims=True) / (un * vn)
    want = V[:3] / (un * vn) - cos * U[:3] / un**2  # d cos / d u
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_bad_inputs_and_params_are_config_errors():
    with pytest.raises(ConfigError, match=r"expected a list .*received: one tensor of shape"):
        Cosine()(U)
    with pytest.raises(ConfigError, match="received: a list of 3 inputs"):
        Cosine()([U, V, V])
    with pytest.raises(ConfigError, match=r"same d .*received shapes \(4, 2\) and \(4, 3\)"):
        Cosine()([U, np.ones((4, 3), "float32")])
    with pytest.raises(ConfigError, match="expected `temperature` > 0, received: temperature=0"):
        Cosine(temperature=0)
    with pytest.raises(ConfigError, match="epsilon"):
        Cosine(epsilon=-1.0)


def test_config_round_trip_and_st_params():
    layer = Cosine(temperature=0.05, name="cos")
    assert layer.weights == []
    clone = Cosine.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone([U, V]).numpy(), layer([U, V]).numpy())
    assert layer.compute_output_shape([(None, 2), (None, 2)]) == (None, 1)
    proto = backbone_pb2.KerasLayer(class_name="Cosine")
    proto.st_params.update({"temperature": 0.05})
    built = create_layer(proto, "cos", "block cos")
    assert isinstance(built, Cosine) and built.temperature == 0.05
    np.testing.assert_allclose(built([U, V]).numpy()[0, 0], 19.2, rtol=1e-6)
    default = create_layer(backbone_pb2.KerasLayer(class_name="Cosine"), "cos", "block cos")
    assert default.temperature == 0.1


# ---- Similarity: EasyRec's DSSM head --------------------------------------------------------

def test_similarity_cosine_and_inner_product_by_hand():
    cos = Similarity()([U, V]).numpy()  # COSINE, temperature 1, no scale
    np.testing.assert_allclose(cos[:, 0], [0.96, 0.0, -1.0, 0.0], rtol=1e-6, atol=1e-6)
    ip = Similarity(simi_func="inner_product", temperature=2.0)([U, V]).numpy()
    # <u, v> / 2: 24/2, 0, -4/2, 0
    np.testing.assert_allclose(ip[:, 0], [12.0, 0.0, -2.0, 0.0], rtol=1e-6)


def test_similarity_scale_simi_uses_the_absolute_scale_and_a_shift():
    layer = Similarity(temperature=0.5, scale_simi=True)
    assert [w.name for w in layer.weights] == ["scale", "shift"]
    layer.scale.assign([-3.0])
    layer.shift.assign([0.25])
    # cos / 0.5 * |-3| + 0.25
    np.testing.assert_allclose(layer([U, V]).numpy()[:, 0],
                               [0.96 * 6 + 0.25, 0.25, -6 + 0.25, 0.25], rtol=1e-6)


def test_similarity_pair_logits_score_every_user_item_pair():
    layer = Similarity(simi_func="INNER_PRODUCT", temperature=0.5)
    pairs = layer.pair_logits([U[:3], V[:3]]).numpy()
    # <u_i, v_j> / 0.5
    want = 2.0 * U[:3] @ V[:3].T
    np.testing.assert_allclose(pairs, want, rtol=1e-6)
    np.testing.assert_allclose(np.diag(pairs)[:, None], layer([U[:3], V[:3]]).numpy(), rtol=1e-6)
    cos_pairs = Similarity().pair_logits([U[:2], V[:2]]).numpy()
    # rows: u = (.6, .8), (1, 0); columns: v = (.8, .6), (0, 1)
    np.testing.assert_allclose(cos_pairs, [[0.96, 0.8], [0.8, 0.0]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(Similarity().similarity([U, V]).numpy()[:, 0],
                               [0.96, 0.0, -1.0, 0.0], rtol=1e-6, atol=1e-6)


def test_similarity_errors_and_typed_params():
    with pytest.raises(ConfigError, match="expected `simi_func` one of COSINE, INNER_PRODUCT, "
                                          "received: 'EUCLID'"):
        Similarity(simi_func="EUCLID")
    with pytest.raises(ConfigError, match="temperature"):
        Similarity(temperature=0.0)
    with pytest.raises(ConfigError, match="received: one tensor"):
        Similarity()(U)
    proto = backbone_pb2.KerasLayer(class_name="Similarity")
    proto.similarity.simi_func = "INNER_PRODUCT"
    proto.similarity.scale_simi = True
    built = create_layer(proto, "sim", "block sim")
    assert (built.simi_func, built.temperature, built.scale_simi) == ("INNER_PRODUCT", 1.0, True)
    clone = Similarity.from_config(built.get_config())
    assert clone.get_config() == built.get_config()
