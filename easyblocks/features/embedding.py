"""Feature ids/values -> one tensor per feature group."""

from __future__ import annotations

import contextlib
import contextvars
import math

import keras
import numpy as np
import tensorflow as tf

from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.normalization import BatchNorm
from easyblocks.blocks.sequence import TextCNN
from easyblocks.config.specs import (
    FeatureGroupSpec,
    FeatureSpec,
    SeqAttSpec,
    VariationalDropoutSpec,
)
from easyblocks.features.preprocess import LENGTH_SUFFIX, PAD_ID, WEIGHT_SUFFIX

# EasyRec's score of a padded position before the softmax (exp of it underflows to 0)
_PADDING_SCORE = -(2.0**32) + 1

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

    def __call__(self, shape, dtype=None, row_offset: int | None = None):
        """The table's values, or with row_offset those of the rows of a shard that starts at
        that row (a table sharded on parameter servers is initialised shard by shard: each
        shard goes on with the fill where the previous one stopped; the number of values
        was checked against the whole table with the config)."""
        shape = tuple(int(d) for d in shape)
        size = math.prod(shape)
        if not self.values:
            return tf.zeros(shape, dtype or "float32")
        start = (row_offset or 0) * math.prod(shape[1:])
        if row_offset is None and len(self.values) > size:
            raise ValueError(f"constant_initializer: {len(self.values)} values for a table of "
                             f"{size} entries {shape}")
        head = self.values[start:start + size]
        flat = head + [self.values[-1]] * (size - len(head))
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


# (name, shape, initial rows function) while FeatureGroups creates a table
_CREATING_TABLE = contextvars.ContextVar("easyblocks_creating_table", default=None)


def creating_table() -> bool:
    """True while FeatureGroups creates an embedding table: a distribution strategy's
    variable partitioner shards these and nothing else."""
    return _CREATING_TABLE.get() is not None


def table_initializer():
    """While FeatureGroups creates a table: (its variable name, its shape, rows) where
    rows(shape, dtype, row_offset) gives initial values for the rows of a shard starting at
    row_offset, so that each shard of a sharded table is initialised where it lives (Keras
    would compute the whole table first). None otherwise."""
    return _CREATING_TABLE.get()


@contextlib.contextmanager
def _table_creation(name: str = "", shape: tuple = (), initializer=None):
    def rows(shape, dtype, row_offset: int):
        init = keras.initializers.get(initializer)
        if isinstance(init, _ConstantFill):  # a fill in row-major order goes on at the shard
            return init(shape, dtype=dtype, row_offset=row_offset)
        if row_offset and isinstance(getattr(init, "seed", None), int):
            # another seed per shard: a seeded draw of the same shape repeats itself
            init = type(init).from_config({**init.get_config(), "seed": init.seed + row_offset})
        return init(shape, dtype=dtype)

    token = _CREATING_TABLE.set((name, tuple(shape), rows))
    try:
        yield
    finally:
        _CREATING_TABLE.reset(token)


def table_shards(table) -> list | None:
    """The shards of a table sharded across parameter servers (a Keras variable whose
    value is a ShardedVariable), else None."""
    value = table.value if isinstance(table, keras.Variable) else table
    if isinstance(value, tf.__internal__.distribute.ShardedVariable):
        return list(value.variables)
    return None


def gather_rows(table, ids: tf.Tensor) -> tf.Tensor:
    """Rows `ids` of a table, read from the variable itself (a sharded table shard by
    shard): `tf.gather` on the Keras variable reads the whole table into a tensor first,
    which the same step's row-wise update then copies whole (measured: 87 ms a step for
    10^7 x 16 floats, against 12 ms for 10^6)."""
    value = table.value if isinstance(table, keras.Variable) else table
    if isinstance(value, tf.__internal__.distribute.ShardedVariable):
        # its shards as a list ("div" partitioning, as ParameterServerStrategy shards): run
        # eagerly (the model's first call, the chief's evaluation), the ShardedVariable
        # itself is read whole first (measured: 400 ms and +1.5 GB on the chief for
        # 10^7 x 16 floats in 4 shards, against 2 ms)
        return tf.nn.embedding_lookup(list(value.variables), ids)
    if isinstance(value, tf.Variable):
        return tf.nn.embedding_lookup(value, ids)
    return tf.gather(table, ids)


def _lookup_padded(table, ids: tf.Tensor) -> tf.RaggedTensor:
    """Rows of `table` for a (batch, len) id matrix padded at the end with PAD_ID (< 0).

    Only the real ids are gathered, so padding adds no row to the table's gradient (a
    padded position looking up row 0 would make the row-wise optimizer touch row 0).
    """
    ragged = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)
    return ragged.with_flat_values(gather_rows(table, ragged.flat_values))


def _pool(rows: tf.RaggedTensor, combiner: str, weights: tf.Tensor | None = None) -> tf.Tensor:
    """Sum or mean over each row's values; zeros for a row without values.

    weights (batch, n), zero-padded (weighted tags): as TensorFlow's weighted embedding
    lookup, sum = sum_i w_i e_i and mean = sum_i w_i e_i / sum_i w_i.
    """
    if weights is None:
        pooled = tf.reduce_sum(rows, axis=1)
        if combiner == "mean":
            count = tf.cast(rows.row_lengths(), pooled.dtype)[:, None]
            pooled = pooled / tf.maximum(count, 1.0)
        return pooled
    w = tf.RaggedTensor.from_tensor(weights, lengths=rows.row_lengths())
    pooled = tf.reduce_sum(rows.with_flat_values(rows.flat_values * w.flat_values[:, None]),
                           axis=1)
    if combiner == "mean":
        total = tf.reduce_sum(w, axis=1)[:, None]
        pooled = tf.math.divide_no_nan(pooled, total)
    return pooled


def _masked_softmax(scores: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Softmax over the first `lengths` positions of scores (batch, L); as in EasyRec, the
    others get score -2^32 + 1 (a row without positions gets equal weights on its zero
    padding)."""
    mask = tf.sequence_mask(lengths, tf.shape(scores)[1])
    return tf.nn.softmax(tf.where(mask, scores, tf.fill(tf.shape(scores), _PADDING_SCORE)))


class AttentionCombiner(keras.layers.Layer):
    """EasyRec's `sequence_combiner { attention {} }`: a learned weighted mean of a sequence.

        a = softmax_t(w . e_t)   over the valid positions t,   out = sum_t a_t e_t

    with w (d,) a Dense(1) kernel without bias. Input (batch, L, d) and lengths (batch,);
    output (batch, d).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.score = keras.layers.Dense(1, use_bias=False, name="attention")

    def call(self, seq: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        weights = _masked_softmax(self.score(seq)[..., 0], lengths)
        return tf.einsum("bl,bld->bd", weights, seq)


class TargetAttention(keras.layers.Layer):
    """EasyRec's feature-group `sequence_features`: DIN's attention of a target (the key
    features) over a behaviour sequence (Zhou et al., KDD 2018, eq. 3, with EasyRec's
    softmax over the valid positions).

        q = key (transformed to the sequence width with allow_key_transform)
        s_t = DNN([q, h_t, q - h_t, q * h_t])       (last layer: 1 unit, linear, no BN)
        a = softmax_t(s_t),   out = [sum_t a_t h_t, sum_t a_t aux_t ..., q (need_key_feature)]

    allow_key_transform, when the widths differ: a key narrower than the sequence is
    zero-padded, unless transform_dnn (or a wider key): then a Dense maps the key and
    another the sequence to the sequence width.

    Call args: key (batch, d_k), hist (batch, L, d_s), lengths (batch,), auxes: list of
    (batch, L, d_a). Returns (batch, spec.output_dim).
    """

    def __init__(self, spec: SeqAttSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.dnn = MLP(name="seq_dnn", **spec.dnn)
        self.pad_key = spec.transforms_key and spec.seq_dim > spec.key_dim and \
            not spec.transform_dnn
        self.key_dense = self.seq_dense = None
        if spec.transforms_key and not self.pad_key:
            self.key_dense = keras.layers.Dense(spec.seq_dim, name="key_transform")
            self.seq_dense = keras.layers.Dense(spec.seq_dim, name="seq_transform")

    def call(self, key, hist, lengths, auxes=(), training=None):
        if self.pad_key:
            key = tf.pad(key, [[0, 0], [0, self.spec.seq_dim - self.spec.key_dim]])
        elif self.key_dense is not None:
            key, hist = self.key_dense(key), self.seq_dense(hist)
        q = tf.tile(key[:, None, :], [1, tf.shape(hist)[1], 1])
        scores = self.dnn(tf.concat([q, hist, q - hist, q * hist], axis=-1), training=training)
        weights = _masked_softmax(scores[..., 0], lengths)
        pooled = [tf.einsum("bl,bld->bd", weights, h) for h in [hist, *auxes]]
        if self.spec.need_key_feature:
            pooled.append(key)
        return tf.concat(pooled, axis=-1)


class InputLayerOptions(keras.layers.Layer):
    """EasyRec's input_layer options on a feature group's tensors (its EnhancedInputLayer).

    Call args: features (batch, d), the group's concatenation; feature_list, its per-feature
    tensors. Returns both, processed:
      feature_dropout_rate r (training only): each feature is kept with probability 1 - r
        (one draw per feature for the whole batch) and scaled by 1 / (1 - r); the
        concatenation is rebuilt from the list;
      otherwise do_batch_norm / do_layer_norm normalizes the concatenation (one layer);
      with a list output (per_feature), every feature is normalized by its own layer too;
      dropout_rate: dropout of the concatenation (without feature dropout) and, with a list
        output, of each feature.
    Layer norm is TF1's layer_norm on the last axis (epsilon 1e-12).
    """

    def __init__(self, norm: str = "", dropout_rate: float = 0.0,
                 feature_dropout_rate: float = 0.0, per_feature: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.norm, self.rate, self.feature_rate = norm, dropout_rate, feature_dropout_rate
        self.per_feature = per_feature
        self.concat_norm = self._norm_layer("norm")
        self.feature_norms = []  # created on the first call (one per feature)
        self.dropout = keras.layers.Dropout(dropout_rate) if 0.0 < dropout_rate < 1.0 \
            else None
        self.seed = keras.random.SeedGenerator()

    def _norm_layer(self, name: str):
        if self.norm == "batch":  # EasyRec's do_batch_norm, with debiased moving statistics
            return BatchNorm(momentum=0.99, epsilon=1e-3, name=name)
        if self.norm == "layer":
            return keras.layers.LayerNormalization(epsilon=1e-12, name=name)
        return None

    def build(self, features_shape, feature_list_shape=None):
        if self.norm and (self.per_feature or 0.0 < self.feature_rate < 1.0):
            self.feature_norms = [self._norm_layer(f"norm_{i}")
                                  for i in range(len(feature_list_shape or []))]

    def call(self, features, feature_list, training=None):
        feature_list = list(feature_list)
        drop_features = bool(training) and 0.0 < self.feature_rate < 1.0
        if drop_features:
            keep = 1.0 - self.feature_rate
            mask = tf.cast(keras.random.uniform((len(feature_list),), seed=self.seed) < keep,
                           features.dtype)
        elif self.concat_norm is not None:
            features = self.concat_norm(features, training=training)
        for i in range(len(feature_list)):
            fea = feature_list[i]
            if self.feature_norms:
                fea = self.feature_norms[i](fea, training=training)
            if self.dropout is not None and self.per_feature:
                fea = self.dropout(fea, training=training)
            if drop_features:
                fea = fea / keep * mask[i]
            feature_list[i] = fea
        if drop_features:
            features = tf.concat(feature_list, axis=-1)
        elif self.dropout is not None:
            features = self.dropout(features, training=training)
        return features, feature_list


# EasyRec's concrete dropout: numpy's float64 machine epsilon inside the logs, temperature 0.1
CONCRETE_EPSILON = float(np.finfo(float).eps)
CONCRETE_TEMPERATURE = 0.1


def concrete_keep(p: tf.Tensor, u: tf.Tensor,
                  temperature: float = CONCRETE_TEMPERATURE) -> tf.Tensor:
    """The relaxed Bernoulli "keep" value of concrete dropout (Gal et al., 2017), for dropout
    probability p and uniform noise u (EasyRec's concrete_dropout_neuron):

        1 - sigmoid((log(p + e) - log(1 - p + e) + log(u + e) - log(1 - u + e)) / temperature)

    close to 0 (dropped) with probability about p, else close to 1; differentiable in p.
    """
    e = CONCRETE_EPSILON
    z = (tf.math.log(p + e) - tf.math.log(1.0 - p + e)
         + tf.math.log(u + e) - tf.math.log(1.0 - u + e))
    return 1.0 - tf.sigmoid(z / temperature)


class VariationalDropout(keras.layers.Layer):
    """EasyRec's variational dropout on a feature group (its VariationalDropoutLayer; Chang
    et al., "Dropout Feature Ranking for Deep Learning Models", arXiv 1712.08645): each
    feature (each embedding dimension with embedding_wise) has a learned dropout probability
    p = sigmoid(logit_p), logit_p initialized glorot-uniform as in EasyRec.

    Call with the group's per-feature tensors [(batch, d_i)]; returns (the tensors, each
    multiplied by its keep value, and the regularization term):
      training:  keep = concrete_keep(p, u), u ~ U[0, 1) drawn per example and per entry of
                 logit_p (no 1 / (1 - p) rescaling, as in EasyRec);
      otherwise: keep = 1 - p (the expected keep value);
      term = regularization_lambda / batch_size * sum(1 - p)   (EasyRec's weighting),
    where batch_size is the step's: under synchronous replicas (tf.distribute), every
    replica's batch together, so that the replicas' mean term is that of one process
    training the global batch (batch_size in the config is per replica).
    """

    def __init__(self, regularization_lambda: float = 0.01, embedding_wise: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.regularization_lambda = regularization_lambda
        self.embedding_wise = embedding_wise
        self.widths: list[int] = []
        self.seed = keras.random.SeedGenerator()

    def build(self, input_shape):
        self.widths = [int(s[-1]) for s in input_shape]
        size = sum(self.widths) if self.embedding_wise else len(self.widths)
        self.logit_p = self.add_weight(shape=(size,), initializer="glorot_uniform",
                                       name="logit_p")

    def uniform_noise(self, shape) -> tf.Tensor:
        """U[0, 1) noise of `shape` (batch, size) (a test fixes it by overriding this)."""
        return keras.random.uniform(shape, seed=self.seed)

    def call(self, tensors, training=None):
        tensors = list(tensors)
        x = tensors[0] if len(tensors) == 1 else tf.concat(tensors, axis=-1)
        batch = tf.shape(x)[0]
        p = tf.sigmoid(self.logit_p)
        if training:
            shape = tf.stack([batch, tf.shape(p)[0]])
            keep = concrete_keep(p[None, :], self.uniform_noise(shape))
        else:
            keep = (1.0 - p)[None, :]
        if not self.embedding_wise:  # one value per feature, over its dimensions
            keep = tf.repeat(keep, self.widths, axis=1)
        noisy = tf.split(x * keep, self.widths, axis=-1)
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        term = self.regularization_lambda / tf.cast(batch * replicas, tf.float32) * \
            tf.reduce_sum(1.0 - p)
        return noisy, term


def _pad_to(seq: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """Zero-pads (batch, L, d) on the time axis to `length` >= L."""
    return tf.pad(seq, [[0, 0], [0, length - tf.shape(seq)[1]], [0, 0]])


class FeatureGroups(keras.layers.Layer):
    """Embeds the features and assembles the configured feature groups.

    Call with the dict produced by `Preprocessor`. Returns a dict with
      "groups":  group name -> (batch, sum of feature widths) float32, the concatenation
                 (features in config order, sequences pooled by their sequence_combiner
                 after them, then the outputs of the group's sequence_features, as in
                 EasyRec); a sequence group (one SequenceFeature without combiner) ->
                 (batch, length, dim), zeros at padded positions; a WIDE group ->
                 (batch, num_features * wide_dim), each feature's wide_dim-dimensional
                 weight (w * x for raw features): their sum is the linear part
      "lists":   group name -> list of (batch, width) tensors, in that order
      "raw":     group name -> (batch, num_features): the un-embedded bucket ids (int64)
                 or numbers (float32 when the group has raw features)
      "embedding_l2": mean over the batch of the squared norm of the looked-up embeddings
      "variational_dropout" (with `variational_dropout`): the sum of the groups' variational
                 dropout terms; each group's features (not the outputs of its
                 sequence_features, as in EasyRec) are then multiplied by their keep values
                 in "groups" and "lists"
    """

    def __init__(self, specs: dict[str, FeatureSpec], groups: dict[str, FeatureGroupSpec],
                 variational_dropout: VariationalDropoutSpec | None = None, **kwargs):
        super().__init__(**kwargs)
        self.specs = specs
        # EasyRec's model_config.variational_dropout: one layer per group
        self.dropouts = {} if variational_dropout is None else {
            g.name: VariationalDropout(variational_dropout.regularization_lambda,
                                       variational_dropout.embedding_wise,
                                       name=f"variational_dropout_{g.name}")
            for g in groups.values() if not g.sequences}
        self.group_features = {g.name: list(g.features) for g in groups.values()}
        self.group_seq_att = {g.name: list(g.seq_att) for g in groups.values()}
        self.wide_groups = {g.name for g in groups.values() if g.wide}
        # EasyRec's wide_output_dim: one width for every WIDE group of the model
        self.wide_dim = max([g.wide_dim for g in groups.values() if g.wide], default=1)
        wide_features = {f for g in self.wide_groups for f in self.group_features[g]}
        deep_features = {f for g in groups.values() if g.name not in self.wide_groups
                         for f in g.all_features}
        self.tables = {}
        self.wide_tables = {}
        for spec in specs.values():
            if spec.name in wide_features and spec.kind != "raw" and \
                    spec.table not in self.wide_tables:
                with _table_creation(f"wide_{spec.table}", (spec.num_ids, self.wide_dim),
                                     "zeros"):
                    self.wide_tables[spec.table] = self.add_weight(
                        shape=(spec.num_ids, self.wide_dim), initializer="zeros",
                        name=f"wide_{spec.table}")
            if spec.name not in deep_features:
                continue
            if spec.uses_table and spec.kind not in ("raw", "seq_raw") and \
                    spec.table not in self.tables:
                initializer = embedding_initializer(spec)
                with _table_creation(f"embedding_{spec.table}",
                                     (spec.num_ids, spec.embedding_dim), initializer):
                    self.tables[spec.table] = self.add_weight(
                        shape=(spec.num_ids, spec.embedding_dim), initializer=initializer,
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
        # EasyRec's numeric sequence with embedding_dim: each value times one embedding row
        # (no bias)
        self.seq_projections = {
            spec.name: self.add_weight(
                shape=(spec.raw_dim, spec.embedding_dim),
                initializer=embedding_initializer(spec),
                name=f"projection_{spec.name}")
            for spec in specs.values()
            if spec.kind == "seq_raw" and spec.embedding_dim > 0 and spec.name in deep_features
        }
        self.wide_raw = {
            spec.name: keras.layers.Dense(self.wide_dim, use_bias=False,
                                          kernel_initializer="zeros", name=f"wide_{spec.name}")
            for spec in specs.values() if spec.kind == "raw" and spec.name in wide_features
        }
        self.combiners = {}
        for spec in specs.values():
            if spec.seq_combiner is None or spec.name not in deep_features:
                continue
            c = spec.seq_combiner
            if c["kind"] == "attention":
                self.combiners[spec.name] = AttentionCombiner(name=f"attention_{spec.name}")
            else:
                self.combiners[spec.name] = TextCNN(
                    c["filter_sizes"], c["num_filters"], c["pad_sequence_length"],
                    c["activation"], name=f"text_cnn_{spec.name}")
        self.target_attention = {
            (g, s.name): TargetAttention(s, name=f"seq_att_{g}_{s.name}")
            for g, atts in self.group_seq_att.items() for s in atts}

    @property
    def table_variables(self) -> list:
        """Embedding tables (deep and wide): updated row-wise by the table optimizer."""
        return list(self.tables.values()) + list(self.wide_tables.values())

    def group_dims(self) -> dict[str, int | str]:
        """The last dimension of each group's tensor ("length, dim" for a sequence group)."""
        dims: dict[str, int | str] = {}
        for g, names in self.group_features.items():
            if g in self.wide_groups:
                dims[g] = len(names) * self.wide_dim
            elif any(self.specs[f].is_sequence for f in names):
                seq = sum(self.specs[f].item_dim for f in names if self.specs[f].is_sequence)
                dims[g] = f"length, {seq}"
            else:
                dims[g] = sum(self.specs[f].output_dim for f in names) + sum(
                    s.output_dim for s in self.group_seq_att[g])
        return dims

    def _sequence(self, spec: FeatureSpec, features: dict) -> tuple:
        """(sequence (batch, L, dim) zero-padded, lengths (batch,) int32, looked-up rows
        for the L2 term or None)."""
        value = features[spec.name]
        if spec.kind == "seq_raw":
            lengths = features[spec.name + LENGTH_SUFFIX]
            seq = value[..., None]
            if spec.name in self.seq_projections:
                seq = seq * self.seq_projections[spec.name][0]
            return seq, lengths, None
        if spec.seq_multi_sep:  # (batch, steps, values): each step pooled by the combiner
            nested = tf.RaggedTensor.from_tensor(value, padding=PAD_ID, ragged_rank=2)
            rows = nested.values.with_flat_values(
                tf.gather(self.tables[spec.table], nested.flat_values))  # (steps, (k), dim)
            steps = tf.RaggedTensor.from_row_splits(_pool(rows, spec.combiner),
                                                    nested.row_splits)
            lengths = features[spec.name + LENGTH_SUFFIX]
            return steps.to_tensor(), lengths, rows.flat_values
        rows = _lookup_padded(self.tables[spec.table], value)  # ragged (batch, (len), dim)
        # the longest row has no padding, so this keeps the id matrix's length
        return rows.to_tensor(), tf.cast(rows.row_lengths(), tf.int32), rows.flat_values

    def _embed(self, spec: FeatureSpec, features: dict, training=None) -> tuple:
        """Returns the feature's tensor ((batch, width), or (batch, L, dim) for a sequence
        without combiner) and its looked-up rows for the L2 term (or None)."""
        value = features[spec.name]
        if spec.kind in ("id", "bucketized"):
            emb = gather_rows(self.tables[spec.table], value)
            return emb, emb
        if spec.kind in ("seq", "seq_raw"):
            seq, lengths, rows = self._sequence(spec, features)
            if spec.seq_combiner is None:
                return seq, rows
            combiner = self.combiners[spec.name]
            if spec.seq_combiner["kind"] == "attention":
                return combiner(seq, lengths), rows
            return combiner([seq, lengths], training=training), rows
        if spec.kind == "tag":
            rows = _lookup_padded(self.tables[spec.table], value)
            return _pool(rows, spec.combiner, features.get(spec.name + WEIGHT_SUFFIX)), \
                rows.flat_values
        if spec.name in self.projections:
            return self.projections[spec.name](value), None
        return value, None

    def _wide(self, spec: FeatureSpec, features: dict) -> tf.Tensor:
        """The feature's linear weight, (batch, wide_dim); a multi-valued feature's weights
        are summed (EasyRec's wide columns: combiner 'sum', whatever the feature's)."""
        value = features[spec.name]
        if spec.kind == "raw":
            return self.wide_raw[spec.name](value)
        table = self.wide_tables[spec.table]
        if spec.kind in ("id", "bucketized"):
            return gather_rows(table, value)
        return _pool(_lookup_padded(table, value), "sum",
                     features.get(spec.name + WEIGHT_SUFFIX))

    def _seq_att(self, group: str, spec: SeqAttSpec, features: dict, embedded: dict,
                 training=None) -> tf.Tensor:
        key = tf.concat([embedded[k] for k in spec.keys], axis=-1)
        names = spec.hist_seqs + spec.aux_hist_seqs
        seqs = [self._sequence(self.specs[h], features) for h in names]
        length = tf.reduce_max(tf.stack([tf.shape(s)[1] for s, _, _ in seqs]))
        lengths = seqs[0][1]
        checks = [tf.debugging.assert_equal(
            lengths, other, message=f"feature group {group!r}: sequence_features "
            f"{spec.name!r}: {names[0]!r} and {name!r} have different lengths in a row")
            for name, (_, other, _) in zip(names[1:], seqs[1:])]
        with tf.control_dependencies(checks):
            padded = [_pad_to(s, length) for s, _, _ in seqs]
        n = len(spec.hist_seqs)
        hist = tf.concat(padded[:n], axis=-1)
        return self.target_attention[(group, spec.name)](key, hist, lengths, padded[n:],
                                                        training=training)

    def call(self, features: dict[str, tf.Tensor], groups=None, training=None) -> dict:
        """`groups`: only these groups (e.g. for exporting one tower); default all."""
        selected = {g: n for g, n in self.group_features.items() if groups is None or g in groups}
        embedded, l2 = {}, []
        deep = set()
        for g, names in selected.items():
            if g not in self.wide_groups:
                deep |= set(names)
                deep |= {f for s in self.group_seq_att[g] for f in s.keys}
        for name in sorted(deep):
            spec = self.specs[name]
            embedded[name], rows = self._embed(spec, features, training)
            if rows is not None:
                l2.append(tf.reduce_sum(tf.square(rows)))
        # the L2 term of sequences only sequence_features read (once per feature)
        attended = {h for g in selected for s in self.group_seq_att[g]
                    for h in s.hist_seqs + s.aux_hist_seqs} - set(embedded)
        for h in sorted(attended):
            rows = self._sequence(self.specs[h], features)[2]
            if rows is not None:
                l2.append(tf.reduce_sum(tf.square(rows)))
        batch = tf.cast(tf.shape(next(iter(features.values())))[0], tf.float32)
        out = {"groups": {}, "lists": {}, "raw": {}, "seq_and_normal": {}}
        dropout_terms = []
        for group, names in selected.items():
            sequences = [n for n in names if self.specs[n].is_sequence]
            if sequences:
                out["seq_and_normal"][group] = self._seq_and_normal(names, sequences,
                                                                    features, embedded)
            if sequences and len(names) > 1 or len(sequences) > 1:
                # no single tensor (the config allows only output_seq_and_normal_feature)
                out["groups"][group] = None
                out["lists"][group] = [embedded[n] for n in names if n not in sequences]
                out["raw"][group] = None
                continue
            if group in self.wide_groups:
                tensors = [self._wide(self.specs[n], features) for n in names]
            else:
                pooled = [n for n in names if self.specs[n].seq_combiner is not None]
                tensors = [embedded[n] for n in names if n not in pooled] + \
                    [embedded[n] for n in pooled]
            if group in self.dropouts and tensors:
                tensors, term = self.dropouts[group](tensors, training=training)
                dropout_terms.append(term)
            if group not in self.wide_groups:
                tensors += [self._seq_att(group, s, features, embedded, training)
                            for s in self.group_seq_att[group]]
            out["lists"][group] = tensors
            out["groups"][group] = tensors[0] if len(tensors) == 1 else tf.concat(tensors, -1)
            out["raw"][group] = self._raw(group, names, features)
        out["embedding_l2"] = tf.add_n(l2) / batch if l2 else tf.constant(0.0)
        if dropout_terms:
            out["variational_dropout"] = tf.add_n(dropout_terms)
        return out

    def _seq_and_normal(self, names: list[str], sequences: list[str], features: dict,
                        embedded: dict) -> list:
        """EasyRec's output_seq_and_normal_feature: [the sequences concatenated on the last
        axis (batch, L, d) (zero-padded to the longest), the first one's lengths (batch,),
        the other features concatenated (batch, d') or None]."""
        seqs = [self._sequence(self.specs[n], features) for n in sequences]
        length = tf.reduce_max(tf.stack([tf.shape(s)[1] for s, _, _ in seqs]))
        seq = tf.concat([_pad_to(s, length) for s, _, _ in seqs], axis=-1)
        others = [embedded[n] for n in names if n not in sequences]
        target = None if not others else others[0] if len(others) == 1 else \
            tf.concat(others, axis=-1)
        return [seq, seqs[0][1], target]

    def _raw(self, group: str, names: list[str],
             features: dict[str, tf.Tensor]) -> tf.Tensor | None:
        specs = [self.specs[n] for n in names]
        if len(specs) == 1 and specs[0].is_sequence and specs[0].kind == "seq" and \
                not specs[0].seq_multi_sep:
            return features[specs[0].name]  # (batch, length) ids, PAD_ID at padding
        if self.group_seq_att[group] or any(s.kind in ("tag", "seq", "seq_raw")
                                            for s in specs):
            return None  # multi-valued: no fixed-width raw form
        cols = []
        for s in specs:
            v = features[s.name]
            cols.append(v if s.kind == "raw" else tf.reshape(v, [-1, 1]))
        if any(s.kind == "raw" for s in specs):
            cols = [tf.cast(c, tf.float32) for c in cols]
        return cols[0] if len(cols) == 1 else tf.concat(cols, -1)
