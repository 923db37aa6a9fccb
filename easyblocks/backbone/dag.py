"""The backbone: named blocks wired into a DAG, ordered and run topologically.

Every layer is created here, when the model is built (never inside `call`), so
weights are tracked and saved; nothing is shared between two models built from
one config (packages belong to the Backbone instance, not to a class).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import keras
import networkx as nx
import tensorflow as tf

from easyblocks.backbone.slicing import apply_slice, parse_slice
from easyblocks.backbone.transforms import compile_expression
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import create_layer
from easyblocks.config.kwargs import message_to_kwargs
from easyblocks.errors import ConfigError, suggest

log = logging.getLogger("easyblocks")

Locate = Callable[[str, str], str]  # (field, value) -> "file:line"

# Blocks that read one feature group. Like EasyRec, they may be named after their group;
# another block's `feature_group_name: X` then takes block X's output (with its options).
INPUT_KINDS = ("input_layer", "raw_input")


def _no_locate(field: str, value: str) -> str:
    return "<config>"


def _concat(values: list, axis: int, where: str):
    if len(values) == 1:
        return values[0]  # as EasyRec: one input is passed as it is, a list too
    if any(isinstance(v, (list, tuple)) for v in values):
        raise ConfigError(
            f"{where}: an input is a list of tensors; set merge_inputs_into_list: true "
            "or pick one with input_slice"
        )
    return tf.concat(values, axis=axis)


class _Step:
    """One callable step of a block: a layer, a lambda, a repeat or a recurrent layer."""

    def __init__(self, proto: Any, name: str, where: str, owner: Dag):
        self.where = where
        kind = proto.WhichOneof("layer")
        self.kind = kind
        if kind == "keras_layer":
            self.layers = [create_layer(proto.keras_layer, name, where)]
        elif kind == "lambda":
            self.fn = compile_expression(getattr(proto, "lambda").expression, where)
            self.layers = []
        elif kind == "repeat":
            rep = proto.repeat
            self.layers = [create_layer(rep.keras_layer, f"{name}_{i}", where)
                           for i in range(rep.num_repeat)]
            self.concat_axis = rep.output_concat_axis if rep.HasField("output_concat_axis") \
                else None
            self.slices = [parse_slice(rep.input_slice, where, {"i": i}) if rep.input_slice
                           else None for i in range(rep.num_repeat)]
            self.input_fn = compile_expression(rep.input_fn, where) if rep.input_fn else None
        elif kind == "recurrent":
            rec = proto.recurrent
            self.layers = [create_layer(rec.keras_layer, f"{name}_{i}", where)
                           for i in range(rec.num_steps)]
            self.fixed = rec.fixed_input_index if rec.HasField("fixed_input_index") else -1
        else:
            raise ConfigError(f"{where}: unsupported layer kind {kind!r}")
        owner.tracked_layers.extend(self.layers)

    def __call__(self, x: Any, training: Any) -> Any:
        if self.kind == "keras_layer":
            return self.layers[0](x, training=training)
        if self.kind == "lambda":
            return self.fn(x)
        if self.kind == "repeat":
            outs = []
            for layer, index in zip(self.layers, self.slices):
                xi = apply_slice(x, index) if index is not None else x
                if self.input_fn is not None:
                    xi = self.input_fn(xi)
                outs.append(layer(xi, training=training))
            return outs if self.concat_axis is None else tf.concat(outs, self.concat_axis)
        # recurrent: feed each step's output back, keeping input `fixed` in place
        inputs = list(x) if self.fixed >= 0 else x
        if self.fixed >= 0 and not isinstance(x, (list, tuple)):
            raise ConfigError(f"{self.where}: fixed_input_index needs a list input "
                              "(merge_inputs_into_list: true)")
        out = inputs
        for layer in self.layers:
            out = layer(out, training=training)
            if self.fixed >= 0:
                new = list(out) if isinstance(out, (list, tuple)) else [out]
                others = [i for i in range(len(inputs)) if i != self.fixed]
                for j, idx in enumerate(others):
                    inputs[idx] = new[j] if j < len(new) else new[-1]
                out = list(inputs)
        if self.fixed >= 0:
            del out[self.fixed]
            return out[0] if len(out) == 1 else out
        return out


class _Block:
    """A configured block: where its inputs come from and the steps it runs."""

    def __init__(self, proto: Any, where: str, owner: Dag):
        self.proto = proto
        self.name = proto.name
        self.where = where
        self.kind = proto.WhichOneof("layer")
        self.inputs = []
        for inp in proto.inputs:
            which = inp.WhichOneof("name")
            if which is None:
                raise ConfigError(f"{where}: an input names nothing (set feature_group_name, "
                                  "block_name, package_name or use_package_input)")
            target = getattr(inp, which)
            index = parse_slice(inp.input_slice, where) if inp.input_slice else None
            fn = compile_expression(inp.input_fn, where) if inp.input_fn else None
            self.inputs.append((which, target, index, fn, inp))
        self.extra_fn = compile_expression(proto.extra_input_fn, where) \
            if proto.extra_input_fn else None
        if proto.layers and self.kind is not None:
            raise ConfigError(f"{where}: set either `layers` or one layer, not both")
        self.steps = [_Step(layer, f"{self.name}_{i}", where, owner)
                      for i, layer in enumerate(proto.layers)]
        if self.kind in ("keras_layer", "lambda", "repeat", "recurrent"):
            self.steps = [_Step(proto, self.name, where, owner)]
        if self.kind in ("input_layer", "raw_input"):
            if len(self.inputs) != 1 or self.inputs[0][0] != "feature_group_name":
                raise ConfigError(f"{where}: {self.kind} takes exactly one feature_group_name "
                                  "input")

    @property
    def class_name(self) -> str:
        if self.kind == "keras_layer":
            return self.proto.keras_layer.class_name
        if self.proto.layers:
            return "Sequential"
        return self.kind or "Identity"


def order_blocks(blocks, group_names, package_names, locate: Locate = _no_locate,
                 what: str = "backbone") -> tuple[list[str], nx.DiGraph]:
    """Checks a DAG's names and references and orders it topologically (networkx).

    Errors name the block and the config line: duplicates, names shared with feature
    groups or packages, unknown inputs (with close matches), and cycles (listing the
    blocks on them). Ties are broken by the order of the blocks in the config.
    """
    group_names, package_names = set(group_names), set(package_names)
    block_names: list[str] = []
    for proto in blocks:
        where = f"{locate('name', proto.name)}: block {proto.name!r}"
        if proto.name in block_names:
            raise ConfigError(f"{where}: duplicate block name in the {what}")
        if proto.name in group_names and proto.WhichOneof("layer") not in INPUT_KINDS:
            raise ConfigError(f"{where}: a block may not have the name of a feature group "
                              "(only an input_layer / raw_input block may)")
        if proto.name in package_names:
            raise ConfigError(f"{where}: a block may not have the name of a package")
        block_names.append(proto.name)
    known = set(block_names)
    names = block_names + sorted(group_names) + sorted(package_names)
    graph = nx.DiGraph()
    graph.add_nodes_from(block_names)
    for proto in blocks:
        for inp in proto.inputs:
            which = inp.WhichOneof("name")
            target = getattr(inp, which) if which else None
            if which == "block_name":
                if target not in known:
                    others = [n for n in names if n != proto.name]
                    hint = " (it is a feature group: use feature_group_name)" \
                        if target in group_names else suggest(target, others)
                    raise ConfigError(f"{locate('block_name', target)}: block {proto.name!r} "
                                      f"takes input {target!r}, which is not a block{hint}")
                graph.add_edge(target, proto.name)
            elif which == "feature_group_name" and proto.WhichOneof("layer") in INPUT_KINDS:
                if target not in group_names:
                    raise ConfigError(f"{locate('feature_group_name', target)}: block "
                                      f"{proto.name!r} reads feature group {target!r}, which "
                                      f"is not defined{suggest(target, group_names)}")
            elif which == "feature_group_name" and target in known:
                if target == proto.name:
                    raise ConfigError(f"{locate('feature_group_name', target)}: block "
                                      f"{proto.name!r} takes its own output as input")
                graph.add_edge(target, proto.name)  # EasyRec: block names come first
            elif which == "feature_group_name" and target not in group_names:
                raise ConfigError(f"{locate('feature_group_name', target)}: block "
                                  f"{proto.name!r} takes feature group {target!r}, which is "
                                  f"not defined{suggest(target, names)}")
            elif which == "package_name":
                if target not in package_names:
                    raise ConfigError(f"{locate('package_name', target)}: block {proto.name!r} "
                                      f"calls package {target!r}, which is not defined"
                                      f"{suggest(target, names)}")
                if inp.package_input in known:
                    graph.add_edge(inp.package_input, proto.name)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise ConfigError(f"{locate('name', cycle[0][0])}: the {what} has a cycle: {path}")
    position = {n: i for i, n in enumerate(block_names)}
    order = list(nx.lexicographical_topological_sort(graph, key=lambda n: position[n]))
    return order, graph


def check_backbone(config: Any, group_names, locate: Locate = _no_locate) -> None:
    """The structural checks of a BackboneTower message, without building any layer."""
    packages = [p.name for p in config.packages]
    for pkg in config.packages:
        order_blocks(pkg.blocks, group_names, [], locate, what=f"package {pkg.name!r}")
    order_blocks(config.blocks, group_names, packages, locate)


class Dag(keras.layers.Layer):
    """One DAG of blocks (the backbone's main DAG, or a package).

    Args:
      blocks: Block messages.
      output_blocks / concat_blocks: which block outputs make the DAG's output.
      group_names: the model's feature groups (inputs from outside the DAG).
      packages: name -> Dag, callable from blocks by `package_name`.
      locate: finds the config line of a (field, value) pair, for error messages.
      extra_outputs: blocks whose values are also returned, as a dict (e.g. for towers'
        add_to_logit); then `call` returns (output, {name: value}).
    """

    def __init__(self, blocks, output_blocks, concat_blocks, group_names, packages,
                 locate: Locate = _no_locate, what: str = "backbone", extra_outputs=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.extra_outputs = list(extra_outputs)
        self.what = what
        self.group_names = set(group_names)
        self.packages = packages
        self.tracked_layers: list = []
        self.order, self.graph = order_blocks(blocks, group_names, packages, locate, what)
        self.blocks: dict[str, _Block] = {}
        for proto in blocks:
            where = f"{locate('name', proto.name)}: block {proto.name!r}"
            self.blocks[proto.name] = _Block(proto, where, self)
        names = list(self.blocks)
        for name in list(output_blocks) + list(concat_blocks):
            if name not in self.blocks:
                raise ConfigError(f"{locate('output_blocks', name)}: {what} output {name!r} is "
                                  f"not a block{suggest(name, names)}")
        if output_blocks and concat_blocks:
            raise ConfigError(f"{what}: set output_blocks or concat_blocks, not both")
        self.output_blocks = list(output_blocks)
        self.concat_blocks = list(concat_blocks)
        if not output_blocks and not concat_blocks:
            leaves = [n for n in self.order
                      if self.graph.out_degree(n) == 0 and n not in self.extra_outputs]
            log.warning("%s: neither output_blocks nor concat_blocks is set; concatenating the "
                        "DAG's leaves: %s", what, ", ".join(leaves))
            self.concat_blocks = leaves

    # ---- running -------------------------------------------------------------------------
    def _input_value(self, which, target, inp, values, features, package_input, training):
        if which == "feature_group_name":
            # a block named like the group (an input_layer / raw_input block) comes first
            return values[target] if target in self.blocks else features["groups"][target]
        if which == "block_name":
            return values[target]
        if which == "use_package_input":
            return package_input
        # package_name: call the package on its input
        arg = None
        if inp.package_input:
            name = inp.package_input
            arg = values[name] if name in values else features["groups"][name]
        return self.packages[target](features, package_input=arg, training=training)

    def _run_block(self, block: _Block, values, features, package_input, training):
        if block.kind == "input_layer":
            group = block.inputs[0][1]
            opts = block.proto.input_layer  # EasyRec's precedence of the output options
            if opts.only_output_feature_list:
                return list(features["lists"][group])
            if opts.only_output_3d_tensor:
                return tf.stack(features["lists"][group], axis=1)
            if opts.output_2d_tensor_and_feature_list:
                return [features["groups"][group], list(features["lists"][group])]
            return features["groups"][group]
        if block.kind == "raw_input":
            group = block.inputs[0][1]
            raw = features["raw"][group]
            if raw is None:
                raise ConfigError(f"{block.where}: raw_input cannot take group {group!r}: it has "
                                  "multi-valued (tag) features")
            return raw
        vals = []
        for which, target, index, fn, inp in block.inputs:
            v = self._input_value(which, target, inp, values, features, package_input, training)
            if index is not None:
                v = apply_slice(v, index)
            if fn is not None:
                v = fn(v)
            if not inp.ignore_input:
                vals.append(v)
        if block.proto.merge_inputs_into_list:
            x = vals
        else:
            x = _concat(vals, block.proto.input_concat_axis, block.where)
        if block.extra_fn is not None:
            x = block.extra_fn(x)
        for step in block.steps:
            x = step(x, training)
        return x

    def upstream(self, targets) -> tuple[list[str], set[str]]:
        """The blocks `targets` depend on (themselves included, in run order) and the
        feature groups those blocks read."""
        needed = set(targets)
        for t in targets:
            needed |= nx.ancestors(self.graph, t)
        order = [n for n in self.order if n in needed]
        groups = {target for n in order for which, target, *_ in self.blocks[n].inputs
                  if which == "feature_group_name" and target in self.group_names}
        for n in order:
            for which, target, _, _, inp in self.blocks[n].inputs:
                if which == "package_name":
                    groups |= {t for b in self.packages[target].blocks.values()
                               for w, t, *_ in b.inputs if w == "feature_group_name"}
                    if inp.package_input in self.group_names:
                        groups.add(inp.package_input)
        return order, groups

    def block_values(self, features: dict, package_input=None, training=None,
                     only=None) -> dict:
        """Runs the blocks in topological order (`only`: just these, in that order);
        returns {block name: output}."""
        values: dict[str, Any] = {}
        for name in only or self.order:
            block = self.blocks[name]
            try:
                values[name] = self._run_block(block, values, features, package_input, training)
            except ConfigError:
                raise
            except (ValueError, TypeError, IndexError, tf.errors.InvalidArgumentError) as e:
                if tf.executing_eagerly() or not tf.inside_function():
                    raise ConfigError(f"{block.where} ({block.class_name}): {e}") from None
                raise
        return values

    def call(self, features: dict, package_input=None, training=None):
        values = self.block_values(features, package_input, training)
        if self.output_blocks:
            out = []
            for name in self.output_blocks:
                v = values[name]
                out.extend(v if isinstance(v, (list, tuple)) else [v])
        else:
            out = _concat([values[n] for n in self.concat_blocks], -1,
                          f"{self.what} concat_blocks")
        if self.extra_outputs:
            return out, {name: values[name] for name in self.extra_outputs}
        return out


class Backbone(keras.layers.Layer):
    """The model's backbone: packages, the main DAG and the optional top MLP.

    Call with the dict from FeatureGroups; returns a tensor (concat_blocks) or a
    list of tensors (output_blocks, in task-tower order).
    """

    def __init__(self, config: Any, group_names, locate: Locate = _no_locate, extra_outputs=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.packages = {}
        for pkg in config.packages:
            if pkg.name in self.packages:
                raise ConfigError(f"{locate('name', pkg.name)}: duplicate package {pkg.name!r}")
            self.packages[pkg.name] = Dag(
                pkg.blocks, pkg.output_blocks, pkg.concat_blocks, group_names, {},
                locate, what=f"package {pkg.name!r}", name=f"package_{pkg.name}",
            )
        self.dag = Dag(config.blocks, config.output_blocks, config.concat_blocks, group_names,
                       self.packages, locate, extra_outputs=extra_outputs, name="dag")
        self.top_mlp = None
        if config.HasField("top_mlp"):
            if config.output_blocks:
                raise ConfigError("backbone: top_mlp needs one output (concat_blocks), "
                                  "not output_blocks")
            self.top_mlp = MLP(name="top_mlp", **message_to_kwargs(config.top_mlp))

    def call(self, features: dict, training=None):
        """Returns the output, or (output, extras) when extra_outputs were requested."""
        result = self.dag(features, training=training)
        out, extras = result if self.dag.extra_outputs else (result, None)
        if self.top_mlp is not None:
            out = self.top_mlp(out, training=training)
        return (out, extras) if self.dag.extra_outputs else out
