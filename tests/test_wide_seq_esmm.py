"""WIDE groups (linear part), SequenceFeature, logit_from_backbone and ESMM towers."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.features.preprocess import PAD_ID
from easyblocks.models.build import build_and_initialize

SEQ = """
feature_configs { input_names: "tags" feature_name: "hist" feature_type: SequenceFeature
                  embedding_dim: 4 hash_bucket_size: 50 max_seq_len: 2 embedding_name: "tags" }
"""
COLUMNS = {"clk": tf.constant([1, 0, 1]), "buy": tf.constant([0, 0, 1]),
           "user": tf.constant(["u1", "u2", "u3"]), "tags": tf.constant(["a|b|c", "c", ""]),
           "price": tf.constant([0.5, 2.0, 4.0])}


def build(model_text, extra="", multi=False):
    text = tiny_config(model_text, extra=extra)
    if multi:
        text = text.replace('"RankModel"', '"MultiTaskModel"')
    resolved = resolve(parse_config_text(text, "t.config"))
    model, pre = build_and_initialize(resolved)
    return resolved, model, pre


def test_wide_group_gives_one_weight_per_feature():
    resolved, model, pre = build("""
      feature_groups { group_name: "wide" feature_names: ["user", "tags", "price"]
                       wide_deep: WIDE }
      backbone {
        blocks { name: "deep" inputs { feature_group_name: "all" } }
        blocks { name: "linear" inputs { feature_group_name: "wide" }
                 lambda { expression: "lambda x: tf.reduce_sum(x, axis=-1, keepdims=True)" } }
        concat_blocks: "deep"
      }
      add_to_logit: "linear"
    """)
    fg = model.feature_groups
    assert set(fg.wide_tables) == {"user", "tags"}
    assert fg.wide_tables["user"].shape == (100, 1)
    fg.wide_tables["user"].assign(np.arange(100, dtype=np.float32).reshape(100, 1))
    fg.wide_tables["tags"].assign(np.full((50, 1), 2.0, np.float32))
    fg.wide_raw["price"].kernel.assign([[10.0]])
    features = pre(COLUMNS)
    wide = fg(features)["groups"]["wide"].numpy()
    assert wide.shape == (3, 3)
    np.testing.assert_allclose(wide[:, 0], features["user"].numpy())  # w_user[id] = id
    # summed whatever the feature's combiner (EasyRec's wide columns: combiner 'sum'): three
    # tags of 2.0, one, none
    np.testing.assert_allclose(wide[:, 1], [6.0, 2.0, 0.0])
    np.testing.assert_allclose(wide[:, 2], [5.0, 20.0, 40.0])  # w * price
    assert {g.name for g in resolved.groups.values() if g.wide} == {"wide"}
    # the wide tables are updated row-wise with the deep tables
    assert any(v is fg.wide_tables["user"] for v in fg.table_variables)


def test_sequence_feature_keeps_order_pads_and_truncates():
    resolved, model, pre = build("""
      feature_groups { group_name: "hist" feature_names: "hist" }
      backbone {
        blocks { name: "seq" inputs { feature_group_name: "hist" } }
        blocks { name: "ids" inputs { feature_group_name: "hist" } raw_input {} }
        blocks { name: "pool" inputs { block_name: "seq" }
                 lambda { expression: "lambda x: tf.reduce_sum(x, axis=1)" } }
        concat_blocks: "pool"
      }
    """, extra=SEQ)
    features = pre(COLUMNS)
    ids = features["hist"].numpy()
    assert ids.shape == (3, 2)  # "a|b|c" truncated to max_seq_len 2
    np.testing.assert_array_equal(ids[0], tf.strings.to_hash_bucket_fast(["a", "b"], 50))
    assert ids[1, 1] == PAD_ID and (ids[2] == PAD_ID).all()
    out = model.feature_groups(features)
    seq = out["groups"]["hist"].numpy()
    assert seq.shape == (3, 2, 4)
    table = model.feature_groups.tables["tags"].numpy()  # shared with the tag feature
    np.testing.assert_allclose(seq[0, 1], table[ids[0, 1]])
    np.testing.assert_allclose(seq[1, 1], 0.0)
    np.testing.assert_array_equal(out["raw"]["hist"].numpy(), ids)


def test_a_sequence_beside_other_features_is_read_only_as_seq_and_normal():
    with pytest.raises(ConfigError, match="holds SequenceFeatures .* output_seq_and_normal"):
        build("""
          feature_groups { group_name: "mixed" feature_names: ["hist", "user"] }
          backbone { blocks { name: "x" inputs { feature_group_name: "mixed" } } }
        """, extra=SEQ)


def test_logit_from_backbone_uses_the_block_output_as_logit():
    _, model, pre = build("""
      logit_from_backbone: true
      backbone {
        blocks { name: "score" inputs { feature_group_name: "all" } keras_layer {
          class_name: "Dense" st_params { fields { key: "units" value { number_value: 1 } } } } }
        concat_blocks: "score"
      }
    """)
    features = pre(COLUMNS)
    out = model(features)
    score = model.backbone.dag.tracked_layers[0](model.feature_groups(features)["groups"]["all"])
    np.testing.assert_allclose(out["logits_clk"].numpy(), score.numpy()[:, 0], rtol=1e-6)
    assert not model.towers[0].weights


ESMM = """
  model_params {
    task_towers { tower_name: "ctr" label_name: "clk" dnn { hidden_units: [4] } }
    task_towers { tower_name: "ctcvr" label_name: "buy" dnn { hidden_units: [4] }
                  prob_product_of: "ctr" }
  }
  backbone {
    blocks { name: "ctr_net" inputs { feature_group_name: "all" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [8] } } }
    blocks { name: "cvr_net" inputs { feature_group_name: "all" }
             keras_layer { class_name: "MLP" mlp { hidden_units: [8] } } }
    output_blocks: ["ctr_net", "cvr_net"]
  }
"""


def test_esmm_probability_is_the_product_and_cvr_learns_from_ctcvr():
    resolved, model, pre = build(ESMM, multi=True)
    features = pre(COLUMNS)
    outputs, emb_l2 = model.forward(features, training=False)
    np.testing.assert_allclose(outputs["probs_ctcvr"].numpy(),
                               outputs["cond_probs_ctcvr"].numpy() * outputs["probs_ctr"].numpy(),
                               rtol=1e-6)
    labels = {"clk": tf.constant([1.0, 0.0, 1.0]), "buy": tf.constant([0.0, 0.0, 1.0])}
    cvr_vars = [v for v in model.trainable_variables if "cvr_net" in v.path]
    with tf.GradientTape() as tape:
        outputs, emb_l2 = model.forward(features, training=True)
        loss = model.compute_losses(labels, outputs, emb_l2)["loss/ctcvr/classification"]
    grads = tape.gradient(loss, cvr_vars)
    assert cvr_vars and all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
    p = np.clip(outputs["probs_ctcvr"].numpy(), 1e-7, 1 - 1e-7)
    y = labels["buy"].numpy()
    assert float(loss) == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
                                        rel=1e-5)


def test_prob_product_of_must_name_an_earlier_tower():
    with pytest.raises(ConfigError, match=r"prob_product_of names 'cvr', which is not a tower "
                                          r"listed before this one"):
        build(ESMM.replace('prob_product_of: "ctr"', 'prob_product_of: "cvr"'), multi=True)
