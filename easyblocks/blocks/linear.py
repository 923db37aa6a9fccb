"""Linear pieces of a logit: a learned bias (the w_0 of FM's first-order part)."""

from __future__ import annotations

import keras
import tensorflow as tf

from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


@register_block("BiasAdd")
class BiasAdd(keras.layers.Layer):
    """x + b with a learned bias b (one per unit, starting at 0).

    EasyRec's FM model class ends in `bias_add(wide + fm, fm_bias)`; a Dense layer would also
    learn a scale of its input.

    Call args:
      inputs: (batch, k).

    Returns:
      (batch, k).
    """

    def build(self, input_shape):
        k = input_shape[-1]
        if k is None:
            raise ConfigError(f"BiasAdd {self.name!r}: the last dimension must be known, "
                              f"received: {tuple(input_shape)}")
        self.bias = self.add_weight(shape=(int(k),), initializer="zeros", name="bias")

    def call(self, inputs, training=None):
        return tf.nn.bias_add(inputs, self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
