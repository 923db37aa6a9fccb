"""Feature ids/values -> one tensor per feature group."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from easyblocks.features.preprocess import PAD_ID
from easyblocks.features.spec import FeatureSpec

# stddev of the default embedding initializer (docs/benchmarks/quality.md)
DEFAULT_STDDEV = 0.01


def default_initializer(embedding_dim: int) -> keras.initializers.Initializer:
    """The initializer of an embedding table whose feature sets none: truncated normal with
    stddev 0.01, whatever the dimension.

    Chosen by measurement (benchmarks/quality.py, four data sets, three seeds): against
    TensorFlow's and EasyRec's default, stddev 1/sqrt(embedding_dim) (0.25 at dimension 16),
    it gained 0.02-0.04 AUC after one pass of the Taobao-layout sets and 0.004 on UCI Adult;
    a hashed id seen a handful of times keeps most of its initial vector, which at 0.25 is
    noise the model must learn around. uniform(-0.05, 0.05) (Keras) and normal(1e-4)
    (FuxiCTR, DeepCTR) were close behind.
    """
    del embedding_dim  # the same scale for every dimension
    return keras.initializers.TruncatedNormal(stddev=DEFAULT_STDDEV)


class _ConstantFill(keras.initializers.Initializer):
    """TensorFlow 1's constant_initializer with a list (EasyRec's ConstantInitializer): the
    values fill the tensor in row-major order, the last value fills the rest."""

    def __init__(self, values):
        self.values = [float(v) for v in values]

    def __call__(self, shape, dtype=None):
        size = math.prod(shape)
        if not self.values:
            return tf.zeros(shape, dtype or "float32")
        if len(self.values) > size:
            raise ValueError(f"constant_initializer: {len(self.values)} values for a table of "
                             f"{size} entries {tuple(shape)}")
        flat = self.values + [self.values[-1]] * (size - len(self.values))
        return tf.reshape(tf.constant(flat, dtype or "float32"), shape)

    def get_config(self):
        return {"values": self.values}


def embedding_initializer(spec: FeatureSpec) -> keras.initializers.Initializer:
    """The Keras initializer of the feature's table: its `initializer` message, else the
    default (`default_initializer`)."""
    init = spec.initializer
    if init is None:
        return default_initializer(spec.embedding_dim)
    which = init.WhichOneof("initializer_oneof")
    if which == "truncated_normal_initializer":
        c = init.truncated_normal_initializer
        return keras.initializers.TruncatedNormal(mean=c.mean, stddev=c.stddev)
    if which == "random_normal_initializer":
        c = init.random_normal_initializer
        return keras.initializers.RandomNormal(mean=c.mean, stddev=c.stddev)
    if which == "glorot_normal_initializer":
        return keras.initializers.GlorotNormal()
    return _ConstantFill(init.constant_initializer.consts)


def _lookup_padded(table, ids: tf.Tensor) -> tf.RaggedTensor:
    """Rows of `table` for a (batch, len) id matrix padded at the end with PAD_ID (< 0).

    Only the real ids are gathered, so padding adds no row to the table's gradient (a
    padded position looking up row 0 would make the row-wise optimizer touch row 0).
    """
    ragged = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)
    return ragged.with_flat_values(tf.gather(table, ragged.flat_values))


def _pool(rows: tf.RaggedTensor, combiner: str) -> tf.Tensor:
    """Sum or mean over each row's values; zeros for a row without values."""
    pooled = tf.reduce_sum(rows, axis=1)
    if combiner == "mean":
        count = tf.cast(rows.row_lengths(), pooled.dtype)[:, None]
        pooled = pooled / tf.maximum(count, 1.0)
    return pooled


class FeatureGroups(keras.layers.Layer):
    """Embeds the features and assembles the configured feature groups.

    Call with the dict produced by `Preprocessor`. Returns a dict with
      "groups":  group name -> (batch, sum of feature widths) float32, the concatenation;
                 a sequence group (one SequenceFeature) -> (batch, length, dim), zeros at
                 padded positions; a WIDE group -> (batch, num_features), each feature's
                 1-dimensional weight (w * x for raw features): their sum is the linear part
      "lists":   group name -> list of (batch, width) tensors, one per feature
      "raw":     group name -> (batch, num_features): the un-embedded bucket ids (int64)
                 or numbers (float32 when the group has raw features)
      "embedding_l2": mean over the batch of the squared norm of the looked-up embeddings
    """

    def __init__(self, specs: dict[str, FeatureSpec], groups: dict[str, list[str]],
                 wide_groups=(), **kwargs):
        super().__init__(**kwargs)
        self.specs = specs
        self.group_features = groups
        self.wide_groups = set(wide_groups)
        wide_features = {f for g in self.wide_groups for f in groups[g]}
        deep_features = {f for g, names in groups.items() if g not in self.wide_groups
                         for f in names}
        self.tables = {}
        self.wide_tables = {}
        for spec in specs.values():
            if spec.name in wide_features and spec.kind != "raw" and \
                    spec.table not in self.wide_tables:
                self.wide_tables[spec.table] = self.add_weight(
                    shape=(spec.num_ids, 1), initializer="zeros", name=f"wide_{spec.table}")
            if spec.name not in deep_features:
                continue
            if spec.uses_table and spec.kind != "raw" and spec.table not in self.tables:
                self.tables[spec.table] = self.add_weight(
                    shape=(spec.num_ids, spec.embedding_dim),
                    initializer=embedding_initializer(spec),
                    name=f"embedding_{spec.table}",
                )
        self.projections = {
            spec.name: keras.layers.Dense(
                spec.embedding_dim, name=f"projection_{spec.name}",
                kernel_initializer=("glorot_uniform" if spec.initializer is None
                                    else embedding_initializer(spec)))
            for spec in specs.values()
            if spec.kind == "raw" and spec.embedding_dim > 0 and spec.name in deep_features
        }
        self.wide_raw = {
            spec.name: keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                          name=f"wide_{spec.name}")
            for spec in specs.values() if spec.kind == "raw" and spec.name in wide_features
        }

    @property
    def table_variables(self) -> list:
        """Embedding tables (deep and wide): updated row-wise by the table optimizer."""
        return list(self.tables.values()) + list(self.wide_tables.values())

    def group_dims(self) -> dict[str, int | str]:
        """The last dimension of each group's tensor ("length, dim" for a sequence group)."""
        dims: dict[str, int | str] = {}
        for g, names in self.group_features.items():
            if g in self.wide_groups:
                dims[g] = len(names)
            elif self.specs[names[0]].kind == "seq":
                dims[g] = f"length, {self.specs[names[0]].embedding_dim}"
            else:
                dims[g] = sum(self.specs[f].output_dim for f in names)
        return dims

    def _embed(self, spec: FeatureSpec, value: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Returns the feature's tensor (batch, width) and its looked-up rows for the L2 term."""
        if spec.kind in ("id", "bucketized"):
            emb = tf.gather(self.tables[spec.table], value)
            return emb, emb
        if spec.kind in ("tag", "seq"):
            rows = _lookup_padded(self.tables[spec.table], value)  # ragged (batch, (len), dim)
            if spec.kind == "seq":
                # the longest row has no padding, so this keeps the id matrix's length
                return rows.to_tensor(), rows.flat_values
            return _pool(rows, spec.combiner), rows.flat_values
        if spec.name in self.projections:
            return self.projections[spec.name](value), None
        return value, None

    def _wide(self, spec: FeatureSpec, value: tf.Tensor) -> tf.Tensor:
        """The feature's 1-dimensional linear weight, (batch, 1)."""
        if spec.kind == "raw":
            return self.wide_raw[spec.name](value)
        table = self.wide_tables[spec.table]
        if spec.kind in ("id", "bucketized"):
            return tf.gather(table, value)
        return _pool(_lookup_padded(table, value), spec.combiner)

    def call(self, features: dict[str, tf.Tensor], groups=None) -> dict:
        """`groups`: only these groups (e.g. for exporting one tower); default all."""
        selected = {g: n for g, n in self.group_features.items() if groups is None or g in groups}
        embedded, l2 = {}, []
        deep = {f for g, names in selected.items() if g not in self.wide_groups for f in names}
        for name in sorted(deep):
            spec = self.specs[name]
            embedded[name], rows = self._embed(spec, features[name])
            if rows is not None:
                l2.append(tf.reduce_sum(tf.square(rows)))
        batch = tf.cast(tf.shape(next(iter(features.values())))[0], tf.float32)
        out = {"groups": {}, "lists": {}, "raw": {}}
        for group, names in selected.items():
            if group in self.wide_groups:
                tensors = [self._wide(self.specs[n], features[n]) for n in names]
            else:
                tensors = [embedded[n] for n in names]
            out["lists"][group] = tensors
            out["groups"][group] = tensors[0] if len(tensors) == 1 else tf.concat(tensors, -1)
            out["raw"][group] = self._raw(names, features)
        out["embedding_l2"] = tf.add_n(l2) / batch if l2 else tf.constant(0.0)
        return out

    def _raw(self, names: list[str], features: dict[str, tf.Tensor]) -> tf.Tensor | None:
        specs = [self.specs[n] for n in names]
        if len(specs) == 1 and specs[0].kind == "seq":
            return features[specs[0].name]  # (batch, length) ids, PAD_ID at padding
        if any(s.kind in ("tag", "seq") for s in specs):
            return None  # multi-valued: no fixed-width raw form
        cols = []
        for s in specs:
            v = features[s.name]
            cols.append(v if s.kind == "raw" else tf.reshape(v, [-1, 1]))
        if any(s.kind == "raw" for s in specs):
            cols = [tf.cast(c, tf.float32) for c in cols]
        return cols[0] if len(cols) == 1 else tf.concat(cols, -1)
