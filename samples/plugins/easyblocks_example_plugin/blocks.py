"""GatedResidual: the gated residual network (GRN) of Temporal Fusion Transformers.

Lim, Arik, Loeff, Pfister, "Temporal Fusion Transformers for Interpretable Multi-horizon
Time Series Forecasting" (2019), eq. 2-5, without the context vector:

    eta2 = ELU(W2 x + b2)
    eta1 = W1 eta2 + b1                          (dropout on eta1 while training)
    GLU(eta1) = sigmoid(W4 eta1 + b4) * (W5 eta1 + b5)
    y = LayerNorm(skip(x) + GLU(eta1))

skip(x) is x itself when x already has `units` features, else a linear projection of x.
The gate lets the block fall back to (a projection of) its input where the nonlinear
part does not help.

With `gate_l1 > 0` the block adds gate_l1 * mean(sigmoid(W4 eta1 + b4)) with `add_loss`,
an L1 penalty on the gate (which is positive): it pushes the block towards its skip path
unless the nonlinear part pays for itself. easyblocks reports such a term under its own
name, `loss/<block name>`, and adds it to `loss/total`.
"""

from __future__ import annotations

import keras
from keras import ops

from easyblocks import register_block


@register_block  # registered as "GatedResidual" (the class name)
class GatedResidual(keras.layers.Layer):
    """Gated residual network block: (batch, d) -> (batch, units).

    Args:
      units: output width.
      hidden_units: width of eta2 / eta1 (default: units).
      dropout: dropout rate on eta1 while training.
      gate_l1: weight of the block's own loss term, the mean gate value.
    """

    def __init__(self, units: int, hidden_units: int | None = None, dropout: float = 0.0,
                 gate_l1: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"units must be positive, got {units}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.units = int(units)
        self.hidden_units = int(hidden_units) if hidden_units else self.units
        self.dropout = float(dropout)
        self.gate_l1 = float(gate_l1)
        self.eta2 = keras.layers.Dense(self.hidden_units, activation="elu", name="eta2")
        self.eta1 = keras.layers.Dense(self.hidden_units, name="eta1")
        self.drop = keras.layers.Dropout(self.dropout)
        self.gate = keras.layers.Dense(self.units, activation="sigmoid", name="gate")
        self.value = keras.layers.Dense(self.units, name="value")
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.skip = None

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"GatedResidual needs a known input width, got {input_shape}")
        if input_shape[-1] != self.units:
            self.skip = keras.layers.Dense(self.units, use_bias=False, name="skip")
            self.skip.build(input_shape)
        self.eta2.build(input_shape)
        hidden_shape = (*input_shape[:-1], self.hidden_units)
        self.eta1.build(hidden_shape)
        self.gate.build(hidden_shape)
        self.value.build(hidden_shape)
        self.norm.build((*input_shape[:-1], self.units))

    def call(self, x, training=None):
        eta1 = self.drop(self.eta1(self.eta2(x)), training=training)
        skip = x if self.skip is None else self.skip(x)
        gate = self.gate(eta1)
        if self.gate_l1:
            self.add_loss(self.gate_l1 * ops.mean(gate))
        return self.norm(skip + gate * self.value(eta1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "hidden_units": self.hidden_units,
                "dropout": self.dropout, "gate_l1": self.gate_l1}
