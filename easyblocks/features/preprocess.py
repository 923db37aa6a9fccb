"""Raw columns -> feature ids and values: the one preprocessing function.

It runs in the tf.data input pipeline during training and evaluation, and inside
the exported serving function, so a model sees the same features either way.
"""

from __future__ import annotations

import tensorflow as tf

from easyblocks.config.specs import FeatureSpec

PAD_ID = -1  # padding in tag features' id matrices
LENGTH_SUFFIX = "#length"  # numeric sequences: out[name + LENGTH_SUFFIX] = lengths (batch,)
WEIGHT_SUFFIX = "#weight"  # weighted tags: out[name + WEIGHT_SUFFIX] = weights (batch, len)

_EXPRESSION_OPS = {
    "+": tf.add, "-": tf.subtract, "*": tf.multiply, "/": tf.divide,
    ">=": tf.greater_equal, "<=": tf.less_equal, "==": tf.equal, ">": tf.greater,
    "<": tf.less, "&": tf.logical_and, "|": tf.logical_or,
}


def normalize_min_max(spec: FeatureSpec, values: tf.Tensor) -> tf.Tensor:
    """EasyRec's min_val / max_val: (x - min_val) / (max_val - min_val) when max_val > min_val
    (values outside [min_val, max_val] are not clipped, as in EasyRec)."""
    if spec.max_val > spec.min_val:
        return (values - spec.min_val) / (spec.max_val - spec.min_val)
    return values


def _bucketize(spec: FeatureSpec, values: tf.Tensor) -> tf.Tensor:
    """Bucket ids in [0, len(boundaries)]: id i for boundaries[i-1] <= x < boundaries[i]."""
    values = normalize_min_max(spec, tf.cast(values, tf.float32))
    return tf.cast(tf.raw_ops.Bucketize(input=values, boundaries=list(spec.boundaries)),
                   tf.int64)


class Preprocessor(tf.Module):
    """Maps a dict of raw column tensors (batch,) to a dict of feature tensors.

    Outputs, by feature name:
      id, bucketized: int64 (batch,)
      tag, seq:       int64 (batch, max_len_in_batch), padded with PAD_ID (seq: at most
                      max_seq_len values, the first ones); a tag with kv_separator: the ids
                      of its tags whose weight is > 0, and under name + WEIGHT_SUFFIX their
                      weights, float32, zero-padded; a seq with seq_multi_sep: int64
                      (batch, steps, values per step) padded with PAD_ID, and under
                      name + LENGTH_SUFFIX the number of steps, int32 (batch,)
      seq_raw:        float32 (batch, max_len_in_batch), zero-padded, and under
                      name + LENGTH_SUFFIX the number of values of each row, int32 (batch,)
      raw:            float32 (batch, raw_dim)
    """

    def __init__(self, specs: dict[str, FeatureSpec]):
        super().__init__(name="preprocessor")
        self.specs = specs
        self._vocab_tables = {}
        for spec in specs.values():
            if spec.vocab_list:
                keys = tf.constant(list(spec.vocab_list))
                values = tf.range(len(spec.vocab_list), dtype=tf.int64)
                # values outside the list go to the extra last row
                self._vocab_tables[spec.name] = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(keys, values),
                    default_value=len(spec.vocab_list),
                )

    def _ids(self, spec: FeatureSpec, values: tf.Tensor) -> tf.Tensor:
        """Ids in [0, spec.num_ids) for a tensor of raw values (any shape)."""
        if spec.boundaries:  # a numeric sequence's values
            return _bucketize(spec, tf.strings.to_number(values, tf.float32))
        if spec.vocab_list:
            if values.dtype != tf.string:
                values = tf.strings.as_string(values)
            return self._vocab_tables[spec.name].lookup(values)
        if spec.hash_bucket_size:
            if values.dtype != tf.string:
                values = tf.strings.as_string(values)
            return tf.strings.to_hash_bucket_fast(values, spec.hash_bucket_size)
        # num_buckets: integer ids used as they are; out-of-range ids wrap around
        if values.dtype == tf.string:
            values = tf.strings.to_number(values, tf.int64)
        return tf.math.floormod(tf.cast(values, tf.int64), spec.num_buckets)

    def _tokens(self, spec: FeatureSpec, col: tf.Tensor) -> tf.RaggedTensor:
        """A separated string column -> its non-empty values, (batch, (n)), at most
        max_seq_len of them."""
        tokens = tf.strings.split(col, spec.separator)
        tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)
        if spec.max_seq_len:
            tokens = tokens[:, : spec.max_seq_len]
        return tokens

    def __call__(self, columns: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {}
        for name, spec in self.specs.items():
            if spec.combo_columns:
                out[name] = self._combo(spec, columns)
                continue
            if spec.expression is not None:
                out[name] = self._expression(spec, columns)
                continue
            col = columns[spec.column]
            if spec.kind == "id":
                out[name] = self._ids(spec, col)
            elif spec.seq_multi_sep:
                steps = self._tokens(spec, col)
                inner = tf.strings.split(steps.flat_values, spec.seq_multi_sep)
                inner = tf.ragged.boolean_mask(inner, tf.strings.length(inner) > 0)
                ids = inner.with_flat_values(self._ids(spec, inner.flat_values))
                nested = tf.RaggedTensor.from_row_lengths(ids, steps.row_lengths())
                out[name] = nested.to_tensor(default_value=PAD_ID)
                out[name + LENGTH_SUFFIX] = tf.cast(steps.row_lengths(), tf.int32)
            elif spec.kv_separator:
                out[name], out[name + WEIGHT_SUFFIX] = self._weighted_tags(spec, col)
            elif spec.kind in ("tag", "seq"):
                tokens = self._tokens(spec, col)
                ids = tokens.with_flat_values(self._ids(spec, tokens.flat_values))
                out[name] = ids.to_tensor(default_value=PAD_ID)
            elif spec.kind == "seq_raw":
                tokens = self._tokens(spec, col)
                values = normalize_min_max(spec, tf.strings.to_number(tokens.flat_values,
                                                                      tf.float32))
                out[name] = tokens.with_flat_values(values).to_tensor(default_value=0.0)
                out[name + LENGTH_SUFFIX] = tf.cast(tokens.row_lengths(), tf.int32)
            elif spec.kind == "bucketized":
                out[name] = _bucketize(spec, col)
            else:  # raw
                out[name] = self._raw_values(spec, col)
        return out

    def _weighted_tags(self, spec: FeatureSpec, col: tf.Tensor) -> tuple:
        """EasyRec's kv_separator: each tag is "id<kv_separator>weight"; as TensorFlow's
        weighted embedding lookup (safe_embedding_lookup_sparse) does, tags whose weight is
        not > 0 are dropped. Returns (ids, weights), both (batch, n) padded (PAD_ID, 0)."""
        tokens = self._tokens(spec, col)
        pairs = tf.strings.split(tokens.flat_values, spec.kv_separator)
        check = tf.debugging.assert_equal(
            pairs.row_lengths(), tf.cast(2, pairs.row_lengths().dtype),
            message=f"feature {spec.name!r}: a weighted tag is not "
                    f"<id>{spec.kv_separator!r}<weight>")
        with tf.control_dependencies([check]):
            pairs = pairs.to_tensor(default_value="", shape=[None, 2])
        keys, weights = pairs[:, 0], tf.strings.to_number(pairs[:, 1], tf.float32)
        keep = tokens.with_flat_values(weights > 0)
        ids = tf.ragged.boolean_mask(tokens.with_flat_values(self._ids(spec, keys)), keep)
        weights = tf.ragged.boolean_mask(tokens.with_flat_values(weights), keep)
        return ids.to_tensor(default_value=PAD_ID), weights.to_tensor(default_value=0.0)

    @staticmethod
    def _combo(spec: FeatureSpec, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        """ComboFeature ids: the cross of its inputs' values (an input with a separator in
        combo_input_seps gives its non-empty values, the others their one value as text).

        As in EasyRec: without combo_join_sep each combination is hashed by TensorFlow's
        feature cross (what EasyRec's crossed_column computes, so the ids are EasyRec's);
        with combo_join_sep the values are joined by it (split inputs: by "_X_", EasyRec's
        sparse_cross) and the string is hashed into hash_bucket_size ids.
        """
        parts = []
        for column, sep in zip(spec.combo_columns, spec.combo_seps):
            v = columns[column]
            if v.dtype != tf.string:
                v = tf.strings.as_string(v)
            if sep:
                t = tf.strings.split(v, sep)
                parts.append(tf.ragged.boolean_mask(t, tf.strings.length(t) > 0))
            else:
                parts.append(tf.reshape(v, [-1, 1]))
        n = spec.hash_bucket_size
        if spec.combo_join_sep and not any(spec.combo_seps):
            return tf.strings.to_hash_bucket_fast(
                tf.strings.join([tf.reshape(p, [-1]) for p in parts], spec.combo_join_sep), n)
        if spec.combo_join_sep:
            crossed = tf.ragged.cross(parts)
            ids = crossed.with_flat_values(tf.strings.to_hash_bucket_fast(crossed.flat_values,
                                                                          n))
        else:
            ids = tf.ragged.cross_hashed(parts, num_buckets=n)
        if spec.kind == "id":  # one value per input: one combination per row
            return tf.reshape(ids.flat_values, [-1])
        return ids.to_tensor(default_value=PAD_ID)

    @staticmethod
    def _expression(spec: FeatureSpec, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        """ExprFeature: the checked expression tree evaluated on float64 columns; float32
        (batch, 1) (a comparison gives 1.0 or 0.0)."""

        def value(node):
            op = node[0]
            if op == "num":
                return tf.constant(node[1], tf.float64)
            if op == "col":
                col = columns[node[1]]
                if col.dtype == tf.string:
                    return tf.strings.to_number(col, tf.float64)
                return tf.cast(col, tf.float64)
            if op == "neg":
                return -value(node[1])
            return _EXPRESSION_OPS[op](value(node[1]), value(node[2]))

        result = tf.cast(value(spec.expression.tree), tf.float32)
        first = columns[spec.expression.names[0]]
        return tf.reshape(result + tf.zeros(tf.shape(first), tf.float32), [-1, 1])

    @staticmethod
    def _raw_values(spec: FeatureSpec, col: tf.Tensor) -> tf.Tensor:
        if col.dtype == tf.string:
            parts = tf.strings.split(col, spec.separator)
            values = tf.strings.to_number(parts, tf.float32).to_tensor(shape=[None, spec.raw_dim])
        else:
            values = tf.reshape(tf.cast(col, tf.float32), [-1, 1])
        values = normalize_min_max(spec, values)
        if spec.log_transform:
            values = tf.math.log1p(tf.maximum(values, 0.0))
        if spec.normalizer_mean or spec.normalizer_std != 1.0:
            values = (values - spec.normalizer_mean) / spec.normalizer_std
        return values
