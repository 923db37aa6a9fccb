"""Tests of AuxiliaryLoss: each loss by hand / by loops, and its report as loss/<block>."""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from conftest import create_layer, tiny_config

from easyblocks.blocks.auxiliary import AuxiliaryLoss, info_nce_loss, l2_loss, nce_loss
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.protos import backbone_pb2


def nce_loops(zi, zj, temperature):
    """CL4SRec's loss as EasyRec writes it: for each of the 2B views, the positive first, then
    the 2B - 2 similarities to the other examples' views; softmax cross-entropy on class 0."""
    z = np.concatenate([zi, zj])
    n, b = len(z), len(zi)
    sim = z @ z.T / temperature
    losses = []
    for a in range(n):
        partner = (a + b) % n
        row = [sim[a, partner]] + [sim[a, c] for c in range(n) if c not in (a, partner)]
        row = np.array(row)
        losses.append(-(row[0] - np.log(np.exp(row).sum())))
    return float(np.mean(losses))


def test_l2_loss_by_hand():
    x1 = np.array([[1.0, 2.0], [0.0, 0.0]], "float32")
    x2 = np.array([[0.0, 0.0], [3.0, 4.0]], "float32")
    # distances 1 + 4 = 5 and 9 + 16 = 25: mean 15
    assert float(l2_loss(x1, x2)) == pytest.approx(15.0)
    layer = AuxiliaryLoss(loss_type="l2_loss", loss_weight=0.5)
    assert float(layer([x1, x2])) == pytest.approx(7.5)
    assert len(layer.losses) == 1 and float(layer.losses[0]) == pytest.approx(7.5)


def test_info_nce_by_hand():
    eye = np.eye(2, dtype="float32")
    # logits = I / T: each row's loss is -log(e^(1/T) / (e^(1/T) + 1)) = log(1 + e^(-1/T))
    assert float(info_nce_loss(eye, eye, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)))
    assert float(info_nce_loss(eye, eye, 0.5)) == pytest.approx(math.log(1 + math.exp(-2)),
                                                                rel=1e-5)
    q = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    p = np.array([[0.0, 1.0], [1.0, 0.0]], "float32")  # positives swapped: the worst case
    assert float(info_nce_loss(q, p, 1.0)) == pytest.approx(math.log(1 + math.e))


def test_nce_loss_matches_easyrecs_formulation():
    rng = np.random.default_rng(0)
    zi, zj = rng.normal(size=(2, 5, 3)).astype("float32")
    for t in (1.0, 0.15):
        assert float(nce_loss(zi, zj, t)) == pytest.approx(nce_loops(zi, zj, t), rel=1e-4)
    # batch of one: no negatives; the positive is the only class: loss 0
    assert float(nce_loss(zi[:1], zj[:1], 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_gradient_config_round_trip_and_errors():
    x1 = tf.Variable(np.random.default_rng(1).normal(size=(4, 3)).astype("float32"))
    x2 = np.random.default_rng(2).normal(size=(4, 3)).astype("float32")
    layer = AuxiliaryLoss(loss_type="info_nce", temperature=0.2, name="aux")
    with tf.GradientTape() as tape:
        loss = layer([x1, x2])
    assert tape.gradient(loss, x1) is not None
    assert layer.weights == []
    clone = AuxiliaryLoss.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert float(tf.function(clone)([x1, x2])) == pytest.approx(float(loss), rel=1e-5)
    with pytest.raises(ConfigError, match="unknown loss_type 'info_nec' \\(did you mean: "
                                          "info_nce\\?\\)"):
        AuxiliaryLoss(loss_type="info_nec")
    with pytest.raises(ConfigError, match="missing required parameter.*loss_type"):
        proto = backbone_pb2.KerasLayer(class_name="AuxiliaryLoss")
        proto.st_params.update({"loss_weight": 0.1})
        create_layer(proto, "aux", "block aux")
    with pytest.raises(ConfigError, match="a list of two tensors"):
        layer(x2)
    with pytest.raises(ConfigError, match="two tensors of one shape"):
        layer([x2, x2[:, :2]])
    proto = backbone_pb2.KerasLayer(class_name="AuxiliaryLoss")
    proto.auxiliary_loss.loss_type = "nce_loss"
    typed = create_layer(proto, "aux", "block aux")
    assert (typed.loss_weight, typed.temperature) == (1.0, pytest.approx(0.1))


def test_easyrec_contrastive_config_adds_the_weighted_loss_to_the_total():
    # EasyRec's contrastive_learning_on_movielens.config wiring (its two views come from a
    # package with input dropout; here from two MLP towers): the loss block is an input of the
    # top block with ignore_input, only to order the DAG
    text = tiny_config("""
      backbone {
        blocks { name: 'user_tower' inputs { feature_group_name: 'user' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [4] } } }
        blocks { name: 'item_tower' inputs { feature_group_name: 'all' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [4] } } }
        blocks { name: 'contrastive_learning'
          inputs { block_name: 'user_tower' } inputs { block_name: 'item_tower' }
          merge_inputs_into_list: true
          keras_layer { class_name: 'AuxiliaryLoss' st_params {
            fields { key: 'loss_type' value: { string_value: 'info_nce' } }
            fields { key: 'loss_weight' value: { number_value: 0.1 } }
            fields { key: 'temperature' value: { number_value: 0.2 } } } } }
        blocks { name: 'top_mlp'
          inputs { block_name: 'contrastive_learning' ignore_input: true }
          inputs { block_name: 'user_tower' } inputs { block_name: 'item_tower' }
          keras_layer { class_name: 'MLP' mlp { hidden_units: [4] } } }
        concat_blocks: 'top_mlp'
      }
    """)
    model, pre = build_and_initialize(resolve(parse_config_text(text, "t.config")))
    columns = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
               "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
               "price": tf.constant([0.5, 2.0, 4.0])}
    features = pre(columns)
    outputs, emb_l2 = model.forward(features, training=False)
    terms = model.compute_losses({"clk": tf.constant([1.0, 0.0, 1.0])}, outputs, emb_l2)
    values = model.backbone.dag.block_values(model.feature_groups(features), training=False)
    want = 0.1 * float(info_nce_loss(values["user_tower"], values["item_tower"], 0.2))
    assert float(terms["loss/contrastive_learning"]) == pytest.approx(want, rel=1e-5)
    total = sum(float(v) for k, v in terms.items() if k != "loss/total")
    assert float(terms["loss/total"]) == pytest.approx(total, rel=1e-5)
