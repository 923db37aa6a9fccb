"""MaskNet (Wang et al., DLP-KDD 2021, "MaskNet: Introducing Feature-Wise Multiplication to CTR
Ranking Models by Instance-Guided Mask"): MaskBlock and MaskNet, as EasyRec configures them.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


def _widths(input_shape: Any) -> tuple[int | None, int | None]:
    """(input width, mask input width) from one shape or a list [net, mask input]."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        if len(input_shape) != 2:
            return None, None
        net, mask = input_shape
    else:
        net = mask = input_shape
    if len(net) != 2 or len(mask) != 2:
        return None, None
    return net[-1], mask[-1]


@register_block("MaskBlock", params="mask_block")
class MaskBlock(keras.layers.Layer):
    """MaskNet's MaskBlock (paper section 3.2-3.3, eq. 1-2 and 7-9).

    The instance-guided mask, from the mask input m (the embedding layer in the paper):

        mask = W_2 relu(W_1 [P] m + b_1) + b_2         (batch, d)   (aggregation, projection)
        V    = LN(x) * mask                             (input LayerNorm: `input_layer_norm`)
        out  = relu(LN(W_3 V))                          (with `output_size`; else out = V)

    W_1 has `aggregation_size` units (or the mask input's width times `reduction_factor`),
    he_uniform; P (no bias) is the optional low-rank projection to `projection_dim`; W_3 has
    `output_size` units and no bias.

    Args:
      reduction_factor: aggregation width = mask input width x reduction_factor (takes
        precedence over aggregation_size, as in EasyRec).
      output_size: width of the output layer; None: output the masked input V.
      aggregation_size: aggregation width.
      input_layer_norm: LayerNorm x first (EasyRec advises doing it once before the block).
      projection_dim: width of P; None: no projection.

    Call args:
      inputs: x (batch, d) (then m = x), or a list [x (batch, d), m (batch, d_m)].

    Returns:
      (batch, output_size), or (batch, d) without output_size.
    """

    def __init__(self, reduction_factor: float | None = None, output_size: int | None = None,
                 aggregation_size: int | None = None, input_layer_norm: bool = False,
                 projection_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        what = f"MaskBlock {self.name!r}"
        if reduction_factor is None and not aggregation_size:
            raise ConfigError(f"{what}: set `aggregation_size` or `reduction_factor` (the width "
                              "of the mask's aggregation layer)")
        if reduction_factor is not None and reduction_factor <= 0:
            raise ConfigError(f"{what}: expected a positive `reduction_factor`, received: "
                              f"reduction_factor={reduction_factor}")
        for key, value in (("output_size", output_size), ("projection_dim", projection_dim)):
            if value is not None and int(value) <= 0:
                raise ConfigError(f"{what}: expected `{key}` to be a positive integer or unset, "
                                  f"received: {key}={value}")
        self.reduction_factor = None if reduction_factor is None else float(reduction_factor)
        self.output_size = None if output_size is None else int(output_size)
        self.aggregation_size = None if aggregation_size is None else int(aggregation_size)
        self.input_layer_norm = bool(input_layer_norm)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.input_ln = keras.layers.LayerNormalization(name="input_ln") \
            if self.input_layer_norm else None
        self.project_layer = keras.layers.Dense(self.projection_dim, use_bias=False,
                                                name="project") if self.projection_dim else None
        self.aggr_layer = None
        self.weight_layer = None
        self.output_layer = None
        self.output_ln = None
        if self.output_size:
            self.output_layer = keras.layers.Dense(self.output_size, use_bias=False,
                                                   name="output")
            self.output_ln = keras.layers.LayerNormalization(name="output_ln")

    def build(self, input_shape):
        d, dm = _widths(input_shape)
        if d is None or dm is None:
            return  # call() reports the bad inputs as a ConfigError
        d, dm = int(d), int(dm)
        if self.reduction_factor is not None:
            aggregation = int(dm * self.reduction_factor)
            if aggregation <= 0:
                raise ConfigError(f"MaskBlock {self.name!r}: reduction_factor "
                                  f"{self.reduction_factor} x mask input width {dm} leaves no "
                                  "aggregation unit")
        else:
            aggregation = self.aggregation_size
        if self.input_ln is not None:
            self.input_ln.build((None, d))
        width = dm
        if self.project_layer is not None:
            self.project_layer.build((None, dm))
            width = self.projection_dim
        self.aggr_layer = keras.layers.Dense(aggregation, activation="relu",
                                             kernel_initializer="he_uniform", name="aggregation")
        self.aggr_layer.build((None, width))
        self.weight_layer = keras.layers.Dense(d, name="weights")
        self.weight_layer.build((None, aggregation))
        if self.output_layer is not None:
            self.output_layer.build((None, d))
            self.output_ln.build((None, self.output_size))

    def call(self, inputs, training=None):
        what = f"MaskBlock {self.name!r}"
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise ConfigError(f"{what}: expected one tensor (batch, d) or a list [input, "
                                  f"mask input], received: a list of {len(inputs)} inputs")
            x, m = inputs
        else:
            x = m = inputs
        if self.weight_layer is None or x.shape.rank != 2 or m.shape.rank != 2:
            raise ConfigError(f"{what}: expected (batch, d) inputs, received shapes "
                              f"{tuple(x.shape)} and {tuple(m.shape)}")
        if self.input_ln is not None:
            x = self.input_ln(x)
        if self.project_layer is not None:
            m = self.project_layer(m)
        masked = x * self.weight_layer(self.aggr_layer(m))
        if self.output_layer is None:
            return masked
        return tf.nn.relu(self.output_ln(self.output_layer(masked)))

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return (shape[0], self.output_size or shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(reduction_factor=self.reduction_factor, output_size=self.output_size,
                      aggregation_size=self.aggregation_size,
                      input_layer_norm=self.input_layer_norm, projection_dim=self.projection_dim)
        return config


@register_block("MaskNet", params="masknet")
class MaskNet(keras.layers.Layer):
    """MaskNet: MaskBlocks on the (LayerNorm-ed) input, in parallel or in series, then an MLP.

        e = LN(x)                                             (`input_layer_norm`)
        parallel: h = concat_k MaskBlock_k(e, e)              (the paper's ParaMaskNet)
        serial:   h_0 = e, h_k = MaskBlock_k(h_(k-1), e)      (SerMaskNet)
        out = MLP(h)                                          (if `mlp` is set)

    Args:
      mask_blocks: one dict of MaskBlock parameters per block (see `MaskBlock`).
      use_parallel: parallel (default) or serial.
      mlp: MLP's parameters (see `easyblocks.blocks.mlp.MLP`), or None.
      input_layer_norm: LayerNorm the input once, first.

    Call args:
      inputs: (batch, d).

    Returns:
      (batch, mlp.hidden_units[-1]); without mlp (batch, sum of the blocks' widths) when
      parallel, the last block's width when serial.
    """

    def __init__(self, mask_blocks: list[dict[str, Any]] | None = None, use_parallel: bool = True,
                 mlp: dict[str, Any] | None = None, input_layer_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        what = f"MaskNet {self.name!r}"
        self.mask_block_kwargs = [dict(b) for b in mask_blocks or []]
        if not self.mask_block_kwargs:
            raise ConfigError(f"{what}: expected at least one `mask_blocks {{ ... }}`")
        self.use_parallel = bool(use_parallel)
        self.mlp_kwargs = None if mlp is None else dict(mlp)
        self.input_layer_norm = bool(input_layer_norm)
        try:
            self.blocks = [MaskBlock(name=f"block_{i}", **b)
                           for i, b in enumerate(self.mask_block_kwargs)]
            self.mlp = None if mlp is None else MLP(name="mlp", **self.mlp_kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{what}: bad parameters: {e}") from None
        self.input_ln = keras.layers.LayerNormalization(name="input_ln") \
            if self.input_layer_norm else None

    def _block_widths(self, d: int) -> list[int]:
        widths, net = [], d
        for block in self.blocks:
            net = block.output_size or (d if self.use_parallel else net)
            widths.append(net)
        return widths

    def build(self, input_shape):
        if isinstance(input_shape[0], (list, tuple)) or len(input_shape) != 2 \
                or input_shape[-1] is None:
            return  # call() reports the bad input
        d = int(input_shape[-1])
        if self.input_ln is not None:
            self.input_ln.build((None, d))
        widths = self._block_widths(d)
        net = d
        for block, width in zip(self.blocks, widths):
            block.build([(None, d if self.use_parallel else net), (None, d)])
            net = width
        if self.mlp is not None:
            # MLP has no build(): a symbolic call creates its weights, as Keras would
            self.mlp(keras.KerasTensor((None, sum(widths) if self.use_parallel else net)))

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)) or inputs.shape.rank != 2:
            raise ConfigError(f"MaskNet {self.name!r}: expected one (batch, d) tensor, received "
                              f"{'a list' if isinstance(inputs, (list, tuple)) else inputs.shape}")
        x = self.input_ln(inputs) if self.input_ln is not None else inputs
        if self.use_parallel:
            net = tf.concat([block([x, x]) for block in self.blocks], axis=-1)
        else:
            net = x
            for block in self.blocks:
                net = block([net, x])
        return self.mlp(net, training=training) if self.mlp is not None else net

    def compute_output_shape(self, input_shape):
        if self.mlp is not None:
            return (input_shape[0], self.mlp.hidden_units[-1])
        widths = self._block_widths(input_shape[-1]) if input_shape[-1] is not None else None
        if widths is None:
            return (input_shape[0], None)
        return (input_shape[0], sum(widths) if self.use_parallel else widths[-1])

    def get_config(self):
        config = super().get_config()
        config.update(mask_blocks=[dict(b) for b in self.mask_block_kwargs],
                      use_parallel=self.use_parallel, mlp=self.mlp_kwargs,
                      input_layer_norm=self.input_layer_norm)
        return config
