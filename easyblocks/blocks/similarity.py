"""Similarity of two towers' vectors (DSSM, Huang et al., CIKM 2013; two-tower retrieval)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.inputs import expect_list
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


@register_block("Cosine")
class Cosine(keras.layers.Layer):
    """Cosine similarity of a user and an item vector, divided by a temperature, as a logit.

        logit = cos(u, v) / temperature = <u / ||u||, v / ||v||> / temperature

    Both sides are l2-normalised with tf.math.l2_normalize: x / sqrt(max(||x||^2, epsilon)), so a
    zero vector has similarity 0 (not NaN).

    Temperature: a cosine lies in [-1, 1], so sigmoid(cos) could only reach [0.27, 0.73]; the
    temperature scales it into a usable logit range (DSSM's smoothing factor gamma in its
    softmax plays the same role). The default 0.1 gives logits in [-10, 10], i.e. probabilities
    from 4.5e-5 to 0.99995: wide enough for click-through rates of 1e-4 and up, while keeping
    the gradients of the cosine bounded (1/temperature = 10). Two-tower retrieval with a
    softmax over in-batch negatives often uses 0.05 (logits in [-20, 20]).

    Args:
      temperature: tau > 0.
      epsilon: floor of the squared norm in the l2 normalisation.

    Call args:
      inputs: a list [user vector (batch, d), item vector (batch, d)]
        (`merge_inputs_into_list: true`).

    Returns:
      (batch, 1).
    """

    def __init__(self, temperature: float = 0.1, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        what = f"Cosine {self.name!r}"
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                temperature <= 0:
            raise ConfigError(
                f"{what}: expected `temperature` > 0, received: temperature={temperature!r}"
            )
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise ConfigError(f"{what}: expected `epsilon` > 0, received: epsilon={epsilon!r}")
        self.temperature = float(temperature)
        self.epsilon = float(epsilon)

    def _split(self, inputs: Any) -> tuple[tf.Tensor, tf.Tensor]:
        what = f"Cosine {self.name!r}"
        expected = "a list [user vector (batch, d), item vector (batch, d)] with the same d"
        u, v = (tf.convert_to_tensor(t) for t in expect_list(inputs, 2, what, expected))
        if u.shape.rank != 2 or v.shape.rank != 2 or u.shape[-1] != v.shape[-1]:
            raise ConfigError(
                f"{what}: expected {expected} (set `merge_inputs_into_list: true`), received "
                f"shapes {tuple(u.shape)} and {tuple(v.shape)}"
            )
        return u, v

    def call(self, inputs, training=None):
        u, v = self._split(inputs)
        u = tf.math.l2_normalize(u, axis=-1, epsilon=self.epsilon)
        v = tf.math.l2_normalize(tf.cast(v, u.dtype), axis=-1, epsilon=self.epsilon)
        return tf.reduce_sum(u * v, axis=-1, keepdims=True) / self.temperature

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature, epsilon=self.epsilon)
        return config


SIMILARITY_FUNCTIONS = ("COSINE", "INNER_PRODUCT")


@register_block("Similarity", params="similarity")
class Similarity(keras.layers.Layer):
    """Two-tower similarity as a logit: EasyRec's DSSM / MatchModel head.

        s(u, v) = <u, v>                        (INNER_PRODUCT)
                = <u / ||u||, v / ||v||>         (COSINE)
        logit   = s / temperature                (then, with scale_simi:)
        logit   = logit * |w| + b                (w, b learned, starting at 1 and 0)

    The same function scores every (user, item) pair of a batch (`pair_logits`): the
    logits of a softmax over in-batch negatives (SOFTMAX_CROSS_ENTROPY), whose diagonal is
    what `call` returns.

    EasyRec divides by the temperature only for COSINE (an INNER_PRODUCT model ignores its
    `temperature`); here the temperature always applies (1.0, EasyRec's default, changes
    nothing).

    Args:
      simi_func: "COSINE" or "INNER_PRODUCT" (any case).
      temperature: > 0.
      scale_simi: learn the scale |w| and the shift b.
      epsilon: floor of the squared norm in the l2 normalisation (a zero vector has
        similarity 0, not NaN).

    Call args:
      inputs: a list [user vector (batch, d), item vector (batch, d)]
        (`merge_inputs_into_list: true`).

    Returns:
      (batch, 1).
    """

    def __init__(self, simi_func: str = "COSINE", temperature: float = 1.0,
                 scale_simi: bool = False, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        what = f"Similarity {self.name!r}"
        func = str(simi_func).upper()
        if func not in SIMILARITY_FUNCTIONS:
            raise ConfigError(f"{what}: expected `simi_func` one of "
                              f"{', '.join(SIMILARITY_FUNCTIONS)}, received: {simi_func!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                temperature <= 0:
            raise ConfigError(
                f"{what}: expected `temperature` > 0, received: temperature={temperature!r}")
        self.simi_func = func
        self.temperature = float(temperature)
        self.scale_simi = bool(scale_simi)
        self.epsilon = float(epsilon)
        self.scale = self.shift = None
        if self.scale_simi:
            self.scale = self.add_weight(shape=(1,), initializer="ones", name="scale")
            self.shift = self.add_weight(shape=(1,), initializer="zeros", name="shift")

    def _split(self, inputs: Any) -> tuple[tf.Tensor, tf.Tensor]:
        what = f"Similarity {self.name!r}"
        expected = "a list [user vector (batch, d), item vector (batch, d)] with the same d"
        u, v = (tf.convert_to_tensor(t) for t in expect_list(inputs, 2, what, expected))
        if u.shape.rank != 2 or v.shape.rank != 2 or u.shape[-1] != v.shape[-1]:
            raise ConfigError(
                f"{what}: expected {expected} (set `merge_inputs_into_list: true`), received "
                f"shapes {tuple(u.shape)} and {tuple(v.shape)}"
            )
        if self.simi_func == "COSINE":
            u = tf.math.l2_normalize(u, axis=-1, epsilon=self.epsilon)
            v = tf.math.l2_normalize(v, axis=-1, epsilon=self.epsilon)
        return u, tf.cast(v, u.dtype)

    def _logit(self, s: tf.Tensor) -> tf.Tensor:
        s = s / self.temperature
        if self.scale_simi:
            s = s * tf.abs(self.scale) + self.shift
        return s

    def similarity(self, inputs) -> tf.Tensor:
        """s(u_i, v_i) before the temperature and the scale: (batch, 1)."""
        u, v = self._split(inputs)
        return tf.reduce_sum(u * v, axis=-1, keepdims=True)

    def pair_logits(self, inputs) -> tf.Tensor:
        """The logit of user i with item j for every pair of the batch: (batch, batch)."""
        u, v = self._split(inputs)
        return self._logit(tf.matmul(u, v, transpose_b=True))

    def call(self, inputs, training=None):
        return self._logit(self.similarity(inputs))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(simi_func=self.simi_func, temperature=self.temperature,
                      scale_simi=self.scale_simi, epsilon=self.epsilon)
        return config
