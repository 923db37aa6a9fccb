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
