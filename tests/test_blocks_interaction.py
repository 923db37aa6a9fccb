"""Tests of FM, InnerProduct, PNN, DotInteraction and CIN (math pinned by brute-force numpy
loops and hand-computed numbers)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.interaction import CIN, FM, PNN, DotInteraction, InnerProduct, pair_indices
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

COLUMNS = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
           "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
           "price": tf.constant([0.5, 2.0, 4.0])}

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


# ---------------------------------------------------------------------- DotInteraction

# batch 2, F = 4 fields, d = 2: with 4 fields the lower-triangle order differs from the upper
V4 = np.concatenate([V, np.array([[[2.0, 1.0]], [[0.0, 1.0]]], dtype="float32")], axis=1)


def easyrec_order_pairs(v, self_interaction=False):
    """<v_i, v_j> for j < i (j <= i), row by row: (1,0), (2,0), (2,1), (3,0), ..."""
    b, f, _ = v.shape
    out = [[float(np.dot(v[n, i], v[n, j])) for n in range(b)]
           for i in range(f) for j in range(i + (1 if self_interaction else 0))]
    return np.array(out).T


def test_dot_interaction_lower_triangle_order_by_hand():
    out = DotInteraction()(V4).numpy()
    assert out.shape == (2, 6)
    # example 0: v0=(1,2) v1=(3,-1) v2=(.5,0) v3=(2,1)
    # (1,0)=1 (2,0)=.5 (2,1)=1.5 (3,0)=4 (3,1)=5 (3,2)=1
    np.testing.assert_allclose(out[0], [1.0, 0.5, 1.5, 4.0, 5.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out, easyrec_order_pairs(V4), rtol=1e-6)
    # the same numbers as InnerProduct, in another order
    np.testing.assert_allclose(np.sort(out, axis=1), np.sort(InnerProduct()(V4).numpy(), axis=1))


def test_dot_interaction_self_interaction_and_skip_gather():
    out = DotInteraction(self_interaction=True)(V).numpy()
    assert out.shape == (2, 6)
    # example 0: (0,0)=5 (1,0)=1 (1,1)=10 (2,0)=.5 (2,1)=1.5 (2,2)=.25
    np.testing.assert_allclose(out[0], [5.0, 1.0, 10.0, 0.5, 1.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(out, easyrec_order_pairs(V, True), rtol=1e-6)
    full = DotInteraction(skip_gather=True)(V).numpy()
    assert full.shape == (2, 9)
    np.testing.assert_allclose(full[0], [0, 0, 0, 1.0, 0, 0, 0.5, 1.5, 0], rtol=1e-6)
    full = DotInteraction(skip_gather=True, self_interaction=True)(V).numpy()
    np.testing.assert_allclose(full[0], [5.0, 0, 0, 1.0, 10.0, 0, 0.5, 1.5, 0.25], rtol=1e-6)


def test_dot_interaction_list_input_gradient_shapes_and_config():
    layer = DotInteraction(self_interaction=True, name="dot")
    parts = [tf.constant(V4[:, i]) for i in range(4)]
    with tf.GradientTape() as tape:
        tape.watch(parts)
        y = tf.reduce_sum(layer(parts))
    grads = tape.gradient(y, parts)
    # d/dv_i of sum_{j <= k} <v_k, v_j> = sum_{j != i} v_j + 2 v_i
    for i in range(4):
        np.testing.assert_allclose(grads[i].numpy(), V4.sum(axis=1) + V4[:, i], rtol=1e-6)
    assert layer.weights == []
    assert layer.compute_output_shape([(None, 2)] * 4) == (None, 10)
    assert DotInteraction(skip_gather=True).compute_output_shape((None, 5, 3)) == (None, 25)
    clone = DotInteraction.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(tf.function(clone)(V4).numpy(), layer(V4).numpy(), rtol=1e-6)
    with pytest.raises(ConfigError, match="at least 2 fields"):
        DotInteraction()(V[:, :1])
    with pytest.raises(ConfigError, match="expected a 3-D input"):
        DotInteraction()(V[:, 0])


def test_dot_interaction_typed_and_st_params():
    proto = backbone_pb2.KerasLayer(class_name="DotInteraction")
    proto.dot_interaction.self_interaction = True
    typed = create_layer(proto, "dot", "block dot")
    built = st_layer("DotInteraction", {"self_interaction": True})
    assert typed.get_config()["self_interaction"] and built.get_config()["self_interaction"]
    assert not st_layer("DotInteraction", {}).self_interaction
    with pytest.raises(ConfigError, match=r"(?s)bad st_params.*accepted fields: self_interaction"):
        st_layer("DotInteraction", {"self_interact": True})


# ---------------------------------------------------------------------------- CIN


def cin_numpy(x0, kernels, biases):
    """CIN by loops: X^k_h = relu(sum_ij W_hij X^(k-1)_i * X^0_j + b_h); pooled over d."""
    x, pooled = x0, []
    for w, b in zip(kernels, biases):
        nxt = np.zeros((x0.shape[0], w.shape[0], x0.shape[2]))
        for h in range(w.shape[0]):
            for i in range(w.shape[1]):
                for j in range(w.shape[2]):
                    nxt[:, h] += w[h, i, j] * x[:, i] * x0[:, j]
            nxt[:, h] = np.maximum(nxt[:, h] + b[h], 0.0)
        x = nxt
        pooled.append(x.sum(axis=-1))
    return np.concatenate(pooled, axis=1)


def test_cin_by_hand_with_ones():
    layer = CIN([1, 1])
    x = np.array([[[1.0, 2.0], [3.0, -1.0]]], dtype="float32")  # 1 example, 2 fields, d = 2
    layer(x)
    for w in layer.kernels:
        w.assign(np.ones(w.shape, "float32"))
    # layer 1: sum_ij x_i * x_j = (1+3)^2, (2-1)^2 per dimension = [16, 1] -> pooled 17
    # layer 2: sum_j [16, 1] * x_j = [16 * 4, 1 * 1] = [64, 1] -> pooled 65
    np.testing.assert_allclose(layer(x).numpy(), [[17.0, 65.0]], rtol=1e-6)
    layer.biases[0].assign([-20.0])  # relu([16 - 20, 1 - 20]) = 0: the second layer is 0 too
    np.testing.assert_allclose(layer(x).numpy(), [[0.0, 0.0]], atol=1e-6)


def test_cin_matches_loops_on_random_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    layer = CIN([3, 2])
    out = layer(x).numpy()
    assert out.shape == (3, 5)
    assert [tuple(w.shape) for w in layer.weights] == [(3, 4, 4), (3,), (2, 3, 4), (2,)]
    for b in layer.biases:
        b.assign(rng.normal(size=b.shape).astype("float32"))
    want = cin_numpy(x, [k.numpy() for k in layer.kernels], [b.numpy() for b in layer.biases])
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer([x[:, i] for i in range(4)]).numpy(), want, rtol=1e-4,
                               atol=1e-5)


def test_cin_training_step_round_trip_and_errors():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 3, 2)).astype("float32")
    layer = CIN(hidden_feature_sizes=[4, 2], name="cin")
    layer(x)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    tf.keras.optimizers.SGD(0.01).apply_gradients(zip(grads, layer.trainable_weights))
    assert any(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, layer.trainable_weights))
    clone = CIN.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)(x).numpy(), layer(x).numpy(), rtol=1e-5)
    assert layer.compute_output_shape((None, 3, 2)) == (None, 6)
    with pytest.raises(ConfigError, match="positive integers"):
        CIN([])
    with pytest.raises(ConfigError, match="expected a 3-D input"):
        CIN([2])(x[:, 0])
    proto = backbone_pb2.KerasLayer(class_name="CIN")
    proto.cin.hidden_feature_sizes.extend([5, 5])
    assert create_layer(proto, "cin", "block cin").hidden_feature_sizes == [5, 5]


def test_fm_typed_params():
    proto = backbone_pb2.KerasLayer(class_name="FM")
    proto.fm.use_variant = True
    assert create_layer(proto, "fm", "block fm").use_variant


# ------------------------------------------------------------- EasyRec-style configs

EQUAL_DIM = """
feature_configs { input_names: "price" feature_name: "price_bucket" feature_type: RawFeature
                  boundaries: [1.0, 2.0] embedding_dim: 4 }
"""


def build(model_text, extra=EQUAL_DIM):
    resolved = resolve(parse_config_text(tiny_config(model_text, extra), "t.config"))
    return build_and_initialize(resolved)


def test_easyrec_dlrm_backbone_validates_and_builds():
    # EasyRec's samples/model_config/dlrm_backbone_on_taobao.config, on the tiny features (its
    # input block is named 'sparse' like its group there: that naming is the config-language
    # issue's; here it is 'sparse_fields')
    model, pre = build("""
      feature_groups { group_name: "dense" feature_names: "price" }
      feature_groups { group_name: "sparse" feature_names: ["user", "tags", "price_bucket"] }
      backbone {
        blocks { name: 'bottom_mlp' inputs { feature_group_name: 'dense' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [8, 4] } } }
        blocks { name: 'sparse_fields' inputs { feature_group_name: 'sparse' }
          input_layer { only_output_feature_list: true } }
        blocks { name: 'dot'
          inputs { block_name: 'bottom_mlp' input_fn: 'lambda x: [x]' }
          inputs { block_name: 'sparse_fields' }
          keras_layer { class_name: 'DotInteraction' } }
        concat_blocks: ['bottom_mlp', 'dot']
        top_mlp { hidden_units: [8] }
      }
    """)
    dot = model.backbone.dag.blocks["dot"].steps[0].layers[0]
    assert isinstance(dot, DotInteraction)
    values = model.backbone.dag.block_values(model.feature_groups(pre(COLUMNS)))
    assert values["dot"].shape == (3, 6)  # 4 fields: bottom_mlp + 3 sparse


def test_easyrec_xdeepfm_cin_config_validates_and_builds():
    # EasyRec's xdeepfm_on_taobao_backbone.config wiring (the `features` block takes the
    # list of field embeddings; EasyRec's output_2d_tensor_and_feature_list + '[1]')
    model, pre = build("""
      feature_groups { group_name: "sparse" feature_names: ["user", "tags", "price_bucket"] }
      backbone {
        blocks { name: 'features' inputs { feature_group_name: 'sparse' }
          input_layer { only_output_feature_list: true } }
        blocks { name: 'cin' inputs { block_name: 'features' }
          extra_input_fn: 'lambda x: tf.stack(x, axis=1)'
          keras_layer { class_name: 'CIN' cin { hidden_feature_sizes: [4, 4, 4] } } }
        blocks { name: 'fm' inputs { block_name: 'features' }
          keras_layer { class_name: 'FM' fm { use_variant: true } } }
        concat_blocks: ['cin', 'fm']
      }
    """)
    values = model.backbone.dag.block_values(model.feature_groups(pre(COLUMNS)))
    assert values["cin"].shape == (3, 12) and values["fm"].shape == (3, 4)
