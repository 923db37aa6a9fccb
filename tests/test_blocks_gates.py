"""Tests of Highway and Gate (hand numbers, numpy) and EasyRec's CDN wiring."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.gates import Gate, Highway
from easyblocks.blocks.masknet import MaskBlock
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2

X = np.array([[1.0, 2.0]], dtype="float32")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_highway_by_hand():
    layer = Highway()
    layer(X)
    gate, transform = layer.gates[0], layer.transforms[0]
    np.testing.assert_allclose(gate.bias.numpy(), [-3.0, -3.0])  # init_gate_bias
    gate.kernel.assign(np.zeros((2, 2), "float32"))
    transform.kernel.assign([[1.0, 0.0], [0.0, -1.0]])
    # H = relu([1, -2]) = [1, 0]; t = sigmoid(-3); out = t H + (1 - t) x
    t = sigmoid(-3.0)
    np.testing.assert_allclose(layer(X).numpy(), [[1.0, 2.0 * (1 - t)]], rtol=1e-6)
    gate.bias.assign([0.0, 0.0])  # t = 1/2
    np.testing.assert_allclose(layer(X).numpy(), [[1.0, 1.0]], rtol=1e-6)


def test_highway_projection_layers_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype("float32")
    layer = Highway(emb_size=3, num_layers=2, activation="tanh")
    out = layer(x).numpy()
    assert out.shape == (4, 3)
    p = layer.project
    v = x @ p.kernel.numpy() + p.bias.numpy()
    for g, h in zip(layer.gates, layer.transforms):
        t = sigmoid(v @ g.kernel.numpy() + g.bias.numpy())
        v = t * np.tanh(v @ h.kernel.numpy() + h.bias.numpy()) + (1 - t) * v
    np.testing.assert_allclose(out, v, rtol=1e-4, atol=1e-5)
    # emb_size equal to the input width: no projection (as in EasyRec)
    assert Highway(emb_size=5).project is None


def test_highway_training_round_trip_and_errors():
    x = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    layer = Highway(num_layers=2, dropout_rate=0.5, name="hw")
    layer(x, training=True)
    assert len(layer.trainable_weights) == 2 * 4
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x, training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    clone = Highway.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.function(clone)(x).numpy(), layer(x).numpy(), rtol=1e-5)
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ConfigError, match="`dropout_rate` in \\[0, 1\\)"):
        Highway(dropout_rate=1.0)
    with pytest.raises(ConfigError, match="one \\(batch, d\\) tensor"):
        Highway()([x, x])
    # EasyRec's highway_on_movielens.config gives no parameters: EasyRec's defaults
    default = create_layer(backbone_pb2.KerasLayer(class_name="Highway"), "hw", "block hw")
    assert (default.emb_size, default.activation, default.init_gate_bias, default.num_layers,
            default.dropout_rate) == (None, "relu", -3.0, 1, 0.0)


def test_gate_weighted_sum_by_hand():
    w = np.array([[0.25, 0.75]], "float32")
    x1, x2 = np.array([[1.0, 2.0]], "float32"), np.array([[3.0, 4.0]], "float32")
    # 0.25 [1, 2] + 0.75 [3, 4] = [2.5, 3.5]
    np.testing.assert_allclose(Gate()([w, x1, x2]).numpy(), [[2.5, 3.5]])
    np.testing.assert_allclose(Gate(weight_index=2)([x1, x2, w]).numpy(), [[2.5, 3.5]])
    layer = Gate(mlp={"hidden_units": [1], "use_bn": False, "use_final_bn": False,
                      "final_activation": "linear"})
    layer([w, x1, x2])
    layer.mlp.dense_layers[0].kernel.assign([[1.0], [-1.0]])
    np.testing.assert_allclose(layer([w, x1, x2]).numpy(), [[-1.0]])


def test_gate_errors_training_and_round_trip():
    w = np.array([[0.5, 0.5]], "float32")
    with pytest.raises(ConfigError, match="weights input must be \\(batch, 3\\)"):
        Gate()([w, X, X, X])
    with pytest.raises(ConfigError, match="one shape"):
        Gate()([w, X, np.ones((1, 3), "float32")])
    with pytest.raises(ConfigError, match="expected a list of inputs"):
        Gate()(X)
    weights = tf.Variable(w)
    layer = Gate(name="g")
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer([weights, X, 2 * X]))
    # d/dw_j sum(w_j x_j) = sum(x_j): [3, 6]
    np.testing.assert_allclose(tape.gradient(out, weights).numpy(), [[3.0, 6.0]])
    assert Gate.from_config(layer.get_config()).get_config() == layer.get_config()
    proto = backbone_pb2.KerasLayer(class_name="Gate")
    proto.gate.weight_index = 1
    assert create_layer(proto, "g", "block g").weight_index == 1


def test_easyrec_cdn_config_mask_blocks_and_gate_validate_and_build():
    # EasyRec's cdn_on_taobao.config: a repeated MaskBlock (a list of experts), an MLP with a
    # softmax for the weights, and Gate over [weights] + [memorize expert] + experts
    text = tiny_config("""
      feature_groups { group_name: "frequency" feature_names: "price" }
      backbone {
        blocks { name: "mem_expert" inputs { feature_group_name: "user" }
          keras_layer { class_name: "MLP" mlp { hidden_units: [8, 6] } } }
        blocks { name: "gen_experts"
          inputs { feature_group_name: "all" input_fn: "lambda x: [x, x]" }
          repeat { num_repeat: 3
            keras_layer { class_name: "MaskBlock"
              mask_block { output_size: 6 aggregation_size: 16 } } } }
        blocks { name: "gate_weight" inputs { feature_group_name: "frequency" }
          keras_layer { class_name: "MLP"
            mlp { hidden_units: 4 use_final_bn: false final_activation: "softmax" } } }
        blocks { name: "gate"
          inputs { block_name: "gate_weight" input_fn: "lambda x: [x]" }
          inputs { block_name: "mem_expert" input_fn: "lambda x: [x]" }
          inputs { block_name: "gen_experts" }
          keras_layer { class_name: "Gate" } }
        top_mlp { hidden_units: [8] }
      }
      model_params { l2_regularization: 1e-6 }
    """)
    model, pre = build_and_initialize(resolve(parse_config_text(text, "t.config")))
    experts = model.backbone.dag.blocks["gen_experts"].steps[0].layers
    assert len(experts) == 3 and all(isinstance(e, MaskBlock) for e in experts)
    columns = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
               "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
               "price": tf.constant([0.5, 2.0, 4.0])}
    values = model.backbone.dag.block_values(model.feature_groups(pre(columns)))
    w = values["gate_weight"].numpy()
    mixed = [values["mem_expert"]] + list(values["gen_experts"])
    want = sum(w[:, j:j + 1] * mixed[j].numpy() for j in range(4))
    np.testing.assert_allclose(values["gate"].numpy(), want, rtol=1e-5, atol=1e-6)
    assert model(pre(columns))["probs_clk"].shape == (3,)


def test_easyrec_highway_config_validates_and_builds():
    # EasyRec's highway_on_movielens.config: Highway without parameters on one group, then an
    # MLP on [another group, the highway's output]
    text = tiny_config("""
      backbone {
        blocks { name: 'highway' inputs { feature_group_name: 'user' }
          keras_layer { class_name: 'Highway' } }
        blocks { name: 'top_mlp' inputs { feature_group_name: 'all' }
          inputs { block_name: 'highway' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [8, 4] } } }
      }
    """)
    model, pre = build_and_initialize(resolve(parse_config_text(text, "t.config")))
    highway = model.backbone.dag.blocks["highway"].steps[0].layers[0]
    assert isinstance(highway, Highway) and highway.project is None
    assert highway.gates[0].kernel.shape == (4, 4)  # the user embedding's width
    top = model.backbone.dag.blocks["top_mlp"].steps[0].layers[0]
    assert top.dense_layers[0].kernel.shape == (9 + 4, 8)
