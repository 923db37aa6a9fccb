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
