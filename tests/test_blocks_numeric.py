"""Tests of PeriodicEmbedding, AutoDisEmbedding and NaryDisEmbedding (hand numbers, numpy)."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.interaction import FM, DotInteraction
from easyblocks.blocks.numeric import (
    AutoDisEmbedding,
    NaryDisEmbedding,
    PeriodicEmbedding,
    num_digits,
)
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

X = np.array([[0.5, -1.0, 3.0], [2.0, 0.0, 0.25]], dtype="float32")  # batch 2, N = 3


def st_layer(class_name, params):
    proto = backbone_pb2.KerasLayer(class_name=class_name)
    proto.st_params.update(params)
    return create_layer(proto, "blk", f"block {class_name}")


# ----------------------------------------------------------------- PeriodicEmbedding


def test_periodic_by_hand():
    layer = PeriodicEmbedding(embedding_dim=2, sigma=0.1, add_linear_layer=False)
    x = np.array([[1.0]], "float32")
    layer(x)
    layer.coefficients.assign([[0.25]])
    # v = 2 pi * 0.25 * 1 = pi / 2: [sin, cos] = [1, 0]
    np.testing.assert_allclose(layer(x).numpy(), [[1.0, 0.0]], atol=1e-6)
    linear = PeriodicEmbedding(embedding_dim=2, sigma=0.1)
    linear(x)
    linear.coefficients.assign([[0.25]])
    linear.kernel.assign([[[1.0, 2.0], [3.0, 4.0]]])
    linear.bias.assign([[0.5, -10.0]])
    # relu([1, 0] W + b) = relu([1 + .5, 2 - 10]) = [1.5, 0]
    np.testing.assert_allclose(linear(x).numpy(), [[1.5, 0.0]], atol=1e-6)


def test_periodic_matches_numpy_and_output_forms():
    layer = PeriodicEmbedding(embedding_dim=4, sigma=1.0, linear_activation="linear",
                              output_3d_tensor=True)
    flat, emb = layer(X)
    assert flat.shape == (2, 12) and emb.shape == (2, 3, 4)
    c, k, b = layer.coefficients.numpy(), layer.kernel.numpy(), layer.bias.numpy()
    assert c.shape == (3, 2) and k.shape == (3, 4, 4) and b.shape == (3, 4)
    v = 2 * np.pi * c[None] * X[..., None]
    periodic = np.concatenate([np.sin(v), np.cos(v)], axis=-1)
    want = np.einsum("bni,nio->bno", periodic, k) + b[None]
    np.testing.assert_allclose(emb.numpy(), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(flat.numpy(), want.reshape(2, 12), rtol=1e-4, atol=1e-5)
    flat2, parts = PeriodicEmbedding(embedding_dim=2, sigma=1.0, output_tensor_list=True)(X)
    assert flat2.shape == (2, 6) and [tuple(p.shape) for p in parts] == [(2, 2)] * 3


def test_periodic_sigma_sets_the_frequency_scale():
    small = PeriodicEmbedding(embedding_dim=200, sigma=0.01)
    small(X)
    big = PeriodicEmbedding(embedding_dim=200, sigma=10.0)
    big(X)
    assert 0.005 < small.coefficients.numpy().std() < 0.015
    assert 5.0 < big.coefficients.numpy().std() < 15.0


# ------------------------------------------------------------------ AutoDisEmbedding


def autodis_numpy(layer, x):
    w, m, mat = layer.project_w.numpy(), layer.meta_embedding.numpy(), layer.project_mat.numpy()
    h = w[None] * x[..., None]
    h = np.where(h > 0, h, 0.2 * h)
    s = np.einsum("nik,bnk->bni", mat, h) + layer.keep_prob * h
    s = s / layer.temperature
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bnk,nkd->bnd", p, m)


def test_autodis_by_hand():
    layer = AutoDisEmbedding(embedding_dim=1, num_bins=2, temperature=1.0)
    x = np.array([[2.0]], "float32")
    layer(x)
    layer.project_w.assign([[1.0, -1.0]])
    layer.project_mat.assign(np.zeros((1, 2, 2), "float32"))
    layer.meta_embedding.assign([[[10.0], [20.0]]])
    # h = leaky_relu([2, -2]) = [2, -.4]; s = .8 h = [1.6, -.32]; p = softmax(s)
    p0 = math.exp(1.6) / (math.exp(1.6) + math.exp(-0.32))
    np.testing.assert_allclose(layer(x).numpy(), [[10 * p0 + 20 * (1 - p0)]], rtol=1e-6)


def test_autodis_matches_numpy_weights_and_forms():
    layer = AutoDisEmbedding(embedding_dim=3, num_bins=5, temperature=0.5, keep_prob=0.7,
                             output_tensor_list=True)
    flat, parts = layer(X)
    assert [tuple(w.shape) for w in layer.weights] == [(3, 5, 3), (3, 5), (3, 5, 5)]
    want = autodis_numpy(layer, X)
    np.testing.assert_allclose(flat.numpy(), want.reshape(2, 9), rtol=1e-4, atol=1e-5)
    for i, part in enumerate(parts):
        np.testing.assert_allclose(part.numpy(), want[:, i], rtol=1e-4, atol=1e-5)
    # a weighted average of the meta-embeddings: inside their range
    m = layer.meta_embedding.numpy()
    assert np.all(want <= m.max(axis=1)[None] + 1e-5) and np.all(want >= m.min(axis=1)[None] - 1e-5)


# ------------------------------------------------------------------ NaryDisEmbedding


def test_num_digits_as_easyrec():
    # EasyRec: floor(log_N(2^32 - 1)) + 1
    for carry in (2, 3, 9, 10, 16):
        assert num_digits(carry) == math.floor(math.log(4294967295, carry)) + 1


def test_nary_by_hand_with_row_index_table():
    layer = NaryDisEmbedding(embedding_dim=1, carries=[2, 3], output_3d_tensor=True)
    x = np.array([[5.0, 0.0]], "float32")
    layer(x)
    assert layer.rows_per_feature == 32 * 2 + 21 * 3 == 127
    assert layer.table.shape == (2 * 127, 1)
    layer.table.assign(np.arange(254, dtype="float32")[:, None])  # row r holds r
    flat, emb = layer(x)
    # 5 = 101 in base 2: rows 0*2+1, 1*2+0, 2*2+1 = 1 + 2 + 5 = 8
    # 5 = 12 in base 3: rows 64 + 0*3+2, 64 + 1*3+1 = 66 + 68 = 134
    # 0 = "0" for the second feature (rows from 127): 127 + 0 and 127 + 64 + 0
    np.testing.assert_allclose(emb.numpy(), [[[8.0, 134.0], [127.0, 191.0]]])
    np.testing.assert_allclose(flat.numpy(), [[8.0, 134.0, 127.0, 191.0]])
    mean = NaryDisEmbedding(embedding_dim=1, carries=[2, 3], intra_ary_pooling="mean")
    mean(x)
    mean.set_weights(layer.get_weights())
    np.testing.assert_allclose(mean(x).numpy(), [[8.0 / 3, 134.0 / 2, 127.0, 191.0]], rtol=1e-6)


def test_nary_multiplier_clipping_and_replicas():
    layer = NaryDisEmbedding(embedding_dim=1, carries=[2], multiplier=10.0)
    x = np.array([[0.5], [-3.0], [1e12]], "float32")
    layer(x)
    layer.table.assign(np.arange(64, dtype="float32")[:, None])
    out = layer(x).numpy()
    # 0.5 x 10 = 5 -> 8 (as above); negative -> 0 -> row 0; huge -> 2^32 - 1: all 32 ones
    assert out[0, 0] == 8.0 and out[1, 0] == 0.0
    assert out[2, 0] == sum(2 * p + 1 for p in range(32))
    rep = NaryDisEmbedding(embedding_dim=2, carries=[2, 9], num_replicas=2,
                           output_tensor_list=True)
    outs = rep(X)
    assert len(outs) == 4  # 2 flat outputs, then 2 lists
    assert outs[0].shape == (2, 3 * 2 * 2) and len(outs[2]) == 3 and outs[2][0].shape == (2, 4)
    table = rep.table.numpy()  # (3 * 163, 4): replica k reads columns 2k, 2k + 1
    rows, valid = rep.digit_rows(tf.constant(X))
    pooled = (table[rows.numpy()] * valid.numpy()[..., None]).reshape(2, 3, 43, 4)
    base2, base9 = pooled[:, :, :32].sum(2), pooled[:, :, 32:].sum(2)
    for k in range(2):
        want = np.concatenate([base2[..., 2 * k:2 * k + 2], base9[..., 2 * k:2 * k + 2]], -1)
        np.testing.assert_allclose(outs[k].numpy(), want.reshape(2, 12), rtol=1e-5)


# ----------------------------------------------------------------------- all three


@pytest.mark.parametrize("make", [
    lambda: PeriodicEmbedding(embedding_dim=4, sigma=0.5, name="p"),
    lambda: AutoDisEmbedding(embedding_dim=4, num_bins=3, temperature=0.8, name="a"),
    lambda: NaryDisEmbedding(embedding_dim=2, carries=[2, 9], multiplier=100.0, name="n"),
])
def test_training_step_round_trip_and_shapes(make):
    layer = make()
    x = np.abs(np.random.default_rng(1).normal(size=(8, 3))).astype("float32")
    out = layer(x)
    width = out.shape[-1]
    assert layer.compute_output_shape((None, 3)) == (None, width)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    assert all(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = type(layer).from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)(x).numpy(), layer(x).numpy(), rtol=1e-5)
    assert clone.get_config() == layer.get_config()


def test_errors_and_params():
    with pytest.raises(ConfigError, match="even `embedding_dim`"):
        PeriodicEmbedding(embedding_dim=3, sigma=1.0)
    with pytest.raises(ConfigError, match="missing required parameter.*sigma"):
        st_layer("PeriodicEmbedding", {"embedding_dim": 4})
    with pytest.raises(ConfigError, match="positive `temperature`"):
        AutoDisEmbedding(embedding_dim=2, num_bins=2, temperature=0.0)
    with pytest.raises(ConfigError, match="bases >= 2"):
        NaryDisEmbedding(embedding_dim=2, carries=[1])
    with pytest.raises(ConfigError, match="only inter_ary_pooling 'concat'"):
        NaryDisEmbedding(embedding_dim=2, carries=[2], inter_ary_pooling="sum")
    with pytest.raises(ConfigError, match="one \\(batch, num_features\\) tensor of numbers"):
        AutoDisEmbedding(embedding_dim=2, num_bins=2, temperature=1.0)(X[..., None])
    # EasyRec's st_params form (dlrm_on_criteo_with_periodic.config) and typed form
    layer = st_layer("PeriodicEmbedding", {"output_tensor_list": True, "embedding_dim": 16,
                                           "sigma": 0.005})
    assert layer.add_linear_layer and layer.linear_activation == "relu"
    proto = backbone_pb2.KerasLayer(class_name="AutoDisEmbedding")
    proto.auto_dis_embedding.embedding_dim = 16
    proto.auto_dis_embedding.num_bins = 20
    proto.auto_dis_embedding.temperature = 0.815
    assert create_layer(proto, "a", "block a").keep_prob == pytest.approx(0.8)
    proto = backbone_pb2.KerasLayer(class_name="NaryDisEmbedding")
    proto.nary_dis_embedding.embedding_dim = 8
    proto.nary_dis_embedding.carries.extend([2, 9])
    proto.nary_dis_embedding.multiplier = 1e6
    nary = create_layer(proto, "n", "block n")
    assert nary.carries == [2, 9] and nary.num_replicas == 1 and nary.intra_ary_pooling == "sum"


# ------------------------------------------------------------- EasyRec-style configs

NUMBERS = """
input_fields { input_name: "age" input_type: FLOAT }
"""
COLUMNS = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
           "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
           "price": tf.constant([0.5, 2.0, 4.0]), "age": tf.constant([20.0, 35.0, 61.0])}


def build(model_text):
    text = tiny_config(model_text, extra="""
feature_configs { input_names: "age" feature_type: RawFeature }
""").replace('input_fields { input_name: "price"', NUMBERS + 'input_fields { input_name: "price"')
    return build_and_initialize(resolve(parse_config_text(text, "t.config")))


def test_easyrec_deepfm_with_autodis_config_validates_and_builds():
    # EasyRec's deepfm_backbone_on_criteo_with_autodis.config wiring: AutoDis on a group of raw
    # numbers, FM over the categorical embeddings and the numbers' embeddings
    model, pre = build("""
      feature_groups { group_name: "numerical_features" feature_names: ["price", "age"] }
      feature_groups { group_name: "categorical_features" feature_names: ["user", "tags"] }
      backbone {
        blocks { name: 'num_emb' inputs { feature_group_name: 'numerical_features' }
          keras_layer { class_name: 'AutoDisEmbedding'
            auto_dis_embedding { embedding_dim: 4 num_bins: 20 temperature: 0.815
                                 output_tensor_list: true } } }
        blocks { name: 'categorical_list' inputs { feature_group_name: 'categorical_features' }
          input_layer { only_output_feature_list: true } }
        blocks { name: 'fm'
          inputs { block_name: 'categorical_list' }
          inputs { block_name: 'num_emb' input_slice: '[1]' }
          keras_layer { class_name: 'FM' fm { use_variant: true } } }
        blocks { name: 'deep'
          inputs { feature_group_name: 'categorical_features' }
          inputs { block_name: 'num_emb' input_slice: '[0]' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [8, 4] } } }
        concat_blocks: ['fm', 'deep']
      }
    """)
    assert isinstance(model.backbone.dag.blocks["fm"].steps[0].layers[0], FM)
    values = model.backbone.dag.block_values(model.feature_groups(pre(COLUMNS)))
    flat, parts = values["num_emb"]
    assert flat.shape == (3, 8) and len(parts) == 2
    assert values["fm"].shape == (3, 4) and values["deep"].shape == (3, 4)


@pytest.mark.parametrize("layer_text", [
    """keras_layer { class_name: 'PeriodicEmbedding' st_params {
         fields { key: "output_tensor_list" value { bool_value: true } }
         fields { key: "embedding_dim" value { number_value: 4 } }
         fields { key: "sigma" value { number_value: 0.005 } } } }""",
    """keras_layer { class_name: 'NaryDisEmbedding' nary_dis_embedding {
         embedding_dim: 2 carries: [2, 9] multiplier: 1e6 output_tensor_list: true } }""",
])
def test_easyrec_dlrm_with_numeric_embeddings_config_validates_and_builds(layer_text):
    # EasyRec's dlrm_on_criteo_with_periodic / _with_narydis.config wiring
    model, pre = build(f"""
      feature_groups {{ group_name: "dense" feature_names: ["price", "age"] }}
      feature_groups {{ group_name: "sparse" feature_names: ["user", "tags"] }}
      backbone {{
        blocks {{ name: 'num_emb' inputs {{ feature_group_name: 'dense' }} {layer_text} }}
        blocks {{ name: 'sparse_list' inputs {{ feature_group_name: 'sparse' }}
          input_layer {{ only_output_feature_list: true }} }}
        blocks {{ name: 'dot'
          inputs {{ block_name: 'num_emb' input_slice: '[1]' }}
          inputs {{ block_name: 'sparse_list' }}
          keras_layer {{ class_name: 'DotInteraction' }} }}
        blocks {{ name: 'num_emb_2d'
          inputs {{ block_name: 'num_emb' input_fn: 'lambda x: x[0]' }} }}
        concat_blocks: ['num_emb_2d', 'dot']
        top_mlp {{ hidden_units: [8] }}
      }}
    """)
    assert isinstance(model.backbone.dag.blocks["dot"].steps[0].layers[0], DotInteraction)
    values = model.backbone.dag.block_values(model.feature_groups(pre(COLUMNS)))
    assert values["dot"].shape == (3, 6)  # 2 numbers + 2 categorical fields: 4 fields
    assert model(pre(COLUMNS))["probs_clk"].shape == (3,)
