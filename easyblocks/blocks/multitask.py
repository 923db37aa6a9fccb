"""Multi-task blocks: AITMTower (Xi et al., KDD 2021) and MMoE (Ma et al., KDD 2018)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import register_block
from easyblocks.errors import ConfigError, suggest

AITM_MODES = ("paper", "easyrec")


def _as_list(inputs: Any) -> list:
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _is_shape_list(input_shape: Any) -> bool:
    """True when input_shape is a list of shapes (the layer got a list of tensors)."""
    return isinstance(input_shape, (list, tuple)) and bool(input_shape) and isinstance(
        input_shape[0], (list, tuple)
    )


def _build_child(layer: keras.layers.Layer, shape: tuple) -> None:
    """Builds a sub-layer for an input shape, creating its weights now.

    A layer without its own build() (such as MLP) is built by a symbolic call, as Keras does
    when it builds such a layer itself; calling its default build() would create nothing.
    """
    if layer.built:
        return
    layer(keras.KerasTensor(tuple(shape)))


def _mlp_width(mlp_kwargs: dict[str, Any]) -> int:
    units = mlp_kwargs.get("hidden_units") or []
    if isinstance(units, int):
        return int(units)
    return int(list(units)[-1]) if units else 0


@register_block("AITMTower", params="aitm")
class AITMTower(keras.layers.Layer):
    """AITM's Adaptive Information Transfer module (Xi et al., KDD 2021).

    Inputs (a list; configure the block with `merge_inputs_into_list: true`), in this order:
    this task's tower output q_t, shape (batch, d), then the outputs of the preceding tasks'
    towers, shapes (batch, d_j). One preceding task is the usual case (the paper's).

    Information transfer: each preceding representation is mapped by
    p_j = transfer_j(x_j). `transfer_mlp` configures it (an MLP, see easyblocks.blocks.mlp);
    unset, it is one Dense(d) + ReLU with bias, as in the paper's code (mode "paper"). Every
    preceding task gets its OWN transfer network (same configuration, separate weights): the
    preceding tasks are different tasks, and their widths may differ. EasyRec shares one transfer
    MLP between all preceding tasks; with the usual single predecessor the two are the same.

    mode "paper" (default; the paper's AIT module and its reference code): the candidates are
    u in {q_t, p_1, ..., p_n}; three projections h1, h2, h3 (Dense, d -> d', no bias) are shared
    by all candidates; each candidate scores itself,
        w_u = softmax_u(<h1(u), h2(u)> / sqrt(d')),
        z = sum_u w_u * h3(u).
    Because the projections are shared, every p_j must have q_t's width d: a `transfer_mlp`
    whose last width differs from d is a ConfigError at build time.

    mode "easyrec" (EasyRec's `AITMTower`): every input position i has its own Q_i, K_i, V_i
    (Dense, d_i -> d', with bias) and the own tower is the only query (cross-attention):
        a_j = softmax_j(<Q_0(q_t), K_j(c_j)> / sqrt(d')),   z = sum_j a_j * V_j(c_j),
    with c_0 = q_t and c_j = p_j. As in EasyRec, an unset `transfer_mlp` means no transfer
    (p_j = x_j), and the widths need not match.

    stop_gradient (default false, as the paper): true applies stop_gradient to each preceding
    representation x_j BEFORE the transfer, so this block's loss does not update the preceding
    tasks' towers (the transfer network and the projections still train). The forward value is
    unchanged. EasyRec defaults it to true; set `stop_gradient: true` to match an EasyRec model.

    Args:
      transfer_mlp: MLP kwargs (a dict, as from the `MLP` proto message) for the transfer
        network, or None for the default described above.
      project_dim: d', the width of the projections and of the output; 0 means d (q_t's width).
      stop_gradient: block the gradient into the preceding tasks' inputs.
      mode: "paper" or "easyrec" (see above).

    Output shape: (batch, d').
    """

    def __init__(
        self,
        transfer_mlp: dict[str, Any] | None = None,
        project_dim: int = 0,
        stop_gradient: bool = False,
        mode: str = "paper",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in AITM_MODES:
            raise ConfigError(
                f"AITMTower {self.name!r}: expected `mode` to be one of {', '.join(AITM_MODES)}"
                f"{suggest(str(mode), AITM_MODES)}, received: mode={mode!r}"
            )
        if project_dim is None or int(project_dim) < 0:
            raise ConfigError(
                f"AITMTower {self.name!r}: expected `project_dim` >= 0 (0: the own input's "
                f"width), received: project_dim={project_dim}"
            )
        if transfer_mlp is not None and not isinstance(transfer_mlp, dict):
            raise ConfigError(
                f"AITMTower {self.name!r}: expected `transfer_mlp` to be MLP parameters "
                f"(a dict), received: {transfer_mlp!r}"
            )
        self.transfer_mlp = dict(transfer_mlp) if transfer_mlp is not None else None
        self.project_dim = int(project_dim)
        self.stop_gradient = bool(stop_gradient)
        self.mode = mode
        # created in build(): their number and widths depend on the inputs
        self.transfers: list = []
        self.projections: list = []  # paper: [h1, h2, h3]
        self.queries: list = []  # easyrec: one per input position (only index 0 is used)
        self.keys: list = []
        self.values: list = []

    def _check_shapes(self, input_shape) -> list[tuple]:
        if not _is_shape_list(input_shape) or len(input_shape) < 2:
            raise ConfigError(
                f"AITMTower {self.name!r}: expected a list of at least 2 inputs (this task's "
                "tower output, then the preceding tasks' tower outputs; set "
                f"`merge_inputs_into_list: true`), received input shape {input_shape}"
            )
        return [tuple(s) for s in input_shape]

    def _out_dim(self, own_width: int) -> int:
        return self.project_dim or own_width

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        own_width = int(shapes[0][-1])
        d_out = self._out_dim(own_width)
        transferred_shapes = []
        for j, shape in enumerate(shapes[1:], start=1):
            if self.transfer_mlp is not None:
                transfer = MLP(**self.transfer_mlp, name=f"transfer_{j}")
                width = transfer.hidden_units[-1]
            elif self.mode == "paper":
                transfer = keras.layers.Dense(own_width, activation="relu", name=f"transfer_{j}")
                width = own_width
            else:
                transfer, width = None, int(shape[-1])
            if self.mode == "paper" and width != own_width:
                raise ConfigError(
                    f"AITMTower {self.name!r}: in mode 'paper' the projections are shared, so "
                    f"the transferred vector must have the own tower's width: expected "
                    f"transfer_mlp.hidden_units[-1] = {own_width} (width of the first input), "
                    f"received: {width} (for input {j})"
                )
            if transfer is not None:
                _build_child(transfer, shape)
            self.transfers.append(transfer)
            transferred_shapes.append(tuple(shape[:-1]) + (width,))

        if self.mode == "paper":
            for name in ("h1", "h2", "h3"):
                dense = keras.layers.Dense(d_out, use_bias=False, name=name)
                _build_child(dense, shapes[0])
                self.projections.append(dense)
        else:
            for i, shape in enumerate([shapes[0]] + transferred_shapes):
                for kind, store in (("query", self.queries), ("key", self.keys),
                                    ("value", self.values)):
                    if kind == "query" and i > 0:
                        continue  # only the own tower queries; EasyRec's other queries are unused
                    dense = keras.layers.Dense(d_out, name=f"{kind}_{i}")
                    _build_child(dense, shape)
                    store.append(dense)
        self.built = True

    def _transferred(self, inputs: list, training=None) -> list:
        out = []
        for x, transfer in zip(inputs[1:], self.transfers):
            if self.stop_gradient:
                x = ops.stop_gradient(x)
            if transfer is not None:
                x = transfer(x, training=training) if isinstance(transfer, MLP) else transfer(x)
            out.append(x)
        return out

    def _attend(self, inputs, training=None):
        """Returns (z, weights): z (batch, d'), weights (batch, 1 + num_preceding)."""
        inputs = _as_list(inputs)
        if len(inputs) < 2:
            self._check_shapes([tuple(x.shape) for x in inputs])
        own = inputs[0]
        candidates = [own] + self._transferred(inputs, training)
        d_out = self._out_dim(int(own.shape[-1]))
        scale = 1.0 / math.sqrt(d_out)
        if self.mode == "paper":
            h1, h2, h3 = self.projections
            stacked = ops.stack(candidates, axis=-2)  # (batch, n + 1, d)
            scores = ops.sum(h1(stacked) * h2(stacked), axis=-1) * scale  # (batch, n + 1)
            values = h3(stacked)
        else:
            query = self.queries[0](own)  # (batch, d')
            keys = ops.stack([k(c) for k, c in zip(self.keys, candidates)], axis=-2)
            values = ops.stack([v(c) for v, c in zip(self.values, candidates)], axis=-2)
            scores = ops.sum(ops.expand_dims(query, -2) * keys, axis=-1) * scale
        weights = ops.softmax(scores, axis=-1)
        z = ops.sum(ops.expand_dims(weights, -1) * values, axis=-2)
        return z, weights

    def call(self, inputs, training=None):
        return self._attend(inputs, training)[0]

    def attention_weights(self, inputs, training=None):
        """The softmax weights over [own, transferred_1, ...], shape (batch, 1 + n)."""
        return self._attend(inputs, training)[1]

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        return tuple(shapes[0][:-1]) + (self._out_dim(int(shapes[0][-1])),)

    def get_config(self):
        config = super().get_config()
        config.update(
            transfer_mlp=self.transfer_mlp,
            project_dim=self.project_dim,
            stop_gradient=self.stop_gradient,
            mode=self.mode,
        )
        return config


@register_block("MMoE", params="mmoe")
class MMoE(keras.layers.Layer):
    """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018), with EasyRec's fields.

    Experts: `num_expert` MLPs (`expert_mlp`, separate weights) on the shared expert input.
    Gates: per task t, g_t = softmax(Dense_t(num_expert)(gate_mlp_t(gate_input))), where
    gate_mlp_t is present only when `gate_mlp` is set (one MLP per task). Task output:
    y_t = sum_k g_t[k] * expert_k(x)   (paper eq. 5-6).

    Inputs:
      - one tensor x, shape (batch, d): the expert input and the gate input;
      - a list [x, gate_input] (`merge_inputs_into_list: true`, two inputs): the experts read
        the first and the gates the second, shape (batch, d_g);
      - without `expert_mlp` (as in EasyRec): a list of the `num_expert` experts' outputs, each
        (batch, w), followed by the gate input (batch, d_g).

    `l2_regularization` > 0 is the L2 weight on the gate kernels and on the expert (and gate
    MLP) kernels, replacing those MLPs' own `l2_regularizer` (as EasyRec); 0 leaves the MLPs'
    own setting.

    The gate weights are exposed by `gates(inputs)`: a list of `num_task` tensors of shape
    (batch, num_expert), each row summing to one.

    Args:
      num_task: number of tasks (outputs), >= 1.
      num_expert: number of experts, >= 1.
      expert_mlp: MLP kwargs (a dict) for every expert, or None (experts given as inputs).
      gate_mlp: MLP kwargs for the per-task gate network before the gate's Dense, or None.
      l2_regularization: L2 weight, see above.

    Output: a list of `num_task` tensors, each (batch, w), w the experts' width.
    """

    def __init__(
        self,
        num_task: int,
        num_expert: int,
        expert_mlp: dict[str, Any] | None = None,
        gate_mlp: dict[str, Any] | None = None,
        l2_regularization: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for field, value in (("num_task", num_task), ("num_expert", num_expert)):
            if value is None or int(value) < 1:
                raise ConfigError(
                    f"MMoE {self.name!r}: expected `{field}` to be a positive integer, "
                    f"received: {field}={value}"
                )
        if l2_regularization is None or float(l2_regularization) < 0:
            raise ConfigError(
                f"MMoE {self.name!r}: expected `l2_regularization` >= 0, "
                f"received: l2_regularization={l2_regularization}"
            )
        self.num_task = int(num_task)
        self.num_expert = int(num_expert)
        self.expert_mlp = dict(expert_mlp) if expert_mlp is not None else None
        self.gate_mlp = dict(gate_mlp) if gate_mlp is not None else None
        self.l2_regularization = float(l2_regularization)

        def mlp_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
            cfg = dict(cfg)
            if self.l2_regularization:
                cfg["l2_regularizer"] = self.l2_regularization
            return cfg

        self.experts = (
            [MLP(**mlp_kwargs(self.expert_mlp), name=f"expert_{k}")
             for k in range(self.num_expert)]
            if self.expert_mlp is not None else []
        )
        self.gate_mlps = (
            [MLP(**mlp_kwargs(self.gate_mlp), name=f"gate_mlp_{t}") for t in range(self.num_task)]
            if self.gate_mlp is not None else []
        )
        regularizer = (
            keras.regularizers.L2(self.l2_regularization) if self.l2_regularization else None
        )
        self.gate_layers = [
            keras.layers.Dense(
                self.num_expert, activation="softmax", kernel_regularizer=regularizer,
                name=f"gate_{t}",
            )
            for t in range(self.num_task)
        ]

    def _split(self, items: Any, where: str) -> tuple[list, Any]:
        """Splits inputs (tensors or shapes) into (expert inputs, gate input)."""
        is_list = _is_shape_list(items) if where == "shape" else isinstance(items, (list, tuple))
        items = list(items) if is_list else [items]
        if self.expert_mlp is not None:
            if len(items) not in (1, 2):
                raise ConfigError(
                    f"MMoE {self.name!r}: expected 1 input, or 2 (expert input, gate input), "
                    f"received {len(items)} inputs"
                )
            return [items[0]], items[-1]
        if len(items) != self.num_expert + 1:
            raise ConfigError(
                f"MMoE {self.name!r}: without `expert_mlp` the inputs are the experts' outputs "
                f"then the gate input: expected num_expert + 1 = {self.num_expert + 1} inputs, "
                f"received {len(items)}"
            )
        return items[:-1], items[-1]

    def build(self, input_shape):
        expert_shapes, gate_shape = self._split(input_shape, "shape")
        if self.experts:
            for expert in self.experts:
                _build_child(expert, expert_shapes[0])
        else:
            widths = {int(s[-1]) for s in expert_shapes}
            if len(widths) != 1:
                raise ConfigError(
                    f"MMoE {self.name!r}: expected the expert inputs to have one width, "
                    f"received widths {sorted(widths)}"
                )
        gate_shape = tuple(gate_shape)
        for t in range(self.num_task):
            shape = gate_shape
            if self.gate_mlps:
                _build_child(self.gate_mlps[t], shape)
                shape = self.gate_mlps[t].compute_output_shape(shape)
            _build_child(self.gate_layers[t], shape)
        self.built = True

    def _gates(self, gate_input, training=None) -> list:
        out = []
        for t in range(self.num_task):
            x = gate_input
            if self.gate_mlps:
                x = self.gate_mlps[t](x, training=training)
            out.append(self.gate_layers[t](x))
        return out

    def gates(self, inputs, training=None) -> list:
        """The gate weights: a list of num_task tensors (batch, num_expert), rows sum to 1."""
        _, gate_input = self._split(inputs, "tensor")
        return self._gates(gate_input, training)

    def call(self, inputs, training=None):
        expert_inputs, gate_input = self._split(inputs, "tensor")
        if self.experts:
            expert_outputs = [e(expert_inputs[0], training=training) for e in self.experts]
        else:
            expert_outputs = expert_inputs
        experts = ops.stack(expert_outputs, axis=-2)  # (batch, num_expert, w)
        return [
            ops.sum(ops.expand_dims(g, -1) * experts, axis=-2)
            for g in self._gates(gate_input, training)
        ]

    def compute_output_shape(self, input_shape):
        expert_shapes, _ = self._split(input_shape, "shape")
        shape = tuple(expert_shapes[0])
        width = _mlp_width(self.expert_mlp) if self.expert_mlp is not None else shape[-1]
        return [shape[:-1] + (width,) for _ in range(self.num_task)]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_task=self.num_task,
            num_expert=self.num_expert,
            expert_mlp=self.expert_mlp,
            gate_mlp=self.gate_mlp,
            l2_regularization=self.l2_regularization,
        )
        return config


@register_block("PLE", params="ple")
class PLE(keras.layers.Layer):
    """Progressive Layered Extraction (Tang et al., RecSys 2020), as EasyRec's PLE model class.

    Extraction network l (a CGC layer) reads one input per task, x_t^l, and a shared input
    s^l (all equal to the block's input at l = 1). It has `expert_num_per_task` experts per
    task on x_t^l and `share_num` shared experts on s^l, all MLPs (`task_expert_net`,
    `share_expert_net`, separate weights), and softmax gates (Dense with a bias):

        x_t^(l+1) = sum_k softmax(G_t^l x_t^l)_k  E_k     over [task t's experts, shared experts]
        s^(l+1)   = sum_k softmax(G_s^l s^l)_k    E_k     over [every task's experts, shared]

    (paper eq. 4-6); the last network computes no s^(l+1). The outputs are the x_t of the
    last network.

    Args:
      num_task: T >= 1.
      extraction_networks: one dict per network: expert_num_per_task, share_num (their sum
        >= 1 for every gate), task_expert_net, share_expert_net (MLP kwargs; required when
        the matching count is > 0). All experts of one network must have one output width.

    Call args:
      inputs: (batch, d).

    Returns:
      a list of T tensors (batch, w), w the last network's expert width.
    """

    def __init__(self, num_task: int, extraction_networks: list[dict[str, Any]] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        what = f"PLE {self.name!r}"
        if num_task is None or int(num_task) < 1:
            raise ConfigError(f"{what}: expected `num_task` to be a positive integer, "
                              f"received: num_task={num_task}")
        if not extraction_networks:
            raise ConfigError(f"{what}: expected at least one of `extraction_networks`")
        self.num_task = int(num_task)
        self.extraction_networks = [dict(n) for n in extraction_networks]
        self.task_experts: list[list[list[MLP]]] = []  # [level][task][expert]
        self.share_experts: list[list[MLP]] = []  # [level][expert]
        self.task_gates: list[list[keras.layers.Dense]] = []
        self.share_gates: list[keras.layers.Dense | None] = []
        last = len(self.extraction_networks) - 1
        for level, net in enumerate(self.extraction_networks):
            n_task, n_share = int(net.get("expert_num_per_task", 0)), int(net.get("share_num", 0))
            for count, field in ((n_task, "task_expert_net"), (n_share, "share_expert_net")):
                if count and not net.get(field, {}).get("hidden_units"):
                    raise ConfigError(f"{what}: extraction network {level} has experts but no "
                                      f"`{field}` hidden_units")
            if n_task + n_share < 1:
                raise ConfigError(f"{what}: extraction network {level} has no experts (set "
                                  "expert_num_per_task or share_num)")
            self.task_experts.append([
                [MLP(**net["task_expert_net"], name=f"level_{level}_task_{t}_expert_{k}")
                 for k in range(n_task)] for t in range(self.num_task)])
            self.share_experts.append([
                MLP(**net["share_expert_net"], name=f"level_{level}_share_expert_{k}")
                for k in range(n_share)])
            self.task_gates.append([
                keras.layers.Dense(n_task + n_share, activation="softmax",
                                   name=f"level_{level}_task_{t}_gate")
                for t in range(self.num_task)])
            self.share_gates.append(
                None if level == last else keras.layers.Dense(
                    self.num_task * n_task + n_share, activation="softmax",
                    name=f"level_{level}_share_gate"))

    @staticmethod
    def _mix(gate: keras.layers.Layer, selector, experts: list):
        weights = gate(selector)  # (batch, K)
        return ops.sum(ops.expand_dims(weights, -1) * ops.stack(experts, axis=1), axis=1)

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            raise ConfigError(f"PLE {self.name!r}: expected one input (batch, d), received a "
                              f"list of {len(inputs)}")
        task_inputs, shared = [inputs] * self.num_task, inputs
        for level in range(len(self.extraction_networks)):
            shared_out = [e(shared, training=training) for e in self.share_experts[level]]
            task_out = [[e(task_inputs[t], training=training) for e in experts]
                        for t, experts in enumerate(self.task_experts[level])]
            widths = {int(x.shape[-1]) for x in shared_out + sum(task_out, [])}
            if len(widths) != 1:
                raise ConfigError(f"PLE {self.name!r}: the experts of extraction network "
                                  f"{level} must have one output width, received {sorted(widths)}")
            new_inputs = [self._mix(self.task_gates[level][t], task_inputs[t],
                                    task_out[t] + shared_out) for t in range(self.num_task)]
            if self.share_gates[level] is not None:
                shared = self._mix(self.share_gates[level], shared,
                                   sum(task_out, []) + shared_out)
            task_inputs = new_inputs
        return task_inputs

    def compute_output_shape(self, input_shape):
        last = self.extraction_networks[-1]
        net = last.get("task_expert_net") if int(last.get("expert_num_per_task", 0)) else \
            last.get("share_expert_net")
        return [tuple(input_shape[:-1]) + (_mlp_width(net),) for _ in range(self.num_task)]

    def get_config(self):
        config = super().get_config()
        config.update(num_task=self.num_task, extraction_networks=self.extraction_networks)
        return config
