"""Task towers and losses: every term by name, each with its own weight."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.models import losses as L
from easyblocks.models.build import build_and_initialize, dummy_columns

MULTI = """
  model_params {
    task_towers { tower_name: "ctr" label_name: "clk" weight: 2.0 dnn { hidden_units: [3] } }
    task_towers { tower_name: "cvr" label_name: "buy" weight: 0.5
      losses { loss_type: CLASSIFICATION weight: 0.3 }
      losses { loss_type: ORDER_CALIBRATE_LOSS weight: 4.0 }
      relation_tower_names: "ctr" }
    l2_regularization: 0.01
  }
  embedding_regularization: 0.001
  backbone {
    blocks { name: "bottom" inputs { feature_group_name: "all" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } }
    concat_blocks: "bottom"
  }
"""


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def bce(y, logit):
    return np.mean(np.maximum(logit, 0) - logit * y + np.log1p(np.exp(-np.abs(logit))))


def build(model_text=MULTI):
    text = tiny_config(model_text).replace('"RankModel"', '"MultiTaskModel"')
    resolved = resolve(parse_config_text(text, "t.config"))
    model, pre = build_and_initialize(resolved)
    return resolved, model, pre


def test_each_loss_gets_its_own_weight_and_name():
    resolved, model, pre = build()
    features = pre(dummy_columns(resolved))
    outputs, emb_l2 = model.forward(features, training=False)
    labels = {"clk": tf.constant([1.0, 0.0, 1.0, 0.0]), "buy": tf.constant([0.0, 0.0, 1.0, 0.0])}
    terms = {k: float(v) for k, v in model.compute_losses(labels, outputs, emb_l2).items()}
    assert set(terms) == {"loss/ctr/classification", "loss/cvr/classification",
                          "loss/cvr/order_calibrate", "loss/regularization", "loss/total"}
    lc, lv = outputs["logits_ctr"].numpy(), outputs["logits_cvr"].numpy()
    assert terms["loss/ctr/classification"] == pytest.approx(2.0 * bce(labels["clk"].numpy(), lc),
                                                             rel=1e-5)
    assert terms["loss/cvr/classification"] == pytest.approx(
        0.5 * 0.3 * bce(labels["buy"].numpy(), lv), rel=1e-5)
    calib = np.mean(np.maximum(sigmoid(lv) - sigmoid(lc), 0))
    assert terms["loss/cvr/order_calibrate"] == pytest.approx(0.5 * 4.0 * calib, rel=1e-4,
                                                              abs=1e-7)
    kernels = sum(float(np.sum(v.numpy() ** 2)) for v in model.dense_kernels())
    assert terms["loss/regularization"] == pytest.approx(
        0.01 * kernels + 0.001 * float(emb_l2), rel=1e-5)
    assert terms["loss/total"] == pytest.approx(sum(v for k, v in terms.items()
                                                    if k != "loss/total"), rel=1e-6)
    assert outputs["probs_ctr"].shape == (4,)


def test_order_calibrate_loss_by_hand_and_batch_size_invariant():
    p = tf.constant([0.5, 0.2, 0.9, 0.1])
    r = tf.constant([0.4, 0.3, 0.5, 0.1])
    # violations: 0.1, 0, 0.4, 0 -> mean 0.125
    assert float(L.order_calibrate_loss(p, [r])) == pytest.approx(0.125)
    assert float(L.order_calibrate_loss(tf.tile(p, [5]), [tf.tile(r, [5])])) == \
        pytest.approx(0.125)
    assert float(L.order_calibrate_loss(r - 0.05, [r])) == 0.0  # no violation: exactly 0


def test_calibration_default_weight_is_paper_alpha():
    text = MULTI.replace("losses { loss_type: ORDER_CALIBRATE_LOSS weight: 4.0 }",
                         "losses { loss_type: ORDER_CALIBRATE_LOSS }")
    resolved, _, _ = build(text)
    assert resolved.towers[1].losses[1].weight == pytest.approx(0.6)


def test_rank_model_outputs_are_named_by_label():
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } '
                       'concat_blocks: "b" }')
    resolved = resolve(parse_config_text(text, "t.config"))
    model, pre = build_and_initialize(resolved)
    out = model(pre(dummy_columns(resolved)))
    assert set(out) == {"logits_clk", "probs_clk"}
    np.testing.assert_allclose(out["probs_clk"].numpy(), sigmoid(out["logits_clk"].numpy()),
                               rtol=1e-5)


def test_add_to_logit_adds_a_block_output_to_the_tower_logit():
    text = tiny_config("""
      add_to_logit: "aux"
      backbone {
        blocks { name: "main" inputs { feature_group_name: "all" } }
        blocks { name: "aux" inputs { feature_group_name: "user" } keras_layer {
          class_name: "Dense" st_params { fields { key: "units" value { number_value: 1 } } } } }
        concat_blocks: "main"
      }""")
    resolved = resolve(parse_config_text(text, "t.config"))
    model, pre = build_and_initialize(resolved)
    features = pre(dummy_columns(resolved))
    logits = model(features)["logits_clk"].numpy()
    fg = model.feature_groups(features)
    aux = model.backbone.dag.tracked_layers[0](fg["groups"]["user"]).numpy()[:, 0]
    tower = model.towers[0](fg["groups"]["all"]).numpy()[:, 0]
    np.testing.assert_allclose(logits, tower + aux, rtol=1e-5)


def test_add_to_logit_errors():
    base = """
      add_to_logit: "%s"
      backbone {
        blocks { name: "main" inputs { feature_group_name: "all" } }
        concat_blocks: "main"
      }"""
    with pytest.raises(Exception, match=r"add_to_logit names 'mian', which is not a backbone "
                                        r"block \(did you mean: main\?\)"):
        resolve(parse_config_text(tiny_config(base % "mian"), "t.config"))
    resolved = resolve(parse_config_text(tiny_config(base % "main"), "t.config"))
    with pytest.raises(Exception, match=r"add_to_logit block 'main' must output shape "
                                        r"\(batch, 1\)"):
        build_and_initialize(resolved)


STAR_MODEL = """
  feature_groups { group_name: "domain" feature_names: "price_bucket" }
  backbone {
    blocks { name: "domain_id" inputs { feature_group_name: "domain" } raw_input {} }
    blocks { name: "star" inputs { feature_group_name: "all" } inputs { block_name: "domain_id" }
             merge_inputs_into_list: true
             keras_layer { class_name: "STAR" star { num_domains: 4 hidden_units: [3] } } }
    blocks { name: "mlp" inputs { block_name: "star" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [2] } } }
    concat_blocks: "mlp"
  }
"""


def test_l2_applies_to_the_weights_blocks_declare():
    """Dense kernels (MLP, tower) are regularized; STAR declares only its shared kernels W,
    not the domain kernels W_p that start at ones (nor biases or embedding tables)."""
    extra = ('feature_configs { input_names: "price" feature_name: "price_bucket" '
             'feature_type: RawFeature boundaries: [1, 2, 3] embedding_dim: 2 }\n')
    text = tiny_config(STAR_MODEL, extra=extra)
    resolved = resolve(parse_config_text(text, "t.config"))
    model, _ = build_and_initialize(resolved)
    names = sorted(v.path for v in model.dense_kernels())
    assert any("star" in n and n.endswith("/kernel") for n in names), names
    assert not any("domain_kernel" in n for n in names), names
    assert any("mlp/dense_0/kernel" in n for n in names), names
    assert any(n.endswith("logits/kernel") for n in names), names
    assert not any("embedding" in n or n.endswith("bias") for n in names), names


# ---- SOFTMAX_CROSS_ENTROPY over in-batch negatives ----------------------------------------

Z_PAIRS = np.array([[2.0, 0.0, 1.0], [1.0, 3.0, 0.0], [0.0, 0.0, 1.0]], "float32")


def test_in_batch_softmax_by_hand():
    labels = tf.constant([1, 1, 0])
    # row 0: log(e^2 + e^0 + e^1) - 2 = log(1 + e^-2 + e^-1); row 1: log(1 + e^-2 + e^-3);
    # row 2 has label 0: not a positive
    want = (np.log(1 + np.exp(-2) + np.exp(-1)) + np.log(1 + np.exp(-2) + np.exp(-3))) / 2
    assert float(L.in_batch_softmax_loss(labels, tf.constant(Z_PAIRS))) == pytest.approx(
        want, rel=1e-6)
    # rows 0 and 1 show the same item (id 7): neither is the other's negative
    want = (np.log(1 + np.exp(-1)) + np.log(1 + np.exp(-3))) / 2
    got = L.in_batch_softmax_loss(labels, tf.constant(Z_PAIRS), tf.constant([7, 7, 9]))
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert float(L.in_batch_softmax_loss(tf.constant([0, 0, 0]), tf.constant(Z_PAIRS))) == 0.0


def test_in_batch_softmax_gradient_and_positive_hinge():
    z = tf.Variable(Z_PAIRS)
    with tf.GradientTape() as tape:
        loss = L.in_batch_softmax_loss(tf.constant([1, 0, 0]), z)
    grad = tape.gradient(loss, z).numpy()
    p = np.exp(Z_PAIRS[0]) / np.exp(Z_PAIRS[0]).sum()
    np.testing.assert_allclose(grad[0], p - [1, 0, 0], rtol=1e-5)  # softmax - one-hot
    np.testing.assert_allclose(grad[1:], 0.0)
    sims = tf.constant([[0.5], [-0.2], [-0.9]])
    # relu(-s) over the positive rows 0 and 1: (0 + 0.2) / 2
    assert float(L.positive_similarity_hinge(tf.constant([1, 1, 0]), sims)) == pytest.approx(0.1)


def test_dssm_softmax_terms_match_the_towers(write_config):
    import zoo_configs as Z

    resolved = resolve(parse_config_text(Z.config("DSSM_softmax"), "dssm.config"))
    (tower,) = resolved.towers
    assert [loss.key for loss in tower.losses] == ["softmax_cross_entropy"]
    assert tower.in_batch.similarity_block == "similarity"
    assert (tower.in_batch.user_block, tower.in_batch.item_block) == ("user_tower", "item_tower")
    assert tower.in_batch.item_feature == "adgroup_id"
    model, pre = build_and_initialize(resolved)
    columns = dummy_columns(resolved, batch=5)
    columns["adgroup_id"] = tf.constant(["a", "b", "a", "c", "d"])  # rows 0 and 2: one item
    features = pre(columns)
    outputs, emb_l2 = model.forward(features, training=False)
    assert "pair_logits_clk" not in model(features, training=False)  # never served
    values = model.backbone.dag.block_values(model.feature_groups(features), training=False)
    u, v = values["user_tower"].numpy(), values["item_tower"].numpy()
    z = u @ v.T  # INNER_PRODUCT, temperature 1, no scale
    np.testing.assert_allclose(outputs["pair_logits_clk"].numpy(), z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.diag(z), outputs["logits_clk"].numpy(), rtol=1e-4, atol=1e-5)
    labels = {"clk": tf.constant([1, 0, 1, 1, 0])}
    terms = {k: float(t) for k, t in model.compute_losses(labels, outputs, emb_l2).items()}
    masked = z.copy()
    masked[0, 2] = masked[2, 0] = -1e9
    log_p = np.diag(masked) - np.log(np.exp(masked).sum(1))
    assert terms["loss/clk/softmax_cross_entropy"] == pytest.approx(
        -log_p[[0, 2, 3]].mean(), rel=1e-4)
    assert terms["loss/clk/reg_pos"] == pytest.approx(
        np.maximum(-np.diag(z)[[0, 2, 3]], 0).mean(), rel=1e-4, abs=1e-7)


def test_a_second_in_batch_softmax_loss_keeps_its_own_names(write_config):
    """Two SOFTMAX_CROSS_ENTROPY losses in one tower: each with its reg_pos term, named like
    the loss ("softmax_cross_entropy_1" beside "reg_pos_1"), none overwriting the other."""
    import zoo_configs as Z

    text = Z.config("DSSM_softmax").replace(
        "  loss_type: SOFTMAX_CROSS_ENTROPY\n",
        "  losses { loss_type: SOFTMAX_CROSS_ENTROPY weight: 1.0 item_id: \"adgroup_id\" }\n"
        "  losses { loss_type: SOFTMAX_CROSS_ENTROPY weight: 0.5 item_id: \"adgroup_id\" }\n")
    resolved = resolve(parse_config_text(text, "dssm.config"))
    (tower,) = resolved.towers
    assert [loss.key for loss in tower.losses] == ["softmax_cross_entropy",
                                                   "softmax_cross_entropy_1"]
    model, pre = build_and_initialize(resolved)
    outputs, emb_l2 = model.forward(pre(dummy_columns(resolved, batch=4)), training=False)
    labels = {"clk": tf.constant([1, 0, 1, 1])}
    terms = {k: float(t) for k, t in model.compute_losses(labels, outputs, emb_l2).items()}
    assert terms["loss/clk/softmax_cross_entropy_1"] == pytest.approx(
        terms["loss/clk/softmax_cross_entropy"] * 0.5, rel=1e-6)
    assert terms["loss/clk/reg_pos_1"] == pytest.approx(terms["loss/clk/reg_pos"] * 0.5,
                                                        rel=1e-6, abs=1e-9)
