"""PEPNet (Chang et al., KDD 2023): GateNU, EPNet, PPNet and PEPNet, each a block of its own.

- `GateNU`: gamma * sigmoid(W2 act(W1 x + b1) + b2); gamma = 2 by default, so a gate lies in
  (0, gamma) and can both damp and amplify (the paper's "gate neural unit").
- `EPNet` (embedding personalization): E' = GateNU([condition, stop_gradient(E)]) * E.
- `PPNet` (parameter personalization): gated MLP layers. Two forms:
  * EasyRec's (num_task = 0), config `ppnet { mlp {...} gate_params {...} mode full_gate_input }`
    with inputs [main, persona]: one tower, one gate per layer, "eager" or "lazy";
  * the paper's (num_task > 0): num_task towers personalised at once, one gate network per
    layer whose output is split across the tasks; returns a list of num_task tensors.
- `PEPNet`: EPNet then PPNet (paper form); inputs [E, domain embedding, persona embedding].

How EasyRec's PPNet config maps to the paper: EasyRec's `mlp` is one task tower's hidden
layers; `gate_params` is the gate network (the paper's GateNU with gamma = 2; EasyRec
hard-codes gamma, here `gate_params { gamma }` sets it); `full_gate_input: true` is the paper's
gate input [persona, stop_gradient(E)] (EasyRec concatenates in the other order); `mode: "lazy"`
is the paper's h_{i+1} = gate_i * act(Dense_i(h_i)) for every layer; `mode: "eager"` instead
gates each layer's input (the first gate has the input's width) and there is no gate after the
last layer. EasyRec's form has no EPNet and no multi-task split; `num_task > 0` (or the PEPNet
block) gives the paper's form.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import tensorflow as tf

from easyblocks.blocks.activations import get_activation
from easyblocks.blocks.inputs import expect_list
from easyblocks.blocks.mlp import MLP, per_layer
from easyblocks.blocks.normalization import BatchNorm
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError


def _check_shapes(input_shape, n: int, what: str, expected: str) -> None:
    ok = (
        isinstance(input_shape, (list, tuple))
        and len(input_shape) == n
        and all(isinstance(s, (list, tuple)) for s in input_shape)
    )
    if not ok:
        raise ConfigError(
            f"{what}: expected inputs {expected} (set `merge_inputs_into_list: true`), "
            f"received shape(s): {input_shape}"
        )


@register_block("GateNU", params="gate_nu")
class GateNU(keras.layers.Layer):
    """PEPNet's gate neural unit: gamma * sigmoid(W2 act(W1 x + b1) + b2).

    Also EasyRec's GateNN (PPNet's `gate_params`): with `use_bn` the hidden Dense has no bias and
    is followed by batch norm; `dropout_rate` applies after the hidden activation.

    Args:
      output_dim: output width (the width of what the gate multiplies).
      hidden_dim: hidden width; None: the input width.
      gamma: scale, > 0; outputs lie in (0, gamma).
      activation: hidden activation.
      dropout_rate: dropout after the hidden activation.
      use_bn: batch norm on the hidden layer.
      initializer: kernel initializer.

    Call args:
      inputs: (batch, d).

    Returns:
      (batch, output_dim).
    """

    def __init__(
        self,
        output_dim: int,
        hidden_dim: int | None = None,
        gamma: float = 2.0,
        activation: str = "relu",
        dropout_rate: float = 0.0,
        use_bn: bool = False,
        initializer: str = "he_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"GateNU {self.name!r}"
        if output_dim is None or int(output_dim) < 1:
            raise ConfigError(f"{what}: expected `output_dim` >= 1, received: {output_dim}")
        if hidden_dim is not None and int(hidden_dim) < 1:
            hidden_dim = None  # proto3-style 0 / unset: use the input width
        if not gamma > 0:
            raise ConfigError(f"{what}: expected `gamma` > 0, received: gamma={gamma}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ConfigError(
                f"{what}: expected 0 <= dropout_rate < 1, received: dropout_rate={dropout_rate}"
            )
        self.output_dim = int(output_dim)
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)
        self.gamma = float(gamma)
        self.activation = activation
        self.dropout_rate = float(dropout_rate)
        self.use_bn = bool(use_bn)
        self.initializer = initializer
        self._act = get_activation(activation)
        self.bn = BatchNorm(name="bn") if self.use_bn else None
        self.dropout = keras.layers.Dropout(self.dropout_rate) if self.dropout_rate else None
        self.output_dense = keras.layers.Dense(
            self.output_dim, kernel_initializer=initializer, name="output"
        )

    def build(self, input_shape):
        hidden = self.hidden_dim or int(input_shape[-1])
        self.hidden_dense = keras.layers.Dense(
            hidden, use_bias=not self.use_bn, kernel_initializer=self.initializer, name="hidden"
        )
        self.hidden_dense.build(input_shape)
        hidden_shape = tuple(input_shape[:-1]) + (hidden,)
        if self.bn is not None:
            self.bn.build(hidden_shape)
        self.output_dense.build(hidden_shape)

    def call(self, inputs, training=None):
        h = self.hidden_dense(inputs)
        if self.bn is not None:
            h = self.bn(h, training=training)
        if self._act is not None:
            h = self._act(h)
        if self.dropout is not None:
            h = self.dropout(h, training=training)
        return self.gamma * tf.sigmoid(self.output_dense(h))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_dim=self.output_dim,
            hidden_dim=self.hidden_dim,
            gamma=self.gamma,
            activation=self.activation,
            dropout_rate=self.dropout_rate,
            use_bn=self.use_bn,
            initializer=self.initializer,
        )
        return config


@register_block("EPNet", params="epnet")
class EPNet(keras.layers.Layer):
    """Embedding personalization network (PEPNet): E' = GateNU([c, stop_gradient(E)]) * E.

    The gate sees E but passes no gradient into it: E is trained only through E' (its gradient
    is exactly the gate value times the upstream gradient).

    Args:
      hidden_dim: hidden width of the gate; None: its input width dc + de.
      gamma: gate scale.

    Call args:
      inputs: [condition (batch, dc) (e.g. the domain embedding), E (batch, de)].

    Returns:
      (batch, de).
    """

    def __init__(self, hidden_dim: int | None = None, gamma: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = None if not hidden_dim else int(hidden_dim)
        self.gamma = float(gamma)
        if not self.gamma > 0:
            raise ConfigError(f"EPNet {self.name!r}: expected `gamma` > 0, received: gamma={gamma}")

    def build(self, input_shape):
        _check_shapes(input_shape, 2, f"EPNet {self.name!r}", "[condition, E]")
        self.gate = GateNU(
            int(input_shape[1][-1]), hidden_dim=self.hidden_dim, gamma=self.gamma, name="gate"
        )
        self.gate.build((None, int(input_shape[0][-1]) + int(input_shape[1][-1])))

    def call(self, inputs, training=None):
        cond, emb = expect_list(inputs, 2, f"EPNet {self.name!r}", "[condition, E]")
        gate = self.gate(tf.concat([cond, tf.stop_gradient(emb)], axis=-1), training=training)
        return gate * emb

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, gamma=self.gamma)
        return config


_MLP_ARGS = [p for p in inspect.signature(MLP.__init__).parameters if p not in ("self", "kwargs")]
_GATE_ARGS = [
    p for p in inspect.signature(GateNU.__init__).parameters if p not in ("self", "kwargs")
]


def _full_mlp_params(mlp: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """MLP kwargs with MLP's defaults filled in (so every layer can be built alike)."""
    if not mlp or not mlp.get("hidden_units"):
        raise ConfigError(f"{what}: expected `mlp {{ hidden_units: ... }}`, received: {mlp}")
    unknown = [k for k in mlp if k not in _MLP_ARGS]
    if unknown:
        raise ConfigError(
            f"{what}: unknown mlp parameter(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(_MLP_ARGS)}"
        )
    sig = inspect.signature(MLP.__init__)
    full = {k: p.default for k, p in sig.parameters.items() if k in _MLP_ARGS}
    full.update(mlp)
    units = full["hidden_units"]
    full["hidden_units"] = [int(u) for u in ([units] if isinstance(units, int) else units)]
    if any(u <= 0 for u in full["hidden_units"]):
        raise ConfigError(
            f"{what}: expected mlp `hidden_units` to be positive integers, received: {units}"
        )
    full["dropout_ratio"] = per_layer(full["dropout_ratio"], len(full["hidden_units"]), what)
    return full


def _layer_mlp(mlp: dict[str, Any], i: int, name: str) -> MLP:
    """Layer i of `mlp` as a one-layer MLP (the last layer takes the final_* settings)."""
    last = i == len(mlp["hidden_units"]) - 1
    return MLP(
        hidden_units=[mlp["hidden_units"][i]],
        dropout_ratio=mlp["dropout_ratio"][i],
        use_bn=mlp["use_bn"],
        use_final_bn=mlp["use_final_bn"] if last else mlp["use_bn"],
        activation=mlp["activation"],
        final_activation=mlp["final_activation"] if last else mlp["activation"],
        use_bias=mlp["use_bias"],
        use_final_bias=mlp["use_final_bias"] if last else mlp["use_bias"],
        initializer=mlp["initializer"],
        use_bn_after_activation=mlp["use_bn_after_activation"],
        l2_regularizer=mlp["l2_regularizer"],
        name=name,
    )


@register_block("PPNet", params="ppnet")
class PPNet(keras.layers.Layer):
    """Parameter personalization network (PEPNet), in EasyRec's form or the paper's.

    Each gated layer is one MLP layer (Dense -> [BN] -> activation -> [dropout], with `mlp`'s
    settings; its last layer uses the final_* ones). To get the paper's exact layer
    act(h W + b), set `mlp { use_bn: false use_final_bn: false use_bias: true
    use_final_bias: true }`. All gates read the same gate input, computed once from the block
    inputs: [stop_gradient(main), persona] in EasyRec's form, [persona, stop_gradient(main)] in
    the paper's (persona only when `full_gate_input` is false). Gates pass no gradient into main.

    EasyRec's form (num_task = 0), n = len(hidden_units) layers, n gates:
      * mode "eager" (default, as EasyRec's documented default): gate i multiplies the input
        of layer i; widths [d, u_0, ..., u_{n-2}] (the first gate has the input's width; a set
        `gate_params.output_dim` must equal it, as EasyRec requires).
      * mode "lazy": gate i multiplies the output of layer i (the last included); widths
        [u_0, ..., u_{n-1}]; `gate_params.output_dim` is ignored, as in EasyRec.
      Gate hidden width: `gate_params.hidden_dim`, else the gate's output width (EasyRec's).
      Note: EasyRec's typed-params PPNet ignored proto defaults, so an unset
      `final_activation` was linear there; here the MLP message's documented default (relu)
      applies, in both typed params and st_params.

    The paper's form (num_task = T > 0): one tower per task, each with its own layers;
    per layer i one GateNU with output width u_i * T (hidden width `gate_params.hidden_dim`,
    else u_i * T), split into T gates: h^t_{i+1} = gate_i^t * layer_i^t(h^t_i), h^t_0 = main.
    `mode` must be unset or "lazy".

    Args:
      mlp: the MLP parameters (dict of MLP's constructor arguments; `hidden_units` required).
      gate_params: GateNU parameters (gamma, hidden_dim, activation, dropout_rate, use_bn,
        initializer; output_dim only as above).
      mode: "eager" or "lazy" (EasyRec's form); None: "eager" (EasyRec) / "lazy" (paper).
      full_gate_input: feed stop_gradient(main) to the gates besides the persona.
      num_task: 0 for EasyRec's form; T > 0 for the paper's multi-task form.

    Call args:
      inputs: [main (batch, d), persona (batch, dp)].

    Returns:
      (batch, hidden_units[-1]) when num_task = 0, else a list of num_task such tensors.
    """

    def __init__(
        self,
        mlp: dict[str, Any],
        gate_params: dict[str, Any] | None = None,
        mode: str | None = None,
        full_gate_input: bool = True,
        num_task: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        what = f"PPNet {self.name!r}"
        self.mlp = _full_mlp_params(mlp, what)
        gate_params = dict(gate_params or {})
        unknown = [k for k in gate_params if k not in _GATE_ARGS]
        if unknown:
            raise ConfigError(
                f"{what}: unknown gate_params field(s) {', '.join(unknown)}; accepted: "
                f"{', '.join(_GATE_ARGS)}"
            )
        self.gate_params = gate_params
        self.num_task = int(num_task or 0)
        if self.num_task < 0:
            raise ConfigError(f"{what}: expected num_task >= 0, received: {num_task}")
        self.mode = mode or None
        resolved = (self.mode or ("lazy" if self.num_task else "eager")).lower()
        if resolved not in ("eager", "lazy"):
            raise ConfigError(
                f"{what}: expected mode 'eager' or 'lazy', received: mode={mode!r}"
            )
        if self.num_task and resolved != "lazy":
            raise ConfigError(
                f"{what}: the paper's form (num_task={self.num_task}) gates every layer's "
                f"output; expected mode unset or 'lazy', received: mode={mode!r}"
            )
        self._eager = resolved == "eager"
        self.full_gate_input = bool(full_gate_input)
        gamma = gate_params.get("gamma", 2.0)
        if not gamma > 0:
            raise ConfigError(f"{what}: expected gate_params gamma > 0, received: {gamma}")

    def _gate(self, width: int, name: str) -> GateNU:
        params = {k: v for k, v in self.gate_params.items() if k not in ("output_dim",)}
        params["hidden_dim"] = params.get("hidden_dim") or width
        return GateNU(output_dim=width, name=name, **params)

    def build(self, input_shape):
        what = f"PPNet {self.name!r}"
        _check_shapes(input_shape, 2, what, "[main, persona]")
        d = int(input_shape[0][-1])
        units = self.mlp["hidden_units"]
        n = len(units)
        if self.num_task == 0:
            if self._eager:
                out_dim = self.gate_params.get("output_dim")
                if out_dim and int(out_dim) != d:
                    raise ConfigError(
                        f"{what}: in eager mode the first gate multiplies the input, so "
                        f"gate_params.output_dim must equal the input width {d} (or be unset), "
                        f"received: output_dim={out_dim}"
                    )
                widths = [d] + units[:-1]
            else:
                widths = list(units)
            self.gates = [self._gate(w, f"gate_{i}") for i, w in enumerate(widths)]
            self.gated_layers = [_layer_mlp(self.mlp, i, f"layer_{i}") for i in range(n)]
            towers = [self.gated_layers]
        else:
            t = self.num_task
            self.gates = [self._gate(u * t, f"gate_{i}") for i, u in enumerate(units)]
            self.task_layers = [
                [_layer_mlp(self.mlp, i, f"task_{k}_layer_{i}") for i in range(n)]
                for k in range(t)
            ]
            towers = self.task_layers
        # build every weight now (also what Keras calls when it reloads a saved model)
        gate_width = int(input_shape[1][-1]) + (d if self.full_gate_input else 0)
        for gate in self.gates:
            gate.build((None, gate_width))
        for tower in towers:
            for layer, width in zip(tower, [d] + units[:-1]):
                layer(keras.KerasTensor((None, width)))  # a symbolic call builds the MLP

    def call(self, inputs, training=None):
        main, persona = expect_list(inputs, 2, f"PPNet {self.name!r}", "[main, persona]")
        if self.num_task == 0:
            gate_in = (
                tf.concat([tf.stop_gradient(main), persona], axis=-1)
                if self.full_gate_input else persona
            )
            x = main
            for gate, layer in zip(self.gates, self.gated_layers):
                if self._eager:
                    x = x * gate(gate_in, training=training)
                    x = layer(x, training=training)
                else:
                    x = layer(x, training=training)
                    x = x * gate(gate_in, training=training)
            return x
        gate_in = (
            tf.concat([persona, tf.stop_gradient(main)], axis=-1)
            if self.full_gate_input else persona
        )
        splits = [
            tf.split(gate(gate_in, training=training), self.num_task, axis=-1)
            for gate in self.gates
        ]
        outputs = []
        for k, layers in enumerate(self.task_layers):
            h = main
            for i, layer in enumerate(layers):
                h = splits[i][k] * layer(h, training=training)
            outputs.append(h)
        return outputs

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0][:-1]) + (self.mlp["hidden_units"][-1],)
        return shape if self.num_task == 0 else [shape] * self.num_task

    def get_config(self):
        config = super().get_config()
        config.update(
            mlp=dict(self.mlp),
            gate_params=dict(self.gate_params),
            mode=self.mode,
            full_gate_input=self.full_gate_input,
            num_task=self.num_task,
        )
        return config


@register_block("PEPNet", params="pepnet")
class PEPNet(keras.layers.Layer):
    """PEPNet: EPNet on the embeddings, then the paper's multi-task PPNet.

    E' = EPNet([domain embedding, E]); outputs = PPNet([E', persona]) with num_task towers,
    whose gates read [persona, stop_gradient(E')] (the paper's PPNet gate input).

    Args:
      mlp: each task tower's MLP parameters (see PPNet).
      num_task: number of task towers (>= 1).
      epnet_hidden_dim: hidden width of the EPNet gate; None: its input width.
      ppnet_hidden_dim: hidden width of the PPNet gates; None: each gate's output width.
      gamma: gamma of every gate.

    Call args:
      inputs: [E (batch, de), domain embedding (batch, dc), persona embedding (batch, dp)].

    Returns:
      a list of num_task tensors (batch, mlp.hidden_units[-1]).
    """

    def __init__(
        self,
        mlp: dict[str, Any],
        num_task: int = 1,
        epnet_hidden_dim: int | None = None,
        ppnet_hidden_dim: int | None = None,
        gamma: float = 2.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_task is None or int(num_task) < 1:
            raise ConfigError(
                f"PEPNet {self.name!r}: expected num_task >= 1, received: num_task={num_task}"
            )
        self.num_task = int(num_task)
        self.epnet_hidden_dim = None if not epnet_hidden_dim else int(epnet_hidden_dim)
        self.ppnet_hidden_dim = None if not ppnet_hidden_dim else int(ppnet_hidden_dim)
        self.gamma = float(gamma)
        self.epnet = EPNet(hidden_dim=self.epnet_hidden_dim, gamma=self.gamma, name="epnet")
        gate_params: dict[str, Any] = {"gamma": self.gamma}
        if self.ppnet_hidden_dim:
            gate_params["hidden_dim"] = self.ppnet_hidden_dim
        self.ppnet = PPNet(
            mlp=mlp, gate_params=gate_params, num_task=self.num_task, name="ppnet"
        )
        self.mlp = self.ppnet.mlp

    def build(self, input_shape):
        _check_shapes(
            input_shape, 3, f"PEPNet {self.name!r}", "[E, domain embedding, persona embedding]"
        )
        e_shape, domain_shape, persona_shape = input_shape
        self.epnet.build([domain_shape, e_shape])
        self.ppnet.build([e_shape, persona_shape])

    def call(self, inputs, training=None):
        emb, domain, persona = expect_list(
            inputs, 3, f"PEPNet {self.name!r}", "[E, domain embedding, persona embedding]"
        )
        personalised = self.epnet([domain, emb], training=training)
        return self.ppnet([personalised, persona], training=training)

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0][:-1]) + (self.mlp["hidden_units"][-1],)] * self.num_task

    def get_config(self):
        config = super().get_config()
        config.update(
            mlp=dict(self.mlp),
            num_task=self.num_task,
            epnet_hidden_dim=self.epnet_hidden_dim,
            ppnet_hidden_dim=self.ppnet_hidden_dim,
            gamma=self.gamma,
        )
        return config
