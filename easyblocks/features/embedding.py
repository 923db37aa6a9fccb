"""Feature ids/values -> one tensor per feature group."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from easyblocks.features.spec import FeatureSpec


class FeatureGroups(keras.layers.Layer):
    """Embeds the features and assembles the configured feature groups.

    Call with the dict produced by `Preprocessor`. Returns a dict with
      "groups":  group name -> (batch, sum of feature widths) float32, the concatenation
      "lists":   group name -> list of (batch, width) tensors, one per feature
      "raw":     group name -> (batch, num_features): the un-embedded bucket ids (int64)
                 or numbers (float32 when the group has raw features)
      "embedding_l2": mean over the batch of the squared norm of the looked-up embeddings
    """

    def __init__(self, specs: dict[str, FeatureSpec], groups: dict[str, list[str]], **kwargs):
        super().__init__(**kwargs)
        self.specs = specs
        self.group_features = groups
        self.tables = {}
        for spec in specs.values():
            if spec.uses_table and spec.kind != "raw" and spec.table not in self.tables:
                self.tables[spec.table] = self.add_weight(
                    shape=(spec.num_ids, spec.embedding_dim),
                    initializer=keras.initializers.TruncatedNormal(
                        stddev=1.0 / math.sqrt(spec.embedding_dim)
                    ),
                    name=f"embedding_{spec.table}",
                )
        self.projections = {
            spec.name: keras.layers.Dense(spec.embedding_dim, name=f"projection_{spec.name}")
            for spec in specs.values()
            if spec.kind == "raw" and spec.embedding_dim > 0
        }

    @property
    def table_variables(self) -> list:
        return list(self.tables.values())

    def group_dims(self) -> dict[str, int]:
        return {
            g: sum(self.specs[f].output_dim for f in names)
            for g, names in self.group_features.items()
        }

    def _embed(self, spec: FeatureSpec, value: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Returns the feature's tensor (batch, width) and its looked-up rows for the L2 term."""
        if spec.kind in ("id", "bucketized"):
            emb = tf.gather(self.tables[spec.table], value)
            return emb, emb
        if spec.kind == "tag":
            mask = tf.cast(value >= 0, tf.float32)[..., None]  # (batch, len, 1)
            rows = tf.gather(self.tables[spec.table], tf.maximum(value, 0)) * mask
            pooled = tf.reduce_sum(rows, axis=1)
            if spec.combiner == "mean":
                pooled = pooled / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            return pooled, rows
        if spec.name in self.projections:
            return self.projections[spec.name](value), None
        return value, None

    def call(self, features: dict[str, tf.Tensor]) -> dict:
        embedded, l2 = {}, []
        for name in {f for names in self.group_features.values() for f in names}:
            spec = self.specs[name]
            embedded[name], rows = self._embed(spec, features[name])
            if rows is not None:
                l2.append(tf.reduce_sum(tf.square(rows)))
        batch = tf.cast(tf.shape(next(iter(features.values())))[0], tf.float32)
        out = {"groups": {}, "lists": {}, "raw": {}}
        for group, names in self.group_features.items():
            tensors = [embedded[n] for n in names]
            out["lists"][group] = tensors
            out["groups"][group] = tensors[0] if len(tensors) == 1 else tf.concat(tensors, -1)
            out["raw"][group] = self._raw(names, features)
        out["embedding_l2"] = tf.add_n(l2) / batch if l2 else tf.constant(0.0)
        return out

    def _raw(self, names: list[str], features: dict[str, tf.Tensor]) -> tf.Tensor | None:
        specs = [self.specs[n] for n in names]
        if any(s.kind == "tag" for s in specs):
            return None  # multi-valued: no fixed-width raw form
        cols = []
        for s in specs:
            v = features[s.name]
            cols.append(v if s.kind == "raw" else tf.reshape(v, [-1, 1]))
        if any(s.kind == "raw" for s in specs):
            cols = [tf.cast(c, tf.float32) for c in cols]
        return cols[0] if len(cols) == 1 else tf.concat(cols, -1)
