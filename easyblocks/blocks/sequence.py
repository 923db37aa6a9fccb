"""Blocks over a behaviour / token sequence: BST, SeqAugment and TextCNN.

They take the sequence in either form:
- a (batch, L, d) tensor, e.g. a feature group holding one SequenceFeature, whose padded
  positions are all-zero rows: the valid items are the rows that are not all zero (a prefix);
- a list [sequence (batch, L, d), lengths (batch,) or (batch, 1)] (EasyRec's
  `input_layer { output_seq_and_normal_feature: true }` output); BST also takes a third item,
  the target item's embedding (batch, d_t).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

_SEQ_EXPECTED = (
    "a (batch, L, d) sequence (all-zero rows at padding) or a list [sequence (batch, L, d), "
    "lengths (batch,)]"
)


def split_sequence(inputs: Any, what: str, allow_target: bool = False
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None, bool]:
    """(sequence (batch, L, d), lengths (batch,) int32, target or None, lengths_given)."""
    expected = _SEQ_EXPECTED + (", optionally with a target (batch, d_t) third" if allow_target
                                else "")
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    limit = 3 if allow_target else 2
    if not 1 <= len(items) <= limit or (isinstance(inputs, (list, tuple)) and len(items) < 2):
        raise ConfigError(f"{what}: expected {expected}, received a list of {len(items)} inputs")
    seq = tf.convert_to_tensor(items[0])
    if seq.shape.rank != 3:
        raise ConfigError(f"{what}: expected {expected}, received a sequence of shape "
                          f"{tuple(seq.shape)}")
    seq = tf.cast(seq, tf.float32)
    target = None
    if len(items) == 1:
        # the valid items are the rows that are not all zero (the feature layer's padding)
        lengths = tf.reduce_sum(tf.cast(tf.reduce_any(tf.not_equal(seq, 0.0), axis=-1),
                                        tf.int32), axis=1)
        return seq, lengths, None, False
    lengths = tf.convert_to_tensor(items[1])
    if lengths.shape.rank == 2 and lengths.shape[-1] == 1:
        lengths = lengths[:, 0]
    if lengths.shape.rank != 1:
        raise ConfigError(f"{what}: expected {expected}, received lengths of shape "
                          f"{tuple(lengths.shape)}")
    lengths = tf.minimum(tf.cast(lengths, tf.int32), tf.shape(seq)[1])
    if len(items) == 3:
        target = tf.convert_to_tensor(items[2])
        if target.shape.rank == 3 and target.shape[1] == 1:
            target = target[:, 0]
        if target.shape.rank != 2:
            raise ConfigError(f"{what}: expected a target of shape (batch, d_t), received "
                              f"{tuple(target.shape)}")
        target = tf.cast(target, tf.float32)
    return seq, lengths, target, True


def _sequence_dims(input_shape: Any) -> tuple[int | None, int | None]:
    """(d of the sequence, d_t of the target or None) from the input shape(s)."""
    shapes = list(input_shape) if input_shape and isinstance(input_shape[0], (list, tuple)) \
        else [input_shape]
    if len(shapes[0]) != 3 or shapes[0][-1] is None:
        return None, None
    target = shapes[2] if len(shapes) == 3 else None
    return int(shapes[0][-1]), None if target is None or target[-1] is None else int(target[-1])


def pad_or_truncate(seq: tf.Tensor, lengths: tf.Tensor, length: int
                    ) -> tuple[tf.Tensor, tf.Tensor]:
    """The sequence cut or zero-padded to exactly `length` positions, and the lengths clipped."""
    seq = seq[:, :length]
    pad = tf.maximum(length - tf.shape(seq)[1], 0)
    seq = tf.pad(seq, [[0, 0], [0, pad], [0, 0]])
    seq = tf.ensure_shape(seq, [None, length, seq.shape[-1]])
    return seq, tf.minimum(lengths, length)


TARGET_POSITIONS = ("head", "tail", "ignore")


def _activation(name: str, what: str):
    # BERT's (and EasyRec's) gelu is the tanh approximation
    if name in ("gelu", "tf.nn.gelu"):
        return lambda x: keras.activations.gelu(x, approximate=True)
    try:
        return get_activation(name)
    except ConfigError as e:
        raise ConfigError(f"{what}: {e}") from None


class _EncoderLayer(keras.layers.Layer):
    """One post-LN Transformer encoder layer (BERT's): self-attention, Add & LayerNorm,
    feed-forward, Add & LayerNorm."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, activation,
                 hidden_dropout: float, attention_dropout: float, initializer, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads

        def dense(units, name, act=None):
            return keras.layers.Dense(units, activation=act, kernel_initializer=initializer,
                                      name=name)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_ln = keras.layers.LayerNormalization(epsilon=1e-12, name="attention_ln")
        self.intermediate = dense(intermediate_size, "intermediate", activation)
        self.output_dense = dense(hidden_size, "output")
        self.output_ln = keras.layers.LayerNormalization(epsilon=1e-12, name="output_ln")
        self.attention_dropout = keras.layers.Dropout(attention_dropout)
        self.hidden_dropout = keras.layers.Dropout(hidden_dropout)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size

    def build(self, input_shape):
        h = self.hidden_size
        for layer in (self.query, self.key, self.value, self.attention_output):
            layer.build((None, None, h))
        self.attention_ln.build((None, None, h))
        self.intermediate.build((None, None, h))
        self.output_dense.build((None, None, self.intermediate_size))
        self.output_ln.build((None, None, h))

    def _heads(self, x: tf.Tensor) -> tf.Tensor:
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, length, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])  # (batch, heads, T, head_size)

    def call(self, x, key_mask, training=None):
        """x (batch, T, h); key_mask (batch, T) float, 1 for the positions one may attend to."""
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = tf.matmul(q, k, transpose_b=True) / float(np.sqrt(self.head_size))
        scores += (1.0 - key_mask[:, None, None, :]) * -10000.0  # BERT's additive mask
        probs = self.attention_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        context = tf.reshape(context, tf.shape(x))
        attended = self.hidden_dropout(self.attention_output(context), training=training)
        attended = self.attention_ln(attended + x)
        out = self.hidden_dropout(self.output_dense(self.intermediate(attended)),
                                  training=training)
        return self.output_ln(out + attended)


@register_block("BST", params="bst")
class BST(keras.layers.Layer):
    """Behavior Sequence Transformer (Chen et al., DLP-KDD 2019, "Behavior Sequence Transformer
    for E-commerce Recommendation in Alibaba"), as EasyRec's BST block builds it.

    1. Items (and the target) are projected to `hidden_size` by a Dense + ReLU when their width
       differs from it.
    2. The target item, if given and `target_item_position` is "head" or "tail", becomes a token
       of the sequence: the first token ("head"), or the token right after the last valid item
       ("tail"). "ignore" leaves it out.
    3. Learned position embeddings (a table of `max_position_embeddings` + 1 rows when a
       target is inserted or `reserve_target_position`) are added, then LayerNorm and dropout.
    4. `num_hidden_layers` post-LN Transformer encoder layers (BERT's: multi-head
       self-attention over the valid tokens only, residual + LayerNorm, a feed-forward layer of
       `intermediate_size` with `hidden_act`, residual + LayerNorm). Every weight matrix is
       initialised with a truncated normal of stddev `initializer_range`.
    5. Output: with `output_all_token_embeddings` all token outputs, flattened (the sequence
       is first cut or zero-padded to `max_position_embeddings` items, so the width is fixed;
       the padded tokens' outputs are zeroed); otherwise one token: the target's, or without
       a target the first item's ("head") or the last valid item's ("tail").

    Sequences longer than `max_position_embeddings` keep their first max_position_embeddings
    items (EasyRec fails on them; set the feature's `max_seq_len` to avoid the cut).

    Differences from EasyRec, which are fixes: the target token is always attended to
    (EasyRec's mask leaves it out, or fails, when the target is inserted without
    `output_all_token_embeddings`); "tail" puts the target right after the valid items, so
    its position embedding does not depend on how long the other sequences in the batch are;
    `use_position_embeddings: false` is honoured.

    Args:
      hidden_size: width h of the tokens (a multiple of num_attention_heads).
      num_hidden_layers, num_attention_heads, intermediate_size: the encoder's shape.
      hidden_act: the feed-forward activation ("gelu" is the tanh approximation, as in BERT).
      hidden_dropout_prob, attention_probs_dropout_prob: dropout rates (training only).
      max_position_embeddings: the longest sequence.
      use_position_embeddings: add the position embeddings.
      initializer_range: stddev of the weights' truncated normal initialisation.
      output_all_token_embeddings: output every token (see 5).
      target_item_position: "head", "tail" or "ignore".
      reserve_target_position: one more row in the position table even without a target.

    Call args:
      inputs: see the module docstring; a third list item is the target (batch, d_t).

    Returns:
      (batch, h), or with output_all_token_embeddings (batch, T h), T =
      max_position_embeddings (+ 1 with an inserted target).
    """

    def __init__(
        self,
        hidden_size: int,
        num_hidden_layers: int,
        num_attention_heads: int,
        intermediate_size: int,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        use_position_embeddings: bool = True,
        initializer_range: float = 0.02,
        output_all_token_embeddings: bool = True,
        target_item_position: str = "head",
        reserve_target_position: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"BST {self.name!r}"
        for key, value in (("hidden_size", hidden_size), ("num_hidden_layers", num_hidden_layers),
                           ("num_attention_heads", num_attention_heads),
                           ("intermediate_size", intermediate_size),
                           ("max_position_embeddings", max_position_embeddings)):
            if value is None or int(value) <= 0:
                raise ConfigError(f"{what}: expected `{key}` to be a positive integer, received: "
                                  f"{key}={value}")
        if hidden_size % num_attention_heads:
            raise ConfigError(f"{what}: hidden_size {hidden_size} is not a multiple of "
                              f"num_attention_heads {num_attention_heads}")
        if target_item_position not in TARGET_POSITIONS:
            raise ConfigError(f"{what}: expected `target_item_position` to be one of "
                              f"{', '.join(TARGET_POSITIONS)}, received: {target_item_position!r}")
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.intermediate_size = int(intermediate_size)
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = float(hidden_dropout_prob)
        self.attention_probs_dropout_prob = float(attention_probs_dropout_prob)
        self.max_position_embeddings = int(max_position_embeddings)
        self.use_position_embeddings = bool(use_position_embeddings)
        self.initializer_range = float(initializer_range)
        self.output_all_token_embeddings = bool(output_all_token_embeddings)
        self.target_item_position = target_item_position
        self.reserve_target_position = bool(reserve_target_position)
        act = _activation(hidden_act, what)
        self._initializer = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.encoder = [
            _EncoderLayer(self.hidden_size, self.num_attention_heads, self.intermediate_size, act,
                          self.hidden_dropout_prob, self.attention_probs_dropout_prob,
                          self._initializer, name=f"layer_{i}")
            for i in range(self.num_hidden_layers)
        ]
        self.embedding_ln = keras.layers.LayerNormalization(epsilon=1e-12, name="embedding_ln")
        self.embedding_dropout = keras.layers.Dropout(self.hidden_dropout_prob)
        self.seq_project = None
        self.target_project = None
        self.with_target = False

    def _inserts_target(self) -> bool:
        return self.with_target and self.target_item_position != "ignore"

    def build(self, input_shape):
        d, dt = _sequence_dims(input_shape)
        if d is None:
            return  # call() reports the bad inputs as a ConfigError
        self.with_target = dt is not None
        h = self.hidden_size
        if d != h:
            self.seq_project = keras.layers.Dense(h, activation="relu", name="seq_project")
            self.seq_project.build((None, None, d))
        if self._inserts_target() and dt != h:
            self.target_project = keras.layers.Dense(h, activation="relu", name="target_project")
            self.target_project.build((None, dt))
        rows = self.max_position_embeddings + int(self._inserts_target()
                                                  or self.reserve_target_position)
        if self.use_position_embeddings:
            self.position_embeddings = self.add_weight(
                shape=(rows, h), initializer=self._initializer, name="position_embeddings")
        self.embedding_ln.build((None, None, h))
        for layer in self.encoder:
            layer.build((None, None, h))

    def call(self, inputs, training=None):
        what = f"BST {self.name!r}"
        seq, lengths, target, _ = split_sequence(inputs, what, allow_target=True)
        if not self.embedding_ln.built or (target is not None) != self.with_target:
            given = "with" if target is not None else "without"
            raise ConfigError(f"{what}: the layer was built for other inputs than a sequence of "
                              f"shape {tuple(seq.shape)} {given} a target")
        max_items = self.max_position_embeddings
        if self.output_all_token_embeddings:
            seq, lengths = pad_or_truncate(seq, lengths, max_items)
        else:
            seq, lengths = seq[:, :max_items], tf.minimum(lengths, max_items)
        if self.seq_project is not None:
            seq = self.seq_project(seq)
        length = tf.shape(seq)[1]
        valid = tf.sequence_mask(lengths, length, dtype=tf.float32)  # (batch, L)
        inserted = self._inserts_target()
        if inserted:
            if self.target_project is not None:
                target = self.target_project(target)
            if self.target_item_position == "head":
                seq = tf.concat([target[:, None, :], seq], axis=1)
                valid = tf.concat([tf.ones_like(valid[:, :1]), valid], axis=1)
                target_index = tf.zeros_like(lengths)
            else:  # tail: the token right after the valid items
                seq = tf.concat([seq, tf.zeros_like(seq[:, :1])], axis=1)
                at = tf.one_hot(lengths, length + 1, dtype=seq.dtype)  # (batch, L + 1)
                seq = seq * (1.0 - at[..., None]) + at[..., None] * target[:, None, :]
                valid = tf.sequence_mask(lengths + 1, length + 1, dtype=tf.float32)
                target_index = lengths
        x = seq
        if self.use_position_embeddings:
            x = x + self.position_embeddings[None, :tf.shape(x)[1], :]
        x = self.embedding_dropout(self.embedding_ln(x), training=training)
        for layer in self.encoder:
            x = layer(x, valid, training=training)
        if self.output_all_token_embeddings:
            tokens = max_items + int(inserted)
            x = x * valid[..., None]
            return tf.reshape(x, [-1, tokens * self.hidden_size])
        if inserted:
            index = target_index
        elif self.target_item_position == "tail":
            index = tf.maximum(lengths - 1, 0)
        else:
            index = tf.zeros_like(lengths)
        return tf.gather(x, index, axis=1, batch_dims=1)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        _, dt = _sequence_dims(input_shape)
        if not self.output_all_token_embeddings:
            return (shape[0], self.hidden_size)
        inserted = dt is not None and self.target_item_position != "ignore"
        return (shape[0], (self.max_position_embeddings + int(inserted)) * self.hidden_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            use_position_embeddings=self.use_position_embeddings,
            initializer_range=self.initializer_range,
            output_all_token_embeddings=self.output_all_token_embeddings,
            target_item_position=self.target_item_position,
            reserve_target_position=self.reserve_target_position,
        )
        return config


SEQ_AUG_METHODS = ("crop", "mask", "reorder")


@register_block("SeqAugment", params="seq_aug")
class SeqAugment(keras.layers.Layer):
    """CL4SRec's sequence augmentations (Xie et al., ICDE 2022, "Contrastive Learning for
    Sequential Recommendation", section 3.2), one per example, chosen uniformly at random among
    the enabled ones:

    - crop (crop_rate < 1): keep a random contiguous run of floor(n * crop_rate) of the n
      valid items, moved to the front; the new length is that count;
    - mask (mask_rate > 0): replace floor(n * mask_rate) random valid items by a trained
      mask embedding (shape (1, d)); the length is unchanged;
    - reorder (reorder_rate > 0): shuffle a random contiguous run of floor(n * reorder_rate)
      valid items; the length is unchanged.

    Positions after the (new) length are zeros. The augmentations are applied in training only
    (at inference the input passes through unchanged): they make the views of a contrastive
    loss, and a prediction should not depend on random draws. (EasyRec applies them in every
    mode.)

    Args:
      mask_rate, crop_rate, reorder_rate: see above.

    Call args:
      inputs: see the module docstring.

    Returns:
      [augmented sequence (batch, L, d), new lengths (batch,) int32] for a list input (as
      EasyRec), the augmented sequence alone for a (batch, L, d) input.
    """

    def __init__(self, mask_rate: float = 0.6, crop_rate: float = 0.2, reorder_rate: float = 0.6,
                 **kwargs):
        super().__init__(**kwargs)
        for key, value in (("mask_rate", mask_rate), ("crop_rate", crop_rate),
                           ("reorder_rate", reorder_rate)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SeqAugment {self.name!r}: expected `{key}` in [0, 1], "
                                  f"received: {key}={value}")
        self.mask_rate = float(mask_rate)
        self.crop_rate = float(crop_rate)
        self.reorder_rate = float(reorder_rate)
        self.methods = [m for m, on in zip(SEQ_AUG_METHODS, (self.crop_rate < 1.0,
                                                              self.mask_rate > 0.0,
                                                              self.reorder_rate > 0.0)) if on]
        self.mask_embedding = None

    def build(self, input_shape):
        d, _ = _sequence_dims(input_shape)
        if d is None:
            return  # call() reports the bad inputs as a ConfigError
        self.mask_embedding = self.add_weight(shape=(1, d), initializer="glorot_uniform",
                                              name="mask_embedding")

    @staticmethod
    def _count(lengths: tf.Tensor, rate: float) -> tf.Tensor:
        return tf.cast(tf.floor(tf.cast(lengths, tf.float32) * rate), tf.int32)

    @staticmethod
    def _start(lengths: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
        """A uniform start in [0, n - count) per example (0 when the run fills the sequence)."""
        u = tf.random.uniform(tf.shape(lengths))
        return tf.cast(tf.floor(u * tf.cast(tf.maximum(lengths - count, 0), tf.float32)),
                       tf.int32)

    def crop(self, seq, lengths, positions):
        """Keep floor(n * crop_rate) consecutive items from a random start, moved to the front."""
        count = self._count(lengths, self.crop_rate)
        start = self._start(lengths, count)
        index = tf.minimum(start[:, None] + positions, tf.shape(seq)[1] - 1)
        kept = tf.gather(seq, index, axis=1, batch_dims=1)
        keep = positions < count[:, None]
        return tf.where(keep[..., None], kept, tf.zeros_like(kept)), count

    def mask(self, seq, lengths, positions):
        """Replace floor(n * mask_rate) random valid items by the mask embedding."""
        count = self._count(lengths, self.mask_rate)
        valid = positions < lengths[:, None]
        draw = tf.where(valid, tf.random.uniform(tf.shape(positions)), 2.0)
        rank = tf.argsort(tf.argsort(draw, axis=1), axis=1)  # 0 = smallest draw
        masked = tf.logical_and(valid, rank < count[:, None])
        mask_row = tf.cast(self.mask_embedding, seq.dtype)[None]  # (1, 1, d)
        return tf.where(masked[..., None], mask_row + tf.zeros_like(seq), seq), lengths

    def reorder(self, seq, lengths, positions):
        """Shuffle floor(n * reorder_rate) consecutive items from a random start."""
        count = self._count(lengths, self.reorder_rate)
        start = self._start(lengths, count)
        inside = tf.logical_and(positions >= start[:, None],
                                positions < (start + count)[:, None])
        # sort keys: the position itself outside the run, a random point of [start,
        # start + count) inside it, so only the run's items change places
        key = tf.where(inside, tf.cast(start[:, None], tf.float32)
                       + tf.random.uniform(tf.shape(positions))
                       * tf.cast(count[:, None], tf.float32), tf.cast(positions, tf.float32))
        return tf.gather(seq, tf.argsort(key, axis=1, stable=True), axis=1, batch_dims=1), lengths

    def call(self, inputs, training=None):
        what = f"SeqAugment {self.name!r}"
        seq, lengths, _, lengths_given = split_sequence(inputs, what)
        if self.mask_embedding is None or self.mask_embedding.shape[-1] != seq.shape[-1]:
            raise ConfigError(f"{what}: the layer was built for another item width than "
                              f"{seq.shape[-1]}")
        if training and self.methods:
            positions = tf.broadcast_to(tf.range(tf.shape(seq)[1])[None],
                                        tf.shape(seq)[:2])  # (batch, L)
            results = [getattr(self, m)(seq, lengths, positions) for m in self.methods]
            choice = tf.random.uniform(tf.shape(lengths), maxval=len(self.methods),
                                       dtype=tf.int32)
            out_seq, out_len = results[0]
            for k, (s, n) in enumerate(results[1:], start=1):
                pick = tf.equal(choice, k)
                out_seq = tf.where(pick[:, None, None], s, out_seq)
                out_len = tf.where(pick, n, out_len)
            seq, lengths = out_seq, out_len
        return [seq, lengths] if lengths_given else seq

    def compute_output_shape(self, input_shape):
        if input_shape and isinstance(input_shape[0], (list, tuple)):
            return [tuple(input_shape[0]), (input_shape[0][0],)]
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(mask_rate=self.mask_rate, crop_rate=self.crop_rate,
                      reorder_rate=self.reorder_rate)
        return config


@register_block("TextCNN", params="text_cnn")
class TextCNN(keras.layers.Layer):
    """Kim's CNN for sentence classification (Kim, EMNLP 2014): 1-D convolutions of several
    widths over the sequence, each max-pooled over time, concatenated, then an optional MLP.

        c_k = max_t act(W_k * x_(t : t + s_k) + b_k)      (num_filters_k channels, width s_k)
        out = MLP(concat_k c_k)

    The sequence is first cut or zero-padded to `pad_sequence_length` positions (when > 0), so
    a prediction does not depend on the other sequences of its batch; with 0 it is only padded
    up to the widest filter. As in EasyRec (and the paper), padded positions take part in the
    convolutions and the max.

    Args:
      filter_sizes: the convolution widths s_k.
      num_filters: channels per width (one value per filter size).
      pad_sequence_length: fixed sequence length (0: the batch's).
      activation: of the convolutions ("relu").
      mlp: MLP's parameters (see `easyblocks.blocks.mlp.MLP`), or None.

    Call args:
      inputs: see the module docstring (the lengths are not used beyond the padding).

    Returns:
      (batch, mlp.hidden_units[-1]), or (batch, sum(num_filters)) without mlp.
    """

    def __init__(self, filter_sizes: Sequence[int], num_filters: Sequence[int],
                 pad_sequence_length: int = 0, activation: str = "relu",
                 mlp: dict[str, Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        what = f"TextCNN {self.name!r}"
        sizes = [int(s) for s in ([filter_sizes] if isinstance(filter_sizes, int)
                                  else filter_sizes or [])]
        filters = [int(f) for f in ([num_filters] if isinstance(num_filters, int)
                                    else num_filters or [])]
        if not sizes or len(sizes) != len(filters) or min(sizes + filters) <= 0:
            raise ConfigError(f"{what}: expected as many positive `num_filters` as positive "
                              f"`filter_sizes`, received: filter_sizes={sizes}, "
                              f"num_filters={filters}")
        pad = int(pad_sequence_length or 0)
        if 0 < pad < max(sizes):
            raise ConfigError(f"{what}: pad_sequence_length {pad} is shorter than the widest "
                              f"filter {max(sizes)}")
        self.filter_sizes = sizes
        self.num_filters = filters
        self.pad_sequence_length = pad
        self.activation = activation
        try:
            act = get_activation(activation)
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}") from None
        self.convs = [keras.layers.Conv1D(f, s, activation=act, name=f"conv_{s}_{i}")
                      for i, (s, f) in enumerate(zip(sizes, filters))]
        self.mlp_kwargs = None if mlp is None else dict(mlp)
        try:
            self.mlp = None if mlp is None else MLP(name="mlp", **self.mlp_kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{what}: bad `mlp` parameters: {e}") from None

    def build(self, input_shape):
        d, _ = _sequence_dims(input_shape)
        if d is None:
            return  # call() reports the bad inputs as a ConfigError
        for conv in self.convs:
            conv.build((None, None, d))
        if self.mlp is not None:
            # MLP has no build(): a symbolic call creates its weights, as Keras would
            self.mlp(keras.KerasTensor((None, sum(self.num_filters))))

    def call(self, inputs, training=None):
        seq, lengths, _, _ = split_sequence(inputs, f"TextCNN {self.name!r}")
        if self.pad_sequence_length:
            seq, _ = pad_or_truncate(seq, lengths, self.pad_sequence_length)
        else:
            seq = tf.pad(seq, [[0, 0], [0, tf.maximum(max(self.filter_sizes)
                                                       - tf.shape(seq)[1], 0)], [0, 0]])
        pooled = [tf.reduce_max(conv(seq), axis=1) for conv in self.convs]
        out = tf.concat(pooled, axis=-1)
        return self.mlp(out, training=training) if self.mlp is not None else out

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        width = self.mlp.hidden_units[-1] if self.mlp is not None else sum(self.num_filters)
        return (shape[0], width)

    def get_config(self):
        config = super().get_config()
        config.update(filter_sizes=self.filter_sizes, num_filters=self.num_filters,
                      pad_sequence_length=self.pad_sequence_length, activation=self.activation,
                      mlp=self.mlp_kwargs)
        return config
