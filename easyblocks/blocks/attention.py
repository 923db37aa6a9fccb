"""Self-attention over feature fields: AutoInt's interacting layer (Song et al., CIKM 2019)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from easyblocks.blocks.interaction import stack_fields
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


@register_block("InteractingLayer", params="interacting_layer")
class InteractingLayer(keras.layers.Layer):
    """AutoInt's interacting layer: multi-head self-attention over the F field embeddings.

    For each head h (eq. 5-8 of the paper), with W_Q, W_K, W_V of shape (d, s) and no bias:

        a^h_(m,k) = softmax_k( <W_Q^h e_m, W_K^h e_k> / sqrt(s) )
        e~^h_m    = sum_k a^h_(m,k) W_V^h e_k
        e~_m      = [e~^1_m, ..., e~^H_m]                          (width H s)
        out_m     = ReLU(e~_m + W_res e_m)      with use_residual (eq. 9; W_res (d, H s))

    The scores are divided by sqrt(s) as in the Transformer; the paper does not scale them,
    and EasyRec's AutoInt multiplies them by sqrt(s) (it divides by s ** -0.5, an inverted
    scale that sharpens the softmax as the heads grow).

    Args:
      multi_head_num: H >= 1.
      multi_head_size: s >= 1; unset: d // H.
      use_residual: add W_res e_m and apply the ReLU.

    Call args:
      inputs: (batch, F, d), or a list of F (batch, d) tensors.

    Returns:
      (batch, F, H s).
    """

    def __init__(self, multi_head_num: int = 1, multi_head_size: int | None = None,
                 use_residual: bool = True, **kwargs):
        super().__init__(**kwargs)
        what = f"InteractingLayer {self.name!r}"
        if int(multi_head_num) < 1 or (multi_head_size is not None and int(multi_head_size) < 1):
            raise ConfigError(f"{what}: expected positive `multi_head_num` and "
                              f"`multi_head_size`, received: multi_head_num={multi_head_num}, "
                              f"multi_head_size={multi_head_size}")
        self.multi_head_num = int(multi_head_num)
        self.multi_head_size = int(multi_head_size) if multi_head_size else None
        self.use_residual = bool(use_residual)
        self.head_size: int | None = None

    def _dims(self, input_shape) -> tuple[int, int]:
        if isinstance(input_shape, (list, tuple)) and input_shape and \
                isinstance(input_shape[0], (list, tuple)):
            f, d = len(input_shape), input_shape[0][-1]
        else:
            f, d = input_shape[1], input_shape[-1]
        if d is None:
            raise ConfigError(f"InteractingLayer {self.name!r}: the field width must be known")
        return f, int(d)

    def build(self, input_shape):
        _, d = self._dims(input_shape)
        s = self.multi_head_size or d // self.multi_head_num
        if s < 1:
            raise ConfigError(f"InteractingLayer {self.name!r}: field width {d} is smaller than "
                              f"multi_head_num={self.multi_head_num}; set multi_head_size")
        self.head_size = s
        width = self.multi_head_num * s

        def dense(name):
            layer = keras.layers.Dense(width, use_bias=False, name=name)
            layer.build((None, None, d))
            return layer

        self.query, self.key, self.value = dense("query"), dense("key"), dense("value")
        self.residual = dense("residual") if self.use_residual else None

    def _heads(self, x: tf.Tensor) -> tf.Tensor:
        f = tf.shape(x)[1]
        x = tf.reshape(x, [-1, f, self.multi_head_num, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])  # (batch, H, F, s)

    def call(self, inputs, training=None):
        e = stack_fields(inputs, f"InteractingLayer {self.name!r}")  # (batch, F, d)
        q, k, v = self._heads(self.query(e)), self._heads(self.key(e)), self._heads(self.value(e))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_size)
        attended = tf.matmul(tf.nn.softmax(scores, axis=-1), v)  # (batch, H, F, s)
        attended = tf.transpose(attended, [0, 2, 1, 3])
        out = tf.reshape(attended, [-1, tf.shape(e)[1], self.multi_head_num * self.head_size])
        if self.residual is not None:
            out = tf.nn.relu(out + self.residual(e))
        return out

    def compute_output_shape(self, input_shape):
        f, d = self._dims(input_shape)
        s = self.multi_head_size or d // self.multi_head_num
        batch = input_shape[0][0] if isinstance(input_shape[0], (list, tuple)) else input_shape[0]
        return (batch, f, self.multi_head_num * s)

    def get_config(self):
        config = super().get_config()
        config.update(multi_head_num=self.multi_head_num, multi_head_size=self.multi_head_size,
                      use_residual=self.use_residual)
        return config
