"""Gated mixing blocks: Highway (Srivastava et al. 2015) and Gate (a weighted sum of inputs,
the gate of EasyRec's CDN sample)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


@register_block("Highway", params="highway")
class Highway(keras.layers.Layer):
    """Highway network (Srivastava et al. 2015, "Highway Networks", eq. 3), as in EasyRec:

        x   = P x                                   (Dense(emb_size), when emb_size != d)
        t   = sigmoid(W_T x + b_T)                  (the transform gate; b_T starts at
                                                     init_gate_bias, so at first x is carried)
        x   = t * dropout(act(W_H x + b_H)) + (1 - t) * x        (num_layers times)

    Args:
      emb_size: width of the layers; None (or the input width): no projection.
      activation: of the transform H ("relu").
      dropout_rate: dropout on H's output (training only).
      init_gate_bias: initial gate bias (-3: sigmoid = 0.047).
      num_layers: number of highway layers.

    Call args:
      inputs: (batch, d).

    Returns:
      (batch, emb_size or d).
    """

    def __init__(self, emb_size: int | None = None, activation: str = "relu",
                 dropout_rate: float = 0.0, init_gate_bias: float = -3.0, num_layers: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        what = f"Highway {self.name!r}"
        if emb_size is not None and int(emb_size) <= 0:
            raise ConfigError(f"{what}: expected `emb_size` to be a positive integer or unset, "
                              f"received: emb_size={emb_size}")
        if int(num_layers) <= 0:
            raise ConfigError(f"{what}: expected a positive `num_layers`, received: "
                              f"num_layers={num_layers}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ConfigError(f"{what}: expected `dropout_rate` in [0, 1), received: "
                              f"dropout_rate={dropout_rate}")
        self.emb_size = None if emb_size is None else int(emb_size)
        self.activation = activation
        self.dropout_rate = float(dropout_rate)
        self.init_gate_bias = float(init_gate_bias)
        self.num_layers = int(num_layers)
        try:
            self._act = get_activation(activation)
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}") from None
        self.dropout = keras.layers.Dropout(self.dropout_rate) if self.dropout_rate else None
        self.project = None
        self.gates: list = []
        self.transforms: list = []

    def build(self, input_shape):
        if isinstance(input_shape[0], (list, tuple)) or len(input_shape) != 2 \
                or input_shape[-1] is None:
            return  # call() reports the bad input
        d = int(input_shape[-1])
        if self.emb_size is not None and self.emb_size != d:
            self.project = keras.layers.Dense(self.emb_size, name="input_projection")
            self.project.build((None, d))
            d = self.emb_size
        for i in range(self.num_layers):
            gate = keras.layers.Dense(
                d, activation="sigmoid",
                bias_initializer=keras.initializers.Constant(self.init_gate_bias),
                name=f"gate_{i}")
            transform = keras.layers.Dense(d, name=f"transform_{i}")
            gate.build((None, d))
            transform.build((None, d))
            self.gates.append(gate)
            self.transforms.append(transform)

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)) or inputs.shape.rank != 2 or not self.gates:
            raise ConfigError(f"Highway {self.name!r}: expected one (batch, d) tensor, received "
                              f"{'a list' if isinstance(inputs, (list, tuple)) else inputs.shape}")
        x = self.project(inputs) if self.project is not None else inputs
        for gate, transform in zip(self.gates, self.transforms):
            t = gate(x)
            h = transform(x)
            if self._act is not None:
                h = self._act(h)
            if self.dropout is not None:
                h = self.dropout(h, training=training)
            x = t * h + (1.0 - t) * x
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.emb_size or input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(emb_size=self.emb_size, activation=self.activation,
                      dropout_rate=self.dropout_rate, init_gate_bias=self.init_gate_bias,
                      num_layers=self.num_layers)
        return config


@register_block("Gate", params="gate")
class Gate(keras.layers.Layer):
    """Weighted sum of inputs by the weights another input gives (EasyRec's Gate, used by its
    Cross Decoupling Network sample to mix experts):

        w = inputs[weight_index]                   (batch, n): e.g. an MLP with a softmax
        out = MLP( sum_j w[:, j] * x_j )           x_j the other n inputs, in order

    Args:
      weight_index: which input holds the weights.
      mlp: MLP's parameters (see `easyblocks.blocks.mlp.MLP`) applied to the sum, or None.

    Call args:
      inputs: a list of n + 1 tensors: the weights (batch, n) and n tensors of one shape
        (batch, d) (`merge_inputs_into_list: true`, or inputs that are lists).

    Returns:
      (batch, d), or (batch, mlp.hidden_units[-1]).
    """

    def __init__(self, weight_index: int = 0, mlp: dict[str, Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.weight_index = int(weight_index)
        self.mlp_kwargs = None if mlp is None else dict(mlp)
        try:
            self.mlp = None if mlp is None else MLP(name="mlp", **self.mlp_kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"Gate {self.name!r}: bad `mlp` parameters: {e}") from None

    def _split(self, items: list) -> tuple[Any, list]:
        what = f"Gate {self.name!r}"
        if len(items) < 2 or not 0 <= self.weight_index < len(items):
            raise ConfigError(f"{what}: expected a list of the weights and at least one input, "
                              f"with the weights at weight_index={self.weight_index}, received "
                              f"{len(items)} input(s)")
        others = [x for i, x in enumerate(items) if i != self.weight_index]
        return items[self.weight_index], others

    def build(self, input_shape):
        if not (input_shape and isinstance(input_shape[0], (list, tuple))):
            return  # call() reports the bad input
        weights, others = self._split(list(input_shape))
        what = f"Gate {self.name!r}"
        if len(weights) != 2 or weights[-1] not in (None, len(others)):
            raise ConfigError(f"{what}: the weights input must be (batch, {len(others)}) (one "
                              f"weight per other input), received {tuple(weights)}")
        if len({tuple(s[1:]) for s in others}) != 1:
            raise ConfigError(f"{what}: the weighted inputs must have one shape, received "
                              f"{[tuple(s) for s in others]}")
        if self.mlp is not None and others[0][-1] is not None:
            # MLP has no build(): a symbolic call creates its weights, as Keras would
            self.mlp(keras.KerasTensor((None, int(others[0][-1]))))

    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)):
            raise ConfigError(f"Gate {self.name!r}: expected a list of inputs (the weights and "
                              "the tensors to mix), received one tensor")
        weights, others = self._split(list(inputs))
        out = tf.add_n([weights[:, j:j + 1] * x for j, x in enumerate(others)])
        return self.mlp(out, training=training) if self.mlp is not None else out

    def compute_output_shape(self, input_shape):
        _, others = self._split(list(input_shape))
        if self.mlp is not None:
            return (others[0][0], self.mlp.hidden_units[-1])
        return tuple(others[0])

    def get_config(self):
        config = super().get_config()
        config.update(weight_index=self.weight_index, mlp=self.mlp_kwargs)
        return config
