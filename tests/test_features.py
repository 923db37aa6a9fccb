"""Features: preprocessing shapes, hashing, tags pooled by hand, vocab, buckets, shared tables."""

import numpy as np
import tensorflow as tf
from conftest import tiny_config

from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.config.specs import FeatureGroupSpec
from easyblocks.features.embedding import FeatureGroups
from easyblocks.features.preprocess import PAD_ID, Preprocessor

EXTRA_FEATURES = """
feature_configs { input_names: "user" feature_name: "user_vocab" feature_type: IdFeature
                  embedding_dim: 2 vocab_list: ["u1", "u2"] }
feature_configs { input_names: "price" feature_name: "price_bucket" feature_type: RawFeature
                  boundaries: [1, 10] embedding_dim: 3 }
feature_configs { input_names: "tags" feature_name: "tags_sum" feature_type: TagFeature
                  embedding_dim: 4 hash_bucket_size: 50 combiner: "sum" embedding_name: "tags" }
"""


def groups(**features) -> dict:
    return {name: FeatureGroupSpec(name, tuple(names)) for name, names in features.items()}


def resolved():
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }',
                       extra=EXTRA_FEATURES)
    text = text.replace('feature_groups { group_name: "user" feature_names: "user" }',
                        'feature_groups { group_name: "more" feature_names: ["user_vocab", '
                        '"price_bucket", "tags_sum"] }')
    return resolve(parse_config_text(text, "t.config"))


COLUMNS = {
    "user": tf.constant(["u1", "u2", "zz"]),
    "tags": tf.constant(["a|b", "c", ""]),
    "price": tf.constant([0.5, 5.0, 50.0]),
}


def test_preprocessor_shapes_and_values():
    pre = Preprocessor(resolved().features)
    out = pre(COLUMNS)
    assert out["user"].dtype == tf.int64 and out["user"].shape == (3,)
    assert np.all((out["user"].numpy() >= 0) & (out["user"].numpy() < 100))
    tags = out["tags"].numpy()
    assert tags.shape == (3, 2)
    assert tags[1, 1] == PAD_ID and np.all(tags[2] == PAD_ID)  # "" has no tags
    expected = tf.strings.to_hash_bucket_fast(["a", "b"], 50).numpy()
    np.testing.assert_array_equal(tags[0], expected)
    np.testing.assert_array_equal(out["user_vocab"].numpy(), [0, 1, 2])  # 2 = out of vocabulary
    np.testing.assert_array_equal(out["price_bucket"].numpy(), [0, 1, 2])
    np.testing.assert_allclose(out["price"].numpy(), [[0.5], [5.0], [50.0]])


def test_groups_concatenate_and_pool_tags_by_hand():
    r = resolved()
    layer = FeatureGroups(r.features, r.groups)
    features = Preprocessor(r.features)(COLUMNS)
    out = layer(features)
    assert out["groups"]["all"].shape == (3, 4 + 4 + 1)
    assert out["groups"]["more"].shape == (3, 2 + 3 + 4)
    # tags and tags_sum share the table "tags"
    assert len(layer.table_variables) == 4  # user, tags, user_vocab, price_bucket
    table = layer.tables["tags"].numpy()
    ids = features["tags"].numpy()
    mean0 = (table[ids[0, 0]] + table[ids[0, 1]]) / 2
    np.testing.assert_allclose(out["groups"]["all"][0, 4:8].numpy(), mean0, rtol=1e-6)
    np.testing.assert_allclose(out["groups"]["more"][0, 5:9].numpy(), 2 * mean0, rtol=1e-6)
    np.testing.assert_allclose(out["groups"]["all"][2, 4:8].numpy(), 0.0)  # no tags -> zeros
    np.testing.assert_allclose(out["groups"]["all"][:, 8].numpy(), [0.5, 5.0, 50.0])
    assert out["raw"]["more"] is None  # a tag feature has no fixed-width raw form


def test_raw_group_gives_bucket_ids():
    r = resolved()
    layer = FeatureGroups(r.features, groups(ids=["user_vocab", "price_bucket"]))
    out = layer(Preprocessor(r.features)(COLUMNS))
    np.testing.assert_array_equal(out["raw"]["ids"].numpy(), [[0, 0], [1, 1], [2, 2]])


def test_embedding_l2_is_batch_mean_of_squared_rows():
    r = resolved()
    layer = FeatureGroups(r.features, groups(g=["user_vocab"]))
    out = layer(Preprocessor(r.features)(COLUMNS))
    table = layer.tables["user_vocab"].numpy()
    expected = (table[0] ** 2).sum() + (table[1] ** 2).sum() + (table[2] ** 2).sum()
    np.testing.assert_allclose(out["embedding_l2"].numpy(), expected / 3, rtol=1e-5)


def test_padding_adds_no_row_to_the_table_gradient():
    r = resolved()
    layer = FeatureGroups(r.features, groups(g=["tags"]))
    features = Preprocessor(r.features)(COLUMNS)  # row 2 has no tags, row 1 one tag + padding
    layer(features)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer(features)["groups"]["g"])
    grad = tape.gradient(out, layer.tables["tags"])
    assert isinstance(grad, tf.IndexedSlices)
    real = features["tags"].numpy()
    assert sorted(grad.indices.numpy().tolist()) == sorted(real[real >= 0].tolist())


# ---------------------------------------------------------------- embedding initializers


def _with_features(features: str):
    text = tiny_config('backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }',
                       extra=features)
    return resolve(parse_config_text(text, "t.config"))


def test_initializer_per_feature_easyrec_messages():
    import keras

    from easyblocks.features import embedding

    keras.utils.set_random_seed(1)
    r = _with_features("""
feature_configs { input_names: "user" feature_name: "u_tn" embedding_dim: 8 hash_bucket_size: 500
  initializer { truncated_normal_initializer { mean: 1.0 stddev: 0.1 } } }
feature_configs { input_names: "user" feature_name: "u_rn" embedding_dim: 8 hash_bucket_size: 500
  initializer { random_normal_initializer { stddev: 0.01 } } }
feature_configs { input_names: "user" feature_name: "u_const" embedding_dim: 2
  vocab_list: ["a", "b"] initializer { constant_initializer { consts: [1, 2, 3] } } }
feature_configs { input_names: "user" feature_name: "u_glorot" embedding_dim: 4
  hash_bucket_size: 60 initializer { glorot_normal_initializer {} } }
feature_configs { input_names: "user" feature_name: "u_shared" embedding_dim: 8
  hash_bucket_size: 500 embedding_name: "u_tn" }
""")
    layer = FeatureGroups(r.features,
                          groups(g=["user", "u_tn", "u_rn", "u_const", "u_glorot", "u_shared"]))
    t = {k: v.numpy() for k, v in layer.tables.items()}
    # truncated normal: within 2 stddev of the mean (EasyRec's message, tf's truncation)
    assert abs(t["u_tn"].mean() - 1.0) < 0.01 and np.all(np.abs(t["u_tn"] - 1.0) <= 0.2 + 1e-6)
    assert abs(t["u_rn"].std() - 0.01) < 0.001 and abs(t["u_rn"].mean()) < 0.001
    # TF1's constant_initializer: row-major, the last value repeated (3 rows: 2 + unknown)
    np.testing.assert_array_equal(t["u_const"], [[1, 2], [3, 3], [3, 3]])
    assert abs(t["u_glorot"].std() - np.sqrt(2 / (60 + 4))) < 0.02
    assert r.features["u_shared"].initializer == r.features["u_tn"].initializer  # one table
    assert "u_shared" not in t
    # unset: the default initializer
    default = embedding.default_initializer(4)((100, 4))
    assert abs(t["user"].std() - float(np.std(default))) < 0.05 * float(np.std(default)) + 1e-6


def test_initializer_errors_are_one_config_line():
    import pytest

    from easyblocks.errors import ConfigError

    with pytest.raises(ConfigError, match=r"feature 'u2'.*consts for a table of 3 x 1 = 3"):
        _with_features('feature_configs { input_names: "user" feature_name: "u2" embedding_dim: 1 '
                       'vocab_list: ["a", "b"] initializer { constant_initializer { '
                       'consts: [1, 2, 3, 4] } } }')
    with pytest.raises(ConfigError, match=r"feature 'p2'.*has no embedding"):
        _with_features('feature_configs { input_names: "price" feature_name: "p2" '
                       'feature_type: RawFeature initializer { glorot_normal_initializer {} } }')
    with pytest.raises(ConfigError, match=r"feature 'u3'.*names no initializer"):
        _with_features('feature_configs { input_names: "user" feature_name: "u3" embedding_dim: 2 '
                       'hash_bucket_size: 5 initializer {} }')
    with pytest.raises(ConfigError, match=r"share embedding_name 'x' but set different init"):
        _with_features(
            'feature_configs { input_names: "user" feature_name: "a" embedding_dim: 2 '
            'hash_bucket_size: 5 embedding_name: "x" initializer { glorot_normal_initializer {} } }'
            'feature_configs { input_names: "user" feature_name: "b" embedding_dim: 2 '
            'hash_bucket_size: 5 embedding_name: "x" '
            'initializer { random_normal_initializer {} } }')
