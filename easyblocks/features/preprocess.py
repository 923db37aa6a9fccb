"""Raw columns -> feature ids and values: the one preprocessing function.

It runs in the tf.data input pipeline during training and evaluation, and inside
the exported serving function, so a model sees the same features either way.
"""

from __future__ import annotations

import tensorflow as tf

from easyblocks.config.specs import FeatureSpec

PAD_ID = -1  # padding in tag features' id matrices


class Preprocessor(tf.Module):
    """Maps a dict of raw column tensors (batch,) to a dict of feature tensors.

    Outputs, by feature name:
      id, bucketized: int64 (batch,)
      tag, seq:       int64 (batch, max_len_in_batch), padded with PAD_ID (seq: at most
                      max_seq_len values, the first ones)
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
        if spec.vocab_list:
            if values.dtype != tf.string:
                values = tf.strings.as_string(values)
            return self._vocab_tables[spec.name].lookup(values)
        if spec.hash_bucket_size:
            if values.dtype != tf.string:
                values = tf.strings.as_string(values)
            return tf.strings.to_hash_bucket_fast(values, spec.hash_bucket_size)
        # num_buckets: integer ids used as they are; out-of-range ids wrap around
        return tf.math.floormod(tf.cast(values, tf.int64), spec.num_buckets)

    def __call__(self, columns: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {}
        for name, spec in self.specs.items():
            col = columns[spec.column]
            if spec.kind == "id":
                out[name] = self._ids(spec, col)
            elif spec.kind in ("tag", "seq"):
                tokens = tf.strings.split(col, spec.separator)
                tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)
                if spec.max_seq_len:
                    tokens = tokens[:, : spec.max_seq_len]
                ids = tokens.with_flat_values(self._ids(spec, tokens.flat_values))
                out[name] = ids.to_tensor(default_value=PAD_ID)
            elif spec.kind == "bucketized":
                values = tf.cast(col, tf.float32)
                out[name] = tf.cast(
                    tf.raw_ops.Bucketize(input=values, boundaries=list(spec.boundaries)), tf.int64
                )
            else:  # raw
                out[name] = self._raw_values(spec, col)
        return out

    @staticmethod
    def _raw_values(spec: FeatureSpec, col: tf.Tensor) -> tf.Tensor:
        if col.dtype == tf.string:
            parts = tf.strings.split(col, spec.separator)
            values = tf.strings.to_number(parts, tf.float32).to_tensor(shape=[None, spec.raw_dim])
        else:
            values = tf.reshape(tf.cast(col, tf.float32), [-1, 1])
        if spec.log_transform:
            values = tf.math.log1p(tf.maximum(values, 0.0))
        if spec.normalizer_mean or spec.normalizer_std != 1.0:
            values = (values - spec.normalizer_mean) / spec.normalizer_std
        return values


