"""Cross networks: explicit bounded-degree feature crosses on a flat input vector.

- `Cross`: one layer of DCN-v2 (Wang et al., WWW 2021, "DCN V2", eq. 1 full rank, eq. 2 low
  rank): x_(l+1) = x_0 * (W x_l + b) + x_l. EasyRec's backbone `Cross` block.
- `CrossV1`: one layer of the original DCN (Wang et al., ADKDD 2017, "Deep & Cross Network",
  eq. 3): x_(l+1) = x_0 <w, x_l> + b + x_l. What EasyRec's `DCN` model class stacks.

A cross network is L such layers, each with its own weights. In a config (as EasyRec's DCN
backbone samples do) that is a `recurrent` block with `fixed_input_index: 0` over the input
`[x, x]` (`input_fn: "lambda x: [x, x]"`): step l gets [x_0, x_l] and returns x_(l+1).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


def _x0_and_x(inputs: Any, what: str) -> tuple[tf.Tensor, tf.Tensor]:
    """(x_0, x_l) from [x_0, x_l] or from one tensor (x_0 = x_l); both (batch, d)."""
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 2:
            raise ConfigError(f"{what}: expected one tensor (batch, d) or a list [x_0, x_l] of "
                              f"two, received: a list of {len(inputs)} inputs")
        x0, x = (tf.convert_to_tensor(t) for t in inputs)
    else:
        x0 = x = tf.convert_to_tensor(inputs)
    if x0.shape.rank != 2 or x.shape.rank != 2 or x0.shape[-1] != x.shape[-1]:
        raise ConfigError(f"{what}: expected x_0 and x_l of the same shape (batch, d), received: "
                          f"{tuple(x0.shape)} and {tuple(x.shape)}")
    return x0, x


def _input_dim(input_shape: Any) -> int | None:
    shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
    return None if len(shape) != 2 or shape[-1] is None else int(shape[-1])


def _regularizer(name: str | None, what: str):
    if not name:
        return None
    try:
        return keras.regularizers.get(name)
    except ValueError:
        raise ConfigError(f"{what}: unknown regularizer {name!r} (use 'l1', 'l2' or "
                          "'l1_l2')") from None


@register_block("Cross", params="cross")
class Cross(keras.layers.Layer):
    """One DCN-v2 cross layer (Wang et al., WWW 2021, eq. 1; low rank: eq. 2):

        x_(l+1) = x_0 * (W x_l + b + diag_scale * x_l) + x_l

    W is d x d, or U V (d x r, r x d) with `projection_dim` r. With `preactivation`, the
    activation is applied to W x_l + b before the product with x_0 (then diag_scale * x_l is
    added after it, as in TensorFlow Recommenders and EasyRec).

    Args:
      projection_dim: rank r of W = U V; None: a full matrix.
      diag_scale: non-negative; adds diag_scale * I to W.
      use_bias: add b.
      preactivation: activation name, or None.
      kernel_initializer, bias_initializer: Keras initializer names.
      kernel_regularizer, bias_regularizer: Keras regularizer names ('l2', ...), or None.

    Call args:
      inputs: a list [x_0, x_l] of two (batch, d) tensors, or one (batch, d) tensor (x_0 = x_l).

    Returns:
      (batch, d).
    """

    def __init__(
        self,
        projection_dim: int | None = None,
        diag_scale: float = 0.0,
        use_bias: bool = True,
        preactivation: str | None = None,
        kernel_initializer: str = "truncated_normal",
        bias_initializer: str = "zeros",
        kernel_regularizer: str | None = None,
        bias_regularizer: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"Cross {self.name!r}"
        if projection_dim is not None and int(projection_dim) <= 0:
            raise ConfigError(f"{what}: expected `projection_dim` to be a positive integer or "
                              f"unset, received: projection_dim={projection_dim}")
        if diag_scale < 0:
            raise ConfigError(f"{what}: expected `diag_scale` to be non-negative, received: "
                              f"diag_scale={diag_scale}")
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.diag_scale = float(diag_scale)
        self.use_bias = bool(use_bias)
        self.preactivation = preactivation
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        try:
            self._act = get_activation(preactivation)
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}") from None
        self._kernel_reg = _regularizer(kernel_regularizer, what)
        self._bias_reg = _regularizer(bias_regularizer, what)
        self.dense = None
        self.dense_u = None

    def build(self, input_shape):
        d = _input_dim(input_shape)
        if d is None:
            return  # call() reports the bad inputs as a ConfigError
        if self.projection_dim is not None:
            self.dense_u = keras.layers.Dense(
                self.projection_dim, use_bias=False, kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self._kernel_reg, name="dense_u")
            self.dense_u.build((None, d))
        self.dense = keras.layers.Dense(
            d, use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer, kernel_regularizer=self._kernel_reg,
            bias_regularizer=self._bias_reg, name="dense_v" if self.dense_u else "dense")
        self.dense.build((None, self.projection_dim or d))

    def call(self, inputs, training=None):
        what = f"Cross {self.name!r}"
        x0, x = _x0_and_x(inputs, what)
        if self.dense is None or self.dense.kernel.shape[-1] != x.shape[-1]:
            raise ConfigError(f"{what}: the layer was built for another input width than "
                              f"{x.shape[-1]}")
        prod = self.dense(self.dense_u(x) if self.dense_u is not None else x)
        if self._act is not None:
            prod = self._act(prod)
        if self.diag_scale:
            prod = prod + self.diag_scale * x
        return x0 * prod + x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0] if isinstance(input_shape[0], (list, tuple))
                     else input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            projection_dim=self.projection_dim, diag_scale=self.diag_scale,
            use_bias=self.use_bias, preactivation=self.preactivation,
            kernel_initializer=self.kernel_initializer, bias_initializer=self.bias_initializer,
            kernel_regularizer=self.kernel_regularizer, bias_regularizer=self.bias_regularizer,
        )
        return config


@register_block("CrossV1", params="cross_v1")
class CrossV1(keras.layers.Layer):
    """One cross layer of the original DCN (Wang et al., ADKDD 2017, eq. 3):

        x_(l+1) = x_0 <w, x_l> + b + x_l,   w, b in R^d

    (a rank-one cross: every example's x_0 scaled by one number). This is the cross network of
    EasyRec's `DCN` model class (`cross_tower { cross_num }`); EasyRec's backbone `Cross` block
    is DCN-v2 (`Cross` here).

    Weights: kernel (d, 1), bias (d,) zeros.

    Args:
      use_bias: add b.
      kernel_initializer: Keras initializer name of w.

    Call args:
      inputs: a list [x_0, x_l] of two (batch, d) tensors, or one (batch, d) tensor (x_0 = x_l).

    Returns:
      (batch, d).
    """

    def __init__(self, use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.kernel = None
        self.bias = None

    def build(self, input_shape):
        d = _input_dim(input_shape)
        if d is None:
            return  # call() reports the bad inputs as a ConfigError
        self.kernel = self.add_weight(shape=(d, 1), initializer=self.kernel_initializer,
                                      name="kernel")
        if self.use_bias:
            self.bias = self.add_weight(shape=(d,), initializer="zeros", name="bias")

    def call(self, inputs, training=None):
        what = f"CrossV1 {self.name!r}"
        x0, x = _x0_and_x(inputs, what)
        if self.kernel is None or self.kernel.shape[0] != x.shape[-1]:
            raise ConfigError(f"{what}: the layer was built for another input width than "
                              f"{x.shape[-1]}")
        out = x0 * tf.matmul(x, self.kernel) + x  # (batch, d) * (batch, 1)
        return out + self.bias if self.bias is not None else out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0] if isinstance(input_shape[0], (list, tuple))
                     else input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(use_bias=self.use_bias, kernel_initializer=self.kernel_initializer)
        return config
