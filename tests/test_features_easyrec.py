"""EasyRec's feature semantics, pinned by hand: min_val / max_val, ComboFeature, sequence
combiners, feature-group sequence_features (target attention), numeric sequences,
ExprFeature, name ranges."""

import numpy as np
import pytest
import tensorflow as tf

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.features.embedding import FeatureGroups
from easyblocks.features.preprocess import LENGTH_SUFFIX, PAD_ID, WEIGHT_SUFFIX, Preprocessor

DATA = """
data_config {
  batch_size: 4
  num_epochs: 1
  input_fields { input_name: "clk" input_type: INT32 }
  input_fields { input_name: "user" input_type: STRING }
  input_fields { input_name: "item" input_type: INT64 }
  input_fields { input_name: "cate" input_type: STRING }
  input_fields { input_name: "tags" input_type: STRING }
  input_fields { input_name: "price" input_type: DOUBLE }
  input_fields { input_name: "age" input_type: INT32 }
  input_fields { input_name: "hist_item" input_type: STRING }
  input_fields { input_name: "hist_cate" input_type: STRING }
  input_fields { input_name: "hist_price" input_type: STRING }
  label_fields: "clk"
}
"""


def resolved(features: str, groups: str):
    text = DATA + "feature_config {\n" + features + "\n}\nmodel_config {\n" \
        'model_class: "RankModel"\n' + groups + \
        '\nbackbone { blocks { name: "b" inputs { feature_group_name: "g" } } }\n}\n'
    return resolve(parse_config_text(text, "t.config"))


COLUMNS = {
    "user": tf.constant(["u1", "u2", ""]),
    "item": tf.constant([3, 4, 5], tf.int64),
    "cate": tf.constant(["c1", "c2", "c3"]),
    "tags": tf.constant(["a|b", "c", ""]),
    "price": tf.constant([50.0, 150.0, -10.0], tf.float64),
    "age": tf.constant([20, 40, 25], tf.int32),
    "hist_item": tf.constant(["1|2", "3", ""]),
    "hist_cate": tf.constant(["c1|c2", "c3", ""]),
    "hist_price": tf.constant(["5|60|20", "", "99"]),
}


def test_min_max_normalizes_without_clipping_and_num_buckets_bucketizes():
    r = resolved("""
      features { input_names: "price" feature_type: RawFeature min_val: 0 max_val: 100 }
      features { feature_name: "price_b" input_names: "price" feature_type: RawFeature
                 min_val: 0 max_val: 100 num_buckets: 4 embedding_dim: 2 }
      features { feature_name: "price_bounds" input_names: "price" feature_type: RawFeature
                 min_val: 0 max_val: 100 boundaries: [0.4, 1.2] embedding_dim: 2 }
    """, 'feature_groups { group_name: "g" feature_names: ["price", "price_b"] }')
    out = Preprocessor(r.features)(COLUMNS)
    # (x - 0) / 100: 50 -> 0.5, 150 -> 1.5 (not clipped), -10 -> -0.1
    np.testing.assert_allclose(out["price"].numpy(), [[0.5], [1.5], [-0.1]], rtol=1e-6)
    # boundaries 0, 0.25, 0.5, 0.75 -> 5 ids: 0.5 -> 3, 1.5 -> 4, -0.1 -> 0
    assert r.features["price_b"].num_ids == 5
    np.testing.assert_array_equal(out["price_b"].numpy(), [3, 4, 0])
    # explicit boundaries compare the normalized value (EasyRec normalizes first)
    np.testing.assert_array_equal(out["price_bounds"].numpy(), [1, 2, 0])


def test_combo_without_join_sep_gives_tensorflows_feature_cross_ids():
    r = resolved("""
      features { feature_name: "uc" input_names: ["user", "item"] feature_type: ComboFeature
                 embedding_dim: 2 hash_bucket_size: 1000 }
    """, 'feature_groups { group_name: "g" feature_names: "uc" }')
    assert r.features["uc"].kind == "id"
    ids = Preprocessor(r.features)(COLUMNS)["uc"].numpy()
    # EasyRec's crossed_column: sparse_cross_hashed of the values as text, default hash key
    expected = tf.sparse.cross_hashed(
        [tf.constant([["u1"], ["u2"], [""]]), tf.constant([["3"], ["4"], ["5"]])],
        num_buckets=1000)
    np.testing.assert_array_equal(ids, tf.sparse.to_dense(expected).numpy()[:, 0])
    assert ids[0] != ids[1]


def test_combo_with_join_sep_hashes_the_joined_text():
    r = resolved("""
      features { feature_name: "uc" input_names: ["user", "cate"] feature_type: ComboFeature
                 embedding_dim: 2 hash_bucket_size: 1000 combo_join_sep: "#" }
      features { feature_name: "tc" input_names: ["tags", "cate"] feature_type: ComboFeature
                 embedding_dim: 2 hash_bucket_size: 1000 combo_join_sep: "#"
                 combo_input_seps: ["|", ""] combiner: "sum" }
    """, 'feature_groups { group_name: "g" feature_names: ["uc", "tc"] }')
    out = Preprocessor(r.features)(COLUMNS)
    np.testing.assert_array_equal(
        out["uc"].numpy(), tf.strings.to_hash_bucket_fast(["u1#c1", "u2#c2", "#c3"], 1000))
    # a split input: EasyRec's sparse_cross joins the combinations with "_X_"
    tc = out["tc"].numpy()
    h = tf.strings.to_hash_bucket_fast(["a_X_c1", "b_X_c1", "c_X_c2"], 1000).numpy()
    np.testing.assert_array_equal(tc, [[h[0], h[1]], [h[2], PAD_ID], [PAD_ID, PAD_ID]])
    assert r.features["tc"].kind == "tag"


def test_combo_errors():
    with pytest.raises(ConfigError, match="needs at least two input_names"):
        resolved('features { feature_name: "c" input_names: "user" feature_type: ComboFeature '
                 'embedding_dim: 2 hash_bucket_size: 9 }',
                 'feature_groups { group_name: "g" feature_names: "c" }')
    with pytest.raises(ConfigError, match="'price' is DOUBLE.*precision"):
        resolved('features { feature_name: "c" input_names: ["user", "price"] '
                 'feature_type: ComboFeature embedding_dim: 2 hash_bucket_size: 9 }',
                 'feature_groups { group_name: "g" feature_names: "c" }')
    with pytest.raises(ConfigError, match="combo_input_seps has 1 entries for 2"):
        resolved('features { feature_name: "c" input_names: ["user", "cate"] '
                 'feature_type: ComboFeature embedding_dim: 2 hash_bucket_size: 9 '
                 'combo_input_seps: "|" }',
                 'feature_groups { group_name: "g" feature_names: "c" }')


def test_attention_combiner_by_hand():
    r = resolved("""
      features { input_names: "user" embedding_dim: 2 hash_bucket_size: 10 }
      features { input_names: "hist_item" feature_type: SequenceFeature embedding_dim: 2
                 num_buckets: 10 sequence_combiner { attention {} } }
    """, 'feature_groups { group_name: "g" feature_names: ["hist_item", "user"] }')
    layer = FeatureGroups(r.features, r.groups)
    features = Preprocessor(r.features)(COLUMNS)
    layer(features)
    table = np.arange(20, dtype=np.float32).reshape(10, 2) / 10.0
    layer.tables["hist_item"].assign(table)
    layer.combiners["hist_item"].score.kernel.assign([[1.0], [-0.5]])
    out = layer(features)
    g = out["groups"]["g"].numpy()
    assert g.shape == (3, 4)  # the pooled sequence comes after the other features
    e1, e2 = table[1], table[2]
    s = np.array([e1 @ [1.0, -0.5], e2 @ [1.0, -0.5]])
    a = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(g[0, 2:], a[0] * e1 + a[1] * e2, rtol=1e-5)
    np.testing.assert_allclose(g[1, 2:], table[3], rtol=1e-6)  # one item: weight 1
    np.testing.assert_allclose(g[2, 2:], [0.0, 0.0])  # no items: zeros
    assert [t.shape[-1] for t in out["lists"]["g"]] == [2, 2]


def test_text_cnn_combiner_is_the_textcnn_block_on_the_sequence():
    r = resolved("""
      features { input_names: "hist_item" feature_type: SequenceFeature embedding_dim: 2
                 num_buckets: 10 sequence_combiner { text_cnn {
                   filter_sizes: [1, 2] num_filters: [3, 2] } } }
    """, 'feature_groups { group_name: "g" feature_names: "hist_item" }')
    layer = FeatureGroups(r.features, r.groups)
    features = Preprocessor(r.features)(COLUMNS)
    out = layer(features)["groups"]["g"]
    assert out.shape == (3, 5) and r.features["hist_item"].output_dim == 5
    table = layer.tables["hist_item"].numpy()
    seq = tf.constant(np.stack([table[[1, 2]], np.stack([table[3], np.zeros(2)]),
                                np.zeros((2, 2))]), tf.float32)
    cnn = layer.combiners["hist_item"]
    expected = cnn([seq, tf.constant([2, 1, 0])])
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5)


def test_target_attention_by_hand():
    r = resolved("""
      features { input_names: "item" embedding_dim: 2 num_buckets: 10 embedding_name: "item" }
      features { input_names: "user" embedding_dim: 2 hash_bucket_size: 10 }
      features { input_names: "hist_item" feature_type: SequenceFeature embedding_dim: 2
                 num_buckets: 10 embedding_name: "item" }
    """, """feature_groups { group_name: "g" feature_names: "user"
         sequence_features { group_name: "din"
           seq_att_map { key: "item" hist_seq: "hist_item" }
           seq_dnn { hidden_units: [1] } } }""")
    layer = FeatureGroups(r.features, r.groups)
    features = Preprocessor(r.features)(COLUMNS)
    layer(features)
    table = (np.arange(20, dtype=np.float32).reshape(10, 2) - 10) / 10.0
    layer.tables["item"].assign(table)
    att = layer.target_attention[("g", "din")]
    w = np.array([[0.1], [0.2], [0.3], [-0.4], [0.5], [0.6], [-0.7], [0.8]], np.float32)
    att.dnn.dense_layers[0].kernel.assign(w)
    att.dnn.dense_layers[0].bias.assign([0.25])
    out = layer(features)
    g = out["groups"]["g"].numpy()
    # user (2), then [attention (2), key (2)] (need_key_feature defaults to true)
    assert g.shape == (3, 6) and r.groups["g"].seq_att[0].output_dim == 4

    def by_hand(key_id, hist_ids):
        q = table[key_id]
        if not hist_ids:
            return np.concatenate([[0.0, 0.0], q])
        h = table[hist_ids]
        s = np.array([np.concatenate([q, ht, q - ht, q * ht]) @ w[:, 0] + 0.25 for ht in h])
        a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        return np.concatenate([a @ h, q])

    np.testing.assert_allclose(g[0, 2:], by_hand(3, [1, 2]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g[1, 2:], by_hand(4, [3]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g[2, 2:], by_hand(5, []), rtol=1e-5, atol=1e-6)
    assert len(out["lists"]["g"]) == 2 and out["raw"]["g"] is None


def test_target_attention_key_transform_pads_a_narrow_key_and_checks_widths():
    features = """
      features { input_names: "item" embedding_dim: 2 num_buckets: 10 }
      features { input_names: "hist_item" feature_type: SequenceFeature embedding_dim: 4
                 num_buckets: 10 }
    """
    group = """feature_groups { group_name: "g"
         sequence_features { group_name: "din" %s
           seq_att_map { key: "item" hist_seq: "hist_item" } } }"""
    with pytest.raises(ConfigError, match="width 2 but the sequences .* 4.*allow_key_transform"):
        resolved(features, group % "")
    r = resolved(features, group % "allow_key_transform: true need_key_feature: false")
    layer = FeatureGroups(r.features, r.groups)
    att = layer.target_attention[("g", "din")]
    assert att.pad_key and att.key_dense is None
    out = layer(Preprocessor(r.features)(COLUMNS))["groups"]["g"]
    assert out.shape == (3, 4)  # the attention output only (a group of only sequences)
    r = resolved(features, group % "allow_key_transform: true transform_dnn: true")
    layer = FeatureGroups(r.features, r.groups)
    assert layer.target_attention[("g", "din")].key_dense is not None
    out = layer(Preprocessor(r.features)(COLUMNS))["groups"]["g"]
    assert out.shape == (3, 8)  # attention (4) + the transformed key (4)


def test_numeric_sequences_bucketized_and_projected():
    r = resolved("""
      features { feature_name: "hp_ids" input_names: "hist_price" feature_type: SequenceFeature
                 sub_feature_type: RawFeature boundaries: [10, 50] embedding_dim: 2 }
      features { feature_name: "hp_norm" input_names: "hist_price"
                 feature_type: SequenceFeature sub_feature_type: RawFeature min_val: 0
                 max_val: 100 num_buckets: 2 embedding_dim: 2 max_seq_len: 2 }
      features { feature_name: "hp_raw" input_names: "hist_price"
                 feature_type: SequenceFeature sub_feature_type: RawFeature embedding_dim: 3
                 sequence_length: 3 sequence_combiner { attention {} } }
      features { feature_name: "hp_short" input_names: "hist_price"
                 feature_type: SequenceFeature sub_feature_type: RawFeature
                 sequence_length: 2 }
    """, 'feature_groups { group_name: "g" feature_names: "hp_raw" }')
    out = Preprocessor(r.features)(COLUMNS)
    # "5|60|20", "", "99" -> buckets at 10 and 50
    np.testing.assert_array_equal(out["hp_ids"].numpy(),
                                  [[0, 2, 1], [PAD_ID] * 3, [2, PAD_ID, PAD_ID]])
    # normalized by 100, buckets at 0 and 0.5; max_seq_len 2 keeps the first two
    np.testing.assert_array_equal(out["hp_norm"].numpy(), [[1, 2], [PAD_ID] * 2, [2, PAD_ID]])
    np.testing.assert_allclose(out["hp_raw"].numpy(), [[5, 60, 20], [0, 0, 0], [99, 0, 0]])
    np.testing.assert_array_equal(out["hp_raw" + LENGTH_SUFFIX].numpy(), [3, 0, 1])
    np.testing.assert_allclose(out["hp_short"].numpy(), [[5, 60], [0, 0], [99, 0]])
    layer = FeatureGroups(r.features, r.groups)
    features = out
    layer(features)
    w = np.array([[1.0, -1.0, 0.5]], np.float32)
    layer.seq_projections["hp_raw"].assign(w)
    layer.combiners["hp_raw"].score.kernel.assign([[0.0], [0.0], [0.0]])  # equal weights
    g = layer(features)["groups"]["g"].numpy()
    # each value times the projection row (EasyRec's raw_proj: no bias), mean of the valid
    np.testing.assert_allclose(g[0], (5 + 60 + 20) / 3 * w[0], rtol=1e-5)
    np.testing.assert_allclose(g[2], 99 * w[0], rtol=1e-5)
    np.testing.assert_allclose(g[1], 0.0)


def test_expression_feature_by_hand_and_never_eval():
    r = resolved("""
      features { feature_name: "young_cheap" input_names: ["age", "price"]
                 feature_type: ExprFeature
                 expression: "(age<30) & (price<=(age+40))" }
      features { feature_name: "ratio" input_names: ["age", "price"]
                 feature_type: ExprFeature expression: "price/age - 1" }
    """, 'feature_groups { group_name: "g" feature_names: ["young_cheap", "ratio"] }')
    out = Preprocessor(r.features)(COLUMNS)
    # age 20, 40, 25; price 50, 150, -10
    np.testing.assert_allclose(out["young_cheap"].numpy(), [[1.0], [0.0], [1.0]])
    np.testing.assert_allclose(out["ratio"].numpy(), [[1.5], [2.75], [-1.4]], rtol=1e-6)
    for bad, message in [('__import__(\\"os\\")', "cannot parse"),
                         ("age & price", "'&' needs a comparison"),
                         ("agee > 1", "names 'agee'.*did you mean: age")]:
        with pytest.raises(ConfigError, match=message):
            resolved(f'features {{ feature_name: "x" input_names: ["age", "price"] '
                     f'feature_type: ExprFeature expression: "{bad}" }}',
                     'feature_groups { group_name: "g" feature_names: "x" }')


def test_name_ranges_expand_in_groups_and_with_auto_expand_input_fields():
    text = """
    data_config {
      batch_size: 4
      num_epochs: 1
      auto_expand_input_fields: true
      input_fields { input_name: "clk" input_type: INT32 }
      input_fields { input_name: "field[1-3]" input_type: STRING }
      label_fields: "clk"
    }
    feature_config {
      features { input_names: "field1" embedding_dim: 2 hash_bucket_size: 10 }
      features { input_names: "field2" embedding_dim: 2 hash_bucket_size: 10 }
      features { input_names: "field3" embedding_dim: 2 hash_bucket_size: 10 }
    }
    model_config {
      model_class: "RankModel"
      feature_groups { group_name: "g" feature_names: "field[1-3]" }
      backbone { blocks { name: "b" inputs { feature_group_name: "g" } } }
    }
    """
    r = resolve(parse_config_text(text, "t.config"))
    assert r.data.field_names == ["clk", "field1", "field2", "field3"]
    assert r.groups["g"].features == ("field1", "field2", "field3")
    with pytest.raises(ConfigError, match="input 'field1' is not in data_config.input_fields"):
        resolve(parse_config_text(text.replace("auto_expand_input_fields: true", ""), "t"))


def test_sequence_beside_other_features_needs_output_seq_and_normal_feature():
    features = ('features { input_names: "user" embedding_dim: 2 hash_bucket_size: 10 }\n'
                'features { input_names: "hist_item" feature_type: SequenceFeature '
                'embedding_dim: 2 num_buckets: 10 }\n'
                'features { input_names: "hist_cate" feature_type: SequenceFeature '
                'embedding_dim: 3 hash_bucket_size: 10 }')
    group = 'feature_groups { group_name: "g" feature_names: ["user", "hist_item", "hist_cate"] }'
    with pytest.raises(ConfigError, match="holds SequenceFeatures .* output_seq_and_normal"):
        resolved(features, group)
    text = DATA + "feature_config {\n" + features + "\n}\nmodel_config {\n" \
        'model_class: "RankModel"\n' + group + """
        backbone {
          blocks { name: "g" inputs { feature_group_name: "g" }
                   input_layer { output_seq_and_normal_feature: true } }
          blocks { name: "b" inputs { block_name: "g" } }
          concat_blocks: "b"
        }
        }"""
    r = resolve(parse_config_text(text, "t.config"))
    layer = FeatureGroups(r.features, r.groups)
    features_in = Preprocessor(r.features)(COLUMNS)
    out = layer(features_in)
    seq, lengths, target = out["seq_and_normal"]["g"]
    assert out["groups"]["g"] is None
    assert seq.shape == (3, 2, 5) and target.shape == (3, 2)
    np.testing.assert_array_equal(lengths.numpy(), [2, 1, 0])
    items = layer.tables["hist_item"].numpy()
    np.testing.assert_allclose(seq.numpy()[0, :, :2], items[[1, 2]], rtol=1e-6)
    np.testing.assert_allclose(seq.numpy()[1, 1], 0.0)  # padding
    np.testing.assert_allclose(target.numpy(), layer.tables["user"].numpy()[
        features_in["user"].numpy()], rtol=1e-6)


def test_seq_multi_sep_pools_each_step_by_the_combiner():
    r = resolved("""
      features { input_names: "hist_cate" feature_type: SequenceFeature embedding_dim: 2
                 num_buckets: 10 seq_multi_sep: ";" combiner: "mean"
                 sequence_combiner { attention {} } }
    """, 'feature_groups { group_name: "g" feature_names: "hist_cate" }')
    columns = dict(COLUMNS, hist_cate=tf.constant(["1;2|3", "", "4;5;6"]))
    features = Preprocessor(r.features)(columns)
    np.testing.assert_array_equal(features["hist_cate"].numpy(), [
        [[1, 2, PAD_ID], [3, PAD_ID, PAD_ID]],
        [[PAD_ID] * 3, [PAD_ID] * 3],
        [[4, 5, 6], [PAD_ID] * 3]])
    np.testing.assert_array_equal(features["hist_cate" + LENGTH_SUFFIX].numpy(), [2, 0, 1])
    layer = FeatureGroups(r.features, r.groups)
    layer(features)
    table = np.arange(20, dtype=np.float32).reshape(10, 2)
    layer.tables["hist_cate"].assign(table)
    layer.combiners["hist_cate"].score.kernel.assign([[0.0], [0.0]])  # equal step weights
    g = layer(features)["groups"]["g"].numpy()
    steps0 = [(table[1] + table[2]) / 2, table[3]]
    np.testing.assert_allclose(g[0], (steps0[0] + steps0[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(g[2], (table[4] + table[5] + table[6]) / 3, rtol=1e-6)
    np.testing.assert_allclose(g[1], [0.0, 0.0])


def test_input_layer_options_by_hand():
    from easyblocks.features.embedding import InputLayerOptions

    a, b = tf.constant([[1.0, 3.0], [3.0, 5.0]]), tf.constant([[2.0], [4.0]])
    features = tf.concat([a, b], -1)
    layer = InputLayerOptions("layer", per_feature=True)
    out, parts = layer(features, [a, b], training=False)
    # layer norm over the last axis (gamma 1, beta 0): row [1, 3, 2] -> (x - 2) / sqrt(2/3)
    np.testing.assert_allclose(out.numpy()[0], np.array([-1.0, 1.0, 0.0]) / np.sqrt(2 / 3),
                               rtol=1e-5)
    np.testing.assert_allclose(parts[0].numpy(), [[-1.0, 1.0], [-1.0, 1.0]], rtol=1e-5)
    np.testing.assert_allclose(parts[1].numpy(), [[0.0], [0.0]], atol=1e-6)
    # feature dropout: each feature kept (scaled by 1 / keep) or zeroed as a whole
    layer = InputLayerOptions(feature_dropout_rate=0.5)
    seen = set()
    for _ in range(20):
        out, _ = layer(features, [a, b], training=True)
        kept = tuple(bool(np.any(out.numpy()[:, s] != 0)) for s in (slice(0, 2), slice(2, 3)))
        for (k, s, x) in zip(kept, (slice(0, 2), slice(2, 3)), (a, b)):
            if k:
                np.testing.assert_allclose(out.numpy()[:, s], 2 * x.numpy())
        seen.add(kept)
    assert len(seen) > 1
    out, _ = layer(features, [a, b], training=False)
    np.testing.assert_allclose(out.numpy(), features.numpy())  # only when training


def test_shared_names_copy_the_feature_per_input():
    r = resolved("""
      features { input_names: "hist_item" shared_names: ["hist_cate", "tags"]
                 feature_type: TagFeature embedding_dim: 2 hash_bucket_size: 10
                 embedding_name: "shared" }
    """, 'feature_groups { group_name: "g" feature_names: ["hist_item", "hist_cate", "tags"] }')
    assert list(r.features) == ["hist_item", "hist_cate", "tags"]
    assert {s.table for s in r.features.values()} == {"shared"}
    assert r.features["tags"].column == "tags" and r.features["tags"].hash_bucket_size == 10


WEIGHTED = {"tags": tf.constant(["1:2|3:0.5", "2:1|4:0|5:-1", ""])}


def test_weighted_tags_are_pooled_by_their_weights():
    r = resolved("""
      features { feature_name: "mean" input_names: "tags" feature_type: TagFeature
                 embedding_dim: 2 num_buckets: 10 kv_separator: ":" combiner: "mean"
                 embedding_name: "t" }
      features { feature_name: "sum" input_names: "tags" feature_type: TagFeature
                 embedding_dim: 2 num_buckets: 10 kv_separator: ":" embedding_name: "t" }
    """, 'feature_groups { group_name: "g" feature_names: ["mean", "sum"] }\n'
         'feature_groups { group_name: "w" feature_names: "mean" wide_deep: WIDE }')
    features = Preprocessor(r.features)(WEIGHTED)
    # weights <= 0 are dropped (TensorFlow's weighted lookup prunes them)
    np.testing.assert_array_equal(features["mean"].numpy(), [[1, 3], [2, PAD_ID], [PAD_ID] * 2])
    np.testing.assert_allclose(features["mean" + WEIGHT_SUFFIX].numpy(),
                               [[2, 0.5], [1, 0], [0, 0]])
    layer = FeatureGroups(r.features, r.groups)
    layer(features)
    layer.tables["t"].assign(np.array([[i, 10 * i] for i in range(10)], np.float32))
    layer.wide_tables["t"].assign(np.arange(10, dtype=np.float32).reshape(10, 1))
    out = layer(features)
    # row 0: mean = (2 [1, 10] + 0.5 [3, 30]) / 2.5 = [1.4, 14]; sum = [3.5, 35]
    # row 1: one tag, weight 1: [2, 20] both; row 2: no tags: zeros
    np.testing.assert_allclose(out["groups"]["g"].numpy(),
                               [[1.4, 14, 3.5, 35], [2, 20, 2, 20], [0, 0, 0, 0]], rtol=1e-6)
    # the wide weights are summed, weighted: 2 x 1 + 0.5 x 3 (EasyRec's wide: combiner sum)
    np.testing.assert_allclose(out["groups"]["w"].numpy(), [[3.5], [2.0], [0.0]], rtol=1e-6)


def test_a_weighted_tag_without_its_weight_fails_and_kv_separator_needs_a_tag_feature():
    r = resolved("""
      features { input_names: "tags" feature_type: TagFeature embedding_dim: 2
                 hash_bucket_size: 10 kv_separator: ":" }
    """, 'feature_groups { group_name: "g" feature_names: "tags" }')
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature 'tags': a weighted tag "
                                                              "is not <id>':'<weight>"):
        Preprocessor(r.features)({"tags": tf.constant(["a:1|b"])})
    with pytest.raises(ConfigError, match=r"feature 'cate': kv_separator \(weighted tags\) is "
                                          "read by a TagFeature only, not a IdFeature"):
        resolved("""
          features { input_names: "cate" feature_type: IdFeature embedding_dim: 2
                     hash_bucket_size: 10 kv_separator: ":" }
        """, 'feature_groups { group_name: "g" feature_names: "cate" }')
