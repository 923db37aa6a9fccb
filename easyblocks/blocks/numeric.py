"""Embeddings of numeric features: PeriodicEmbedding, AutoDisEmbedding and NaryDisEmbedding.

Each takes the numbers of N features as one (batch, N) tensor — in a config, a feature group
of RawFeatures without `embedding_dim` (whose group tensor is their values side by side), as
EasyRec's configs use them — and gives every feature its own d-dimensional embedding:

    output                       (batch, N * d), the embeddings side by side
    with output_3d_tensor:       (output, (batch, N, d))
    with output_tensor_list:     (output, [N tensors (batch, d)])      (takes precedence)

(EasyRec's return values; pick one with `input_slice: "[0]"` / `"[1]"`.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

_INPUT_EXPECTED = (
    "one (batch, num_features) tensor of numbers (e.g. a feature group of RawFeatures "
    "without embedding_dim)"
)


def _num_features(input_shape: Any) -> int | None:
    if not input_shape or isinstance(input_shape[0], (list, tuple)) or len(input_shape) != 2:
        return None
    return None if input_shape[-1] is None else int(input_shape[-1])


def _check_input(inputs: Any, num_features: int | None, what: str) -> tf.Tensor:
    if isinstance(inputs, (list, tuple)):
        raise ConfigError(f"{what}: expected {_INPUT_EXPECTED}, received a list of "
                          f"{len(inputs)} inputs")
    x = tf.convert_to_tensor(inputs)
    if x.shape.rank != 2 or num_features is None or x.shape[-1] != num_features:
        raise ConfigError(f"{what}: expected {_INPUT_EXPECTED}"
                          + (f" with {num_features} features" if num_features else "")
                          + f", received shape {tuple(x.shape)}")
    return tf.cast(x, tf.float32)


def _outputs(emb: tf.Tensor, output_3d_tensor: bool, output_tensor_list: bool) -> Any:
    """EasyRec's output forms from the (batch, N, d) embeddings."""
    n, d = int(emb.shape[1]), int(emb.shape[2])
    flat = tf.reshape(emb, [-1, n * d])
    if output_tensor_list:
        return flat, tf.unstack(emb, axis=1)
    if output_3d_tensor:
        return flat, emb
    return flat


def _output_shape(batch, n: int | None, d: int, output_3d_tensor: bool,
                  output_tensor_list: bool) -> Any:
    flat = (batch, None if n is None else n * d)
    if output_tensor_list and n is not None:
        return flat, [(batch, d)] * n
    if output_3d_tensor:
        return flat, (batch, n, d)
    return flat


def _positive(value: Any, key: str, what: str) -> int:
    if value is None or int(value) <= 0:
        raise ConfigError(f"{what}: expected `{key}` to be a positive integer, received: "
                          f"{key}={value}")
    return int(value)


@register_block("PeriodicEmbedding", params="periodic_embedding")
class PeriodicEmbedding(keras.layers.Layer):
    """Periodic embeddings of numbers (Gorishniy et al., NeurIPS 2022, "On Embeddings for
    Numerical Features in Tabular Deep Learning", section 3.3, the PLR form):

        v_n = 2 pi c_n x_n                          c_n (d/2,) ~ N(0, sigma^2), trained
        e_n = act(W_n [sin(v_n), cos(v_n)] + b_n)   W_n (d, d), b_n (d,): one per feature

    `add_linear_layer: false` leaves e_n = [sin(v_n), cos(v_n)]. sigma is the frequencies'
    scale and matters a lot: the paper tunes it per data set over [1e-2, 1e2].

    Args:
      embedding_dim: d, even.
      sigma: stddev of the frequencies' initialisation.
      add_linear_layer: the per-feature linear layer and activation.
      linear_activation: its activation ("relu").
      output_3d_tensor, output_tensor_list: see the module docstring.

    Call args:
      inputs: (batch, N) numbers.

    Returns:
      (batch, N d), and the 3-D / list form if asked (see the module docstring).
    """

    def __init__(self, embedding_dim: int, sigma: float, add_linear_layer: bool = True,
                 linear_activation: str = "relu", output_3d_tensor: bool = False,
                 output_tensor_list: bool = False, **kwargs):
        super().__init__(**kwargs)
        what = f"PeriodicEmbedding {self.name!r}"
        self.embedding_dim = _positive(embedding_dim, "embedding_dim", what)
        if self.embedding_dim % 2:
            raise ConfigError(f"{what}: expected an even `embedding_dim` (half sines, half "
                              f"cosines), received: embedding_dim={embedding_dim}")
        if sigma is None or sigma <= 0:
            raise ConfigError(f"{what}: expected a positive `sigma`, received: sigma={sigma}")
        self.sigma = float(sigma)
        self.add_linear_layer = bool(add_linear_layer)
        self.linear_activation = linear_activation
        try:
            self._act = get_activation(linear_activation)
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}") from None
        self.output_3d_tensor = bool(output_3d_tensor)
        self.output_tensor_list = bool(output_tensor_list)
        self.num_features: int | None = None

    def build(self, input_shape):
        n = _num_features(input_shape)
        if n is None:
            return  # call() reports the bad input as a ConfigError
        self.num_features = n
        d = self.embedding_dim
        self.coefficients = self.add_weight(
            shape=(n, d // 2), initializer=keras.initializers.RandomNormal(stddev=self.sigma),
            name="coefficients")
        if self.add_linear_layer:
            self.kernel = self.add_weight(shape=(n, d, d), initializer="glorot_uniform",
                                          name="kernel")
            self.bias = self.add_weight(shape=(n, d), initializer="zeros", name="bias")

    def call(self, inputs, training=None):
        x = _check_input(inputs, self.num_features, f"PeriodicEmbedding {self.name!r}")
        v = 2.0 * math.pi * self.coefficients[None] * x[..., None]  # (batch, N, d/2)
        emb = tf.concat([tf.sin(v), tf.cos(v)], axis=-1)  # (batch, N, d)
        if self.add_linear_layer:
            emb = tf.einsum("bni,nio->bno", emb, self.kernel) + self.bias[None]
            if self._act is not None:
                emb = self._act(emb)
        return _outputs(emb, self.output_3d_tensor, self.output_tensor_list)

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape[0], _num_features(input_shape), self.embedding_dim,
                             self.output_3d_tensor, self.output_tensor_list)

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, sigma=self.sigma,
                      add_linear_layer=self.add_linear_layer,
                      linear_activation=self.linear_activation,
                      output_3d_tensor=self.output_3d_tensor,
                      output_tensor_list=self.output_tensor_list)
        return config


@register_block("AutoDisEmbedding", params="auto_dis_embedding")
class AutoDisEmbedding(keras.layers.Layer):
    """AutoDis (Guo et al., KDD 2021, "An Embedding Learning Framework for Numerical Features in
    CTR Prediction", section 3.2, eq. 3-8): a soft discretisation into H meta-embeddings.

    For feature n with value x_n (each feature has its own weights):

        h   = leaky_relu(w_n x_n)                    w_n (H,)            (eq. 4)
        s   = W_n h + alpha h                        W_n (H, H)          (eq. 5, skip weight
                                                                          alpha = keep_prob)
        p   = softmax(s / tau)                                           (eq. 6, tau temperature)
        e_n = sum_k p_k M_n,k                        M_n (H, d)          (eq. 8, weighted average)

    leaky_relu has slope 0.2 (TensorFlow's default, as in EasyRec). Weights are
    glorot_uniform (what EasyRec's unset initialisers give).

    Args:
      embedding_dim: d.
      num_bins: H.
      temperature: tau > 0.
      keep_prob: alpha, the weight of the skip connection.
      output_3d_tensor, output_tensor_list: see the module docstring.

    Call args:
      inputs: (batch, N) numbers.

    Returns:
      (batch, N d), and the 3-D / list form if asked (see the module docstring).
    """

    def __init__(self, embedding_dim: int, num_bins: int, temperature: float,
                 keep_prob: float = 0.8, output_3d_tensor: bool = False,
                 output_tensor_list: bool = False, **kwargs):
        super().__init__(**kwargs)
        what = f"AutoDisEmbedding {self.name!r}"
        self.embedding_dim = _positive(embedding_dim, "embedding_dim", what)
        self.num_bins = _positive(num_bins, "num_bins", what)
        if temperature is None or temperature <= 0:
            raise ConfigError(f"{what}: expected a positive `temperature`, received: "
                              f"temperature={temperature}")
        self.temperature = float(temperature)
        self.keep_prob = float(keep_prob)
        self.output_3d_tensor = bool(output_3d_tensor)
        self.output_tensor_list = bool(output_tensor_list)
        self.num_features: int | None = None

    def build(self, input_shape):
        n = _num_features(input_shape)
        if n is None:
            return  # call() reports the bad input as a ConfigError
        self.num_features = n
        h, d = self.num_bins, self.embedding_dim
        self.meta_embedding = self.add_weight(shape=(n, h, d), initializer="glorot_uniform",
                                              name="meta_embedding")
        self.project_w = self.add_weight(shape=(n, h), initializer="glorot_uniform",
                                         name="project_w")
        self.project_mat = self.add_weight(shape=(n, h, h), initializer="glorot_uniform",
                                           name="project_mat")

    def call(self, inputs, training=None):
        x = _check_input(inputs, self.num_features, f"AutoDisEmbedding {self.name!r}")
        hidden = tf.nn.leaky_relu(self.project_w[None] * x[..., None], alpha=0.2)  # (b, N, H)
        scores = tf.einsum("nik,bnk->bni", self.project_mat, hidden) + self.keep_prob * hidden
        probs = tf.nn.softmax(scores / self.temperature, axis=-1)
        emb = tf.einsum("bnk,nkd->bnd", probs, self.meta_embedding)  # (batch, N, d)
        return _outputs(emb, self.output_3d_tensor, self.output_tensor_list)

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape[0], _num_features(input_shape), self.embedding_dim,
                             self.output_3d_tensor, self.output_tensor_list)

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, num_bins=self.num_bins,
                      temperature=self.temperature, keep_prob=self.keep_prob,
                      output_3d_tensor=self.output_3d_tensor,
                      output_tensor_list=self.output_tensor_list)
        return config


# the numbers are encoded as unsigned 32-bit integers, as EasyRec's nary_carry op does
_MAX_VALUE = 2**32 - 1


def num_digits(carry: int) -> int:
    """Digit positions of base `carry` needed for any value in [0, 2^32 - 1]."""
    digits, top = 1, carry
    while top <= _MAX_VALUE:
        digits, top = digits + 1, top * carry
    return digits


@register_block("NaryDisEmbedding", params="nary_dis_embedding")
class NaryDisEmbedding(keras.layers.Layer):
    """Hybrid N-ary encoding of numbers (Zhang et al., CIKM 2022, "Numerical Feature
    Representation with Hybrid N-ary Encoding").

    Each number x (times `multiplier`, then truncated to an integer in [0, 2^32 - 1]) is written
    in every base N of `carries`. Digit p of base N with value a is a token of its own, with an
    embedding of its own for each feature: row  offset_N + p * N + a  of the feature's table
    (offset_N: the rows of the bases before N; a base has num_digits(N) * N rows, so base 2
    has 32 * 2 and base 9 has 11 * 9). The embedding of x in base N pools its digits' rows
    (`intra_ary_pooling` "sum" or "mean"); the bases' embeddings are concatenated, so each
    feature's embedding has width len(carries) * d.

    The digits of x are those of its written form: the leading zeros are not tokens (0 is the
    one digit "0"). `num_replicas` R > 1 gives R independent embeddings per digit (a table R
    times as wide) and returns R outputs, then R 3-D / list forms if asked, in one list.

    EasyRec computes the digits with a compiled op (nary_carry) whose source is not public;
    this block follows the paper and the shapes EasyRec's code gives (one table of
    num_features x rows per feature, the output layout above). Negative numbers are clipped to
    0; numbers above 2^32 - 1 to that value.

    Args:
      embedding_dim: d.
      carries: the bases N (>= 2).
      multiplier: scales the numbers before truncation (e.g. 1e6 keeps 6 decimals).
      intra_ary_pooling: "sum" or "mean" over a number's digits.
      inter_ary_pooling: "concat" (the only one).
      output_3d_tensor, output_tensor_list: see the module docstring.
      num_replicas: R.

    Call args:
      inputs: (batch, N_features) numbers.

    Returns:
      (batch, N_features * len(carries) * d), and the 3-D / list form if asked.
    """

    def __init__(self, embedding_dim: int, carries: Sequence[int], multiplier: float = 1.0,
                 intra_ary_pooling: str = "sum", inter_ary_pooling: str = "concat",
                 output_3d_tensor: bool = False, output_tensor_list: bool = False,
                 num_replicas: int = 1, **kwargs):
        super().__init__(**kwargs)
        what = f"NaryDisEmbedding {self.name!r}"
        self.embedding_dim = _positive(embedding_dim, "embedding_dim", what)
        if isinstance(carries, int):
            carries = [carries]
        self.carries = [int(c) for c in carries or []]
        if not self.carries or any(c < 2 for c in self.carries):
            raise ConfigError(f"{what}: expected `carries` to be bases >= 2, received: "
                              f"{list(carries or [])}")
        if intra_ary_pooling not in ("sum", "mean"):
            raise ConfigError(f"{what}: expected `intra_ary_pooling` 'sum' or 'mean', received: "
                              f"{intra_ary_pooling!r}")
        if inter_ary_pooling != "concat":
            raise ConfigError(f"{what}: only inter_ary_pooling 'concat' is supported (as in "
                              f"EasyRec), received: {inter_ary_pooling!r}")
        self.multiplier = float(multiplier)
        self.intra_ary_pooling = intra_ary_pooling
        self.inter_ary_pooling = inter_ary_pooling
        self.output_3d_tensor = bool(output_3d_tensor)
        self.output_tensor_list = bool(output_tensor_list)
        self.num_replicas = _positive(num_replicas, "num_replicas", what)
        self.num_features: int | None = None
        # per base: its offset in a feature's rows, digit count and base; as constant arrays
        offsets, positions, bases = [], [], []
        offset = 0
        for c in self.carries:
            p = num_digits(c)
            offsets += [offset + k * c for k in range(p)]
            positions += [c**k for k in range(p)]
            bases += [c] * p
            offset += p * c
        self.rows_per_feature = offset
        self._digit_offsets = np.array(offsets, dtype="int64")  # (T,), T = total digits
        self._place_values = np.array(positions, dtype="int64")  # N^p < 2^36
        self._bases = np.array(bases, dtype="int64")
        self._segments = [num_digits(c) for c in self.carries]

    def build(self, input_shape):
        n = _num_features(input_shape)
        if n is None:
            return  # call() reports the bad input as a ConfigError
        self.num_features = n
        self.table = self.add_weight(
            shape=(n * self.rows_per_feature, self.embedding_dim * self.num_replicas),
            initializer="glorot_uniform", name="embedding")

    def digit_rows(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(rows (batch, N, T) int64 into the table, valid (batch, N, T) bool): every digit
        position of every base; `valid` marks the written digits (no leading zeros)."""
        v = tf.floor(tf.clip_by_value(tf.cast(x, tf.float64) * self.multiplier, 0.0,
                                      float(_MAX_VALUE)))
        v = tf.cast(v, tf.int64)[..., None]  # (batch, N, 1)
        place = tf.constant(self._place_values)
        digit = (v // place) % tf.constant(self._bases)  # (batch, N, T)
        valid = tf.logical_or(v >= place, tf.equal(place, 1))
        feature_offset = tf.range(self.num_features, dtype=tf.int64)[:, None] \
            * self.rows_per_feature
        rows = feature_offset + tf.constant(self._digit_offsets) + digit
        return rows, valid

    def call(self, inputs, training=None):
        x = _check_input(inputs, self.num_features, f"NaryDisEmbedding {self.name!r}")
        rows, valid = self.digit_rows(x)
        emb = tf.gather(self.table, rows) * tf.cast(valid, tf.float32)[..., None]  # (b,N,T,RD)
        per_base = []
        for part, mask in zip(tf.split(emb, self._segments, axis=2),
                              tf.split(tf.cast(valid, tf.float32), self._segments, axis=2)):
            pooled = tf.reduce_sum(part, axis=2)  # (batch, N, R d)
            if self.intra_ary_pooling == "mean":  # over the written digits (at least one)
                pooled = pooled / tf.reduce_sum(mask, axis=2, keepdims=True)
            per_base.append(pooled)
        d, r = self.embedding_dim, self.num_replicas
        replicas = [tf.concat([p[..., k * d:(k + 1) * d] for p in per_base], axis=-1)
                    for k in range(r)]  # R x (batch, N, C d)
        if r == 1:
            return _outputs(replicas[0], self.output_3d_tensor, self.output_tensor_list)
        forms = [_outputs(e, self.output_3d_tensor, self.output_tensor_list) for e in replicas]
        if not (self.output_3d_tensor or self.output_tensor_list):
            return forms
        return [f[0] for f in forms] + [f[1] for f in forms]

    def compute_output_shape(self, input_shape):
        width = len(self.carries) * self.embedding_dim
        one = _output_shape(input_shape[0], _num_features(input_shape), width,
                            self.output_3d_tensor, self.output_tensor_list)
        if self.num_replicas == 1:
            return one
        if not (self.output_3d_tensor or self.output_tensor_list):
            return [one] * self.num_replicas
        return [one[0]] * self.num_replicas + [one[1]] * self.num_replicas

    def get_config(self):
        config = super().get_config()
        config.update(embedding_dim=self.embedding_dim, carries=list(self.carries),
                      multiplier=self.multiplier, intra_ary_pooling=self.intra_ary_pooling,
                      inter_ary_pooling=self.inter_ary_pooling,
                      output_3d_tensor=self.output_3d_tensor,
                      output_tensor_list=self.output_tensor_list,
                      num_replicas=self.num_replicas)
        return config
