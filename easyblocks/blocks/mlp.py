"""MLP: EasyRec's multi-layer perceptron block (same fields and defaults)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.normalization import BatchNorm
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


def per_layer(values: Sequence[float] | float | None, n: int, what: str) -> list[float]:
    """Expands one value (or none) to n layers; a list must have one value per layer."""
    if values is None:
        return [0.0] * n
    if isinstance(values, (int, float)):
        return [float(values)] * n
    values = list(values)
    if len(values) == 0:
        return [0.0] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ConfigError(f"{what}: expected 1 or {n} values (one per layer), got {len(values)}")
    return values


@register_block("MLP", params="mlp")
class MLP(keras.layers.Layer):
    """Dense layers, each: Dense -> [BatchNorm] -> activation -> [Dropout].

    The last layer uses `use_final_bn`, `final_activation` and `use_final_bias`;
    the others `use_bn`, `activation` and `use_bias`. With
    `use_bn_after_activation` the batch norm comes after the activation.

    Args:
      hidden_units: width of each layer.
      dropout_ratio: one rate for every layer, or one per layer.
      activation, final_activation: activation names ('relu', 'linear', ...).
      use_bn, use_final_bn, use_bias, use_final_bias: as in EasyRec.
      initializer: kernel initializer name.
      l2_regularizer: L2 weight on every kernel (added to the model's losses).

    Input shape (batch, d); output shape (batch, hidden_units[-1]).
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        dropout_ratio: Sequence[float] | float | None = None,
        activation: str = "relu",
        use_bn: bool = True,
        use_final_bn: bool = True,
        final_activation: str = "relu",
        use_bias: bool = False,
        use_final_bias: bool = False,
        initializer: str = "he_uniform",
        use_bn_after_activation: bool = False,
        l2_regularizer: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(hidden_units, int):
            hidden_units = [hidden_units]
        hidden_units = [int(u) for u in hidden_units]
        if not hidden_units or any(u <= 0 for u in hidden_units):
            raise ConfigError(
                f"MLP {self.name!r}: expected `hidden_units` to be positive integers, "
                f"received: {hidden_units}"
            )
        self.hidden_units = hidden_units
        self.dropout_ratio = per_layer(dropout_ratio, len(hidden_units), f"MLP {self.name!r}")
        self.activation = activation
        self.use_bn = use_bn
        self.use_final_bn = use_final_bn
        self.final_activation = final_activation
        self.use_bias = use_bias
        self.use_final_bias = use_final_bias
        self.initializer = initializer
        self.use_bn_after_activation = use_bn_after_activation
        self.l2_regularizer = l2_regularizer

        hidden_act, final_act = get_activation(activation), get_activation(final_activation)
        regularizer = keras.regularizers.L2(l2_regularizer) if l2_regularizer else None
        self.dense_layers, self.bn_layers, self.activations, self.dropouts = [], [], [], []
        last = len(hidden_units) - 1
        for i, units in enumerate(hidden_units):
            self.dense_layers.append(
                keras.layers.Dense(
                    units,
                    use_bias=use_final_bias if i == last else use_bias,
                    kernel_initializer=initializer,
                    kernel_regularizer=regularizer,
                    name=f"dense_{i}",
                )
            )
            bn = use_final_bn if i == last else use_bn
            self.bn_layers.append(BatchNorm(name=f"bn_{i}") if bn else None)
            self.activations.append(final_act if i == last else hidden_act)
            rate = self.dropout_ratio[i]
            self.dropouts.append(keras.layers.Dropout(rate, name=f"dropout_{i}") if rate else None)

    def build(self, input_shape):
        """Creates every layer's weights from the input width, layer by layer, so that Keras
        need not trace `call` symbolically to build them (one trace per MLP block)."""
        shape = tuple(input_shape)
        for dense, bn in zip(self.dense_layers, self.bn_layers):
            dense.build(shape)
            shape = shape[:-1] + (dense.units,)
            if bn is not None:
                bn.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for dense, bn, act, drop in zip(
            self.dense_layers, self.bn_layers, self.activations, self.dropouts
        ):
            x = dense(x)
            if bn is not None and not self.use_bn_after_activation:
                x = bn(x, training=training)
            if act is not None:
                x = act(x)
            if bn is not None and self.use_bn_after_activation:
                x = bn(x, training=training)
            if drop is not None:
                x = drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.hidden_units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=self.hidden_units,
            dropout_ratio=self.dropout_ratio,
            activation=self.activation,
            use_bn=self.use_bn,
            use_final_bn=self.use_final_bn,
            final_activation=self.final_activation,
            use_bias=self.use_bias,
            use_final_bias=self.use_final_bias,
            initializer=self.initializer,
            use_bn_after_activation=self.use_bn_after_activation,
            l2_regularizer=self.l2_regularizer,
        )
        return config
