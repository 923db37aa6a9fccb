"""MLR / LS-PLM (Gai et al. 2017, "Learning Piece-wise Linear Models from Large Scale Data for
Ad Click Prediction", arXiv:1704.05194): a mixture of m logistic regressions.

    f(x) = sum_{i=1..m} softmax(U x_d + u_0)_i * sigmoid(w_i . x_f + w_{0,i})

(the paper's softmax/sigmoid form, as in the seed `002_*`). The softmax part divides the space
into m regions, each region fits its own LR. With m = 1 it is plain logistic regression. The
block returns the LOGIT of the probability, so a tower that uses it as its logit predicts
exactly f(x).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError

_BIAS_MODES = ("product", "logit")


@register_block("MLR")
class MLR(keras.layers.Layer):
    """Mixed logistic regression (LS-PLM), with the structure prior and the linear bias.

    Inputs (the seed `002_*`, "算法高级特性"):
      - x: one (batch, n) tensor, used both to divide and to fit (x_d = x_f = x).
      - [x_d, x_f]: the **structure prior** (结构先验): "以user特征空间划分、以ad特征为线性拟合" —
        user features divide the space (the softmax gate), ad features fit the LR in each piece.
      - [x_d, x_f, x_b]: plus the **linear bias** (线性偏置) for bias features "如位置、资源位"
        (position, ad slot): a linear term b(x_b) = w_b . x_b + c.
    A rank-3 input (batch, F, d) is flattened to (batch, F d).

    Where the linear bias goes: the seed's text names the feature (positions, slots; +4% RPM)
    but its formula is only in a figure, and the model formula above has no bias term. The default
    `bias_mode="product"` multiplies probabilities,

        p(click | x, x_b) = f(x) * sigmoid(b(x_b)),

    the examination (position-bias) factorisation P(click) = P(click | seen) P(seen | position),
    which is also what DeepCTR's MLR (`bias_feature_columns`, citing this paper) computes.
    `bias_mode="logit"` adds it to the logit instead: logit(p) = logit(f(x)) + b(x_b).

    The returned logit is computed in log space, exactly and stably, without clipping f:
        log f     = logsumexp_i(log pi_i + log sigmoid(z_i)),
        log (1-f) = logsumexp_i(log pi_i + log sigmoid(-z_i))   (as 1 - f = sum_i pi_i (1 - eta_i)),
        logit f   = log f - log(1 - f)
    (and, for the product, log(1 - f g) = logaddexp(log(1-f), log f + log(1-g))). With m = 1 this
    is exactly w . x_f + w_0; a clipped f in [eps, 1 - eps] would cap the logit at about
    +-log(1/eps) and zero its gradient there.

    Regularisation: `l2_regularization` puts an L2 penalty (keras kernel_regularizer, added to the
    model's losses) on U, W and w_b. The paper's L1 and L2,1 norms (sparse models trained with
    its OWL-QN-like non-smooth optimiser) are not supported: keras' optimisers do not produce
    exact zeros, so they would only add cost.

    Weights: divide_kernel U (n_d, m), divide_bias u_0 (m), fit_kernel W (n_f, m), fit_bias w_0
    (m), and with three inputs bias_kernel w_b (n_b, 1), bias_offset c (1).

    Args:
      num_pieces: m, the number of pieces (regions); the seed uses 12.
      l2_regularization: L2 weight on the kernels U, W (and w_b).
      use_bias: learn the intercepts u_0 and w_0 (the paper's x carries a constant feature).
      bias_mode: "product" or "logit" (how b(x_b) joins; only with three inputs).

    Call args:
      inputs: x (batch, n), or [x_d (batch, n_d), x_f (batch, n_f)], or
        [x_d, x_f, x_b (batch, n_b)]; a 3-D input is flattened.

    Returns:
      (batch, 1): the logit of p(click).
    """

    def __init__(
        self,
        num_pieces: int = 12,
        l2_regularization: float = 0.0,
        use_bias: bool = True,
        bias_mode: str = "product",
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"MLR {self.name!r}"
        if isinstance(num_pieces, bool) or not isinstance(num_pieces, int) or num_pieces < 1:
            raise ConfigError(
                f"{what}: expected `num_pieces` to be a positive integer, received: "
                f"num_pieces={num_pieces!r}"
            )
        if l2_regularization is None or float(l2_regularization) < 0:
            raise ConfigError(
                f"{what}: expected `l2_regularization` >= 0, received: "
                f"l2_regularization={l2_regularization!r}"
            )
        if bias_mode not in _BIAS_MODES:
            raise ConfigError(
                f"{what}: expected `bias_mode` to be one of {', '.join(_BIAS_MODES)}, received: "
                f"bias_mode={bias_mode!r}"
            )
        self.num_pieces = num_pieces
        self.l2_regularization = float(l2_regularization)
        self.use_bias = bool(use_bias)
        self.bias_mode = bias_mode

    def _split(self, inputs: Any) -> list:
        what = f"MLR {self.name!r}"
        parts = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(parts) not in (1, 2, 3):
            raise ConfigError(
                f"{what}: expected x, or a list [divide_features, fit_features] or [divide, fit, "
                f"bias_features], received: a list of {len(parts)} inputs"
            )
        return parts

    def build(self, input_shape):
        what = f"MLR {self.name!r}"
        shapes = list(input_shape) if isinstance(input_shape, (list, tuple)) and input_shape and \
            isinstance(input_shape[0], (list, tuple)) else [input_shape]
        if len(shapes) not in (1, 2, 3):
            raise ConfigError(
                f"{what}: expected x, or a list [divide_features, fit_features] or [divide, fit, "
                f"bias_features], received: a list of {len(shapes)} inputs"
            )
        dims = []
        for name, s in zip(("divide", "fit", "bias"), shapes):
            if len(s) < 2 or any(n is None for n in s[1:]):
                raise ConfigError(
                    f"{what}: expected the {name} features as (batch, n) with n known, received "
                    f"shape {tuple(s)}"
                )
            n = 1
            for k in s[1:]:
                n *= int(k)
            dims.append(n)
        if len(dims) == 1:
            dims.append(dims[0])
        reg = keras.regularizers.L2(self.l2_regularization) if self.l2_regularization else None
        m = self.num_pieces
        self.divide_kernel = self.add_weight(
            shape=(dims[0], m), initializer="glorot_uniform", regularizer=reg, name="divide_kernel"
        )
        self.fit_kernel = self.add_weight(
            shape=(dims[1], m), initializer="glorot_uniform", regularizer=reg, name="fit_kernel"
        )
        self.divide_bias = self.fit_bias = None
        if self.use_bias:
            self.divide_bias = self.add_weight(shape=(m,), initializer="zeros", name="divide_bias")
            self.fit_bias = self.add_weight(shape=(m,), initializer="zeros", name="fit_bias")
        self.bias_kernel = self.bias_offset = None
        if len(shapes) == 3:
            self.bias_kernel = self.add_weight(
                shape=(dims[2], 1), initializer="glorot_uniform", regularizer=reg,
                name="bias_kernel",
            )
            self.bias_offset = self.add_weight(shape=(1,), initializer="zeros", name="bias_offset")

    def _flat(self, x: Any, what: str) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if x.shape.rank is None or x.shape.rank < 2:
            raise ConfigError(f"{what}: expected a (batch, n) input, received shape {x.shape}")
        if x.shape.rank > 2:
            x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
        if not x.dtype.is_floating:  # e.g. 0/1 indicator features
            x = tf.cast(x, self.compute_dtype)
        return x

    def call(self, inputs, training=None):
        what = f"MLR {self.name!r}"
        parts = [self._flat(p, what) for p in self._split(inputs)]
        if (len(parts) == 3) != (self.bias_kernel is not None):
            built = "[divide, fit, bias]" if self.bias_kernel is not None else \
                "inputs without bias features"
            raise ConfigError(f"{what}: built for {built}, received {len(parts)} inputs")
        x_d = parts[0]
        x_f = parts[1] if len(parts) > 1 else parts[0]
        gate = tf.matmul(x_d, self.divide_kernel)  # (batch, m)
        z = tf.matmul(x_f, self.fit_kernel)  # (batch, m)
        if self.use_bias:
            gate = gate + self.divide_bias
            z = z + self.fit_bias
        log_pi = tf.nn.log_softmax(gate, axis=-1)
        log_f = tf.reduce_logsumexp(log_pi + tf.math.log_sigmoid(z), axis=-1, keepdims=True)
        log_1mf = tf.reduce_logsumexp(log_pi + tf.math.log_sigmoid(-z), axis=-1, keepdims=True)
        if len(parts) < 3:
            return log_f - log_1mf
        b = tf.matmul(parts[2], self.bias_kernel) + self.bias_offset  # (batch, 1)
        if self.bias_mode == "logit":
            return log_f - log_1mf + b
        # p = f g: log p = log f + log g; 1 - p = (1 - f) + f (1 - g)
        log_p = log_f + tf.math.log_sigmoid(b)
        log_1mp = tf.reduce_logsumexp(
            tf.concat([log_1mf, log_f + tf.math.log_sigmoid(-b)], axis=-1), axis=-1, keepdims=True
        )
        return log_p - log_1mp

    def compute_output_shape(self, input_shape):
        if input_shape and isinstance(input_shape[0], (list, tuple)):
            return (input_shape[0][0], 1)
        return (input_shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_pieces=self.num_pieces,
            l2_regularization=self.l2_regularization,
            use_bias=self.use_bias,
            bias_mode=self.bias_mode,
        )
        return config

