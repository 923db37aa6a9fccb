"""The backbone's blocks: checked, ordered (networkx) and turned into specs.

Errors name the block and the config line: duplicates, names shared with feature
groups or packages, unknown inputs (with close matches), cycles (listing the blocks
on them), bad slices and expressions, and outputs that are not blocks. Nothing here
builds a layer; `easyblocks.backbone` does that from the specs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import networkx as nx
from google.protobuf import json_format

from easyblocks.config.expressions import parse_expression
from easyblocks.config.kwargs import message_to_kwargs
from easyblocks.config.slicing import parse_slice
from easyblocks.config.specs import BackboneSpec, BlockSpec, DagSpec, InputSpec, LayerSpec, StepSpec
from easyblocks.errors import ConfigError, suggest

log = logging.getLogger("easyblocks")

Locate = Callable[[str, str], str]  # (field, value) -> "file:line"

_INPUT_KINDS = {"feature_group_name": "group", "block_name": "block", "package_name": "package",
                "use_package_input": "package_input"}
# blocks that only read a feature group: EasyRec lets them carry the group's name
_GROUP_READERS = ("input_layer", "raw_input")


def _no_locate(field: str, value: str) -> str:
    return "<config>"


def order_blocks(blocks, group_names, package_names, locate: Locate = _no_locate,
                 what: str = "backbone", outer_blocks=(),
                 package_reads: dict | None = None) -> tuple[list[str], nx.DiGraph]:
    """Checks a DAG's names and references and orders it topologically.

    Ties are broken by the order of the blocks in the config. outer_blocks (for a package):
    the main DAG's blocks, which the package's blocks may take by block_name (EasyRec's
    backbone blocks). package_reads (for the main DAG): package -> the main blocks it reads;
    a block that calls the package comes after them.
    """
    group_names, package_names = set(group_names), set(package_names)
    outer_blocks = set(outer_blocks)
    block_names: list[str] = []
    seen: set[str] = set()
    for proto in blocks:
        where = f"{locate('name', proto.name)}: block {proto.name!r}"
        if proto.name in seen:
            raise ConfigError(f"{where}: duplicate block name in the {what}")
        seen.add(proto.name)
        if proto.name in group_names and proto.WhichOneof("layer") not in _GROUP_READERS:
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
                if target not in known and target in outer_blocks:
                    continue  # a block of the main DAG: it runs before the package is called
                if target not in known:
                    others = [n for n in names if n != proto.name]
                    hint = " (it is a feature group: use feature_group_name)" \
                        if target in group_names else suggest(target, others)
                    raise ConfigError(f"{locate('block_name', target)}: block {proto.name!r} "
                                      f"takes input {target!r}, which is not a block{hint}")
                graph.add_edge(target, proto.name)
            elif which == "feature_group_name" and proto.WhichOneof("layer") in _GROUP_READERS:
                if target not in group_names:
                    raise ConfigError(f"{locate('feature_group_name', target)}: block "
                                      f"{proto.name!r} reads feature group {target!r}, which "
                                      f"is not defined{suggest(target, group_names)}")
            elif which == "feature_group_name" and target in known:
                # EasyRec: a block named like the group (an input_layer / raw_input block)
                # comes first; its output, with its options, is the input
                if target == proto.name:
                    raise ConfigError(f"{locate('feature_group_name', target)}: block "
                                      f"{proto.name!r} takes its own output as input")
                graph.add_edge(target, proto.name)
            elif which == "feature_group_name" and target not in group_names:
                raise ConfigError(f"{locate('feature_group_name', target)}: block "
                                  f"{proto.name!r} takes feature group {target!r}, which is "
                                  f"not defined{suggest(target, names)}")
            elif which == "package_name":
                if target not in package_names:
                    raise ConfigError(f"{locate('package_name', target)}: block {proto.name!r} "
                                      f"calls package {target!r}, which is not defined"
                                      f"{suggest(target, names)}")
                reads = set((package_reads or {}).get(target, ()))
                if inp.package_input in known:
                    graph.add_edge(inp.package_input, proto.name)
                elif inp.package_input in package_names:  # EasyRec: that package's output
                    reads |= set((package_reads or {}).get(inp.package_input, ()))
                elif inp.package_input and inp.package_input not in group_names:
                    raise ConfigError(f"{locate('package_input', inp.package_input)}: block "
                                      f"{proto.name!r}: package_input {inp.package_input!r} "
                                      f"is neither a block, a feature group nor a package"
                                      f"{suggest(inp.package_input, names)}")
                for read in sorted(reads):
                    if read == proto.name:
                        raise ConfigError(f"{locate('package_name', target)}: block "
                                          f"{proto.name!r} calls package {target!r}, which "
                                          f"reads block {proto.name!r} itself")
                    graph.add_edge(read, proto.name)
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


def layer_spec(keras_layer: Any, where: str) -> LayerSpec:
    """A KerasLayer message -> LayerSpec (class_name and its parameters as plain data)."""
    if not keras_layer.class_name:
        raise ConfigError(f"{where}: keras_layer has no class_name")
    which = keras_layer.WhichOneof("params")
    if which is None:
        return LayerSpec(keras_layer.class_name)
    if which == "st_params":
        return LayerSpec(keras_layer.class_name, which,
                         json_format.MessageToDict(keras_layer.st_params))
    return LayerSpec(keras_layer.class_name, which,
                     message_to_kwargs(getattr(keras_layer, which)))


def _check_fn(source: str, where: str) -> str | None:
    if not source:
        return None
    parse_expression(source, where)
    return source


def _step_spec(proto: Any, where: str) -> StepSpec:
    kind = proto.WhichOneof("layer")
    if kind == "keras_layer":
        return StepSpec(kind, layer=layer_spec(proto.keras_layer, where))
    if kind == "lambda":
        return StepSpec(kind, expression=_check_fn(getattr(proto, "lambda").expression, where))
    if kind == "repeat":
        rep = proto.repeat
        if rep.num_repeat < 1:
            raise ConfigError(f"{where}: repeat.num_repeat must be at least 1")
        indices = tuple(parse_slice(rep.input_slice, where, {"i": i}) if rep.input_slice
                        else None for i in range(rep.num_repeat))
        return StepSpec(kind, layer=layer_spec(rep.keras_layer, where), num=rep.num_repeat,
                        output_concat_axis=rep.output_concat_axis
                        if rep.HasField("output_concat_axis") else None,
                        repeat_indices=indices, repeat_input_fn=_check_fn(rep.input_fn, where))
    if kind == "recurrent":
        rec = proto.recurrent
        if rec.num_steps < 1:
            raise ConfigError(f"{where}: recurrent.num_steps must be at least 1")
        return StepSpec(kind, layer=layer_spec(rec.keras_layer, where), num=rec.num_steps,
                        fixed_input_index=rec.fixed_input_index
                        if rec.HasField("fixed_input_index") else -1)
    raise ConfigError(f"{where}: unsupported layer kind {kind!r}")


def block_spec(proto: Any, where: str, block_names=(), outer_blocks=()) -> BlockSpec:
    """A Block message -> BlockSpec: its inputs, slices, expressions and steps, checked.

    block_names: the DAG's blocks; a `feature_group_name` that names one of them (an
    input_layer / raw_input block named like its group, EasyRec's style) is that block's
    output, except for the input_layer / raw_input block itself. outer_blocks (in a
    package): the main DAG's blocks, which a `block_name` not of the package names.
    """
    kind = proto.WhichOneof("layer")
    inputs = []
    for inp in proto.inputs:
        which = inp.WhichOneof("name")
        if which is None:
            raise ConfigError(f"{where}: an input names nothing (set feature_group_name, "
                              "block_name, package_name or use_package_input)")
        input_kind = _INPUT_KINDS[which]
        if input_kind == "group" and inp.feature_group_name in block_names \
                and kind not in _GROUP_READERS:
            input_kind = "block"
        if input_kind == "block" and inp.block_name and inp.block_name not in block_names \
                and inp.block_name in outer_blocks:
            input_kind = "outer_block"
        inputs.append(InputSpec(
            kind=input_kind,
            name="" if which == "use_package_input" else getattr(inp, which),
            index=parse_slice(inp.input_slice, where) if inp.input_slice else None,
            fn=_check_fn(inp.input_fn, where), ignore=inp.ignore_input,
            package_input=inp.package_input or None))
    if proto.layers and kind is not None:
        raise ConfigError(f"{where}: set either `layers` or one layer, not both")
    common = dict(name=proto.name, where=where, inputs=tuple(inputs),
                  input_concat_axis=proto.input_concat_axis,
                  merge_inputs_into_list=proto.merge_inputs_into_list,
                  extra_input_fn=_check_fn(proto.extra_input_fn, where))
    if kind in _GROUP_READERS:
        if len(inputs) != 1 or inputs[0].kind != "group":
            raise ConfigError(f"{where}: {kind} takes exactly one feature_group_name input")
        opts = proto.input_layer
        if opts.do_batch_norm and opts.do_layer_norm:
            raise ConfigError(f"{where}: input_layer cannot set both do_batch_norm and "
                              "do_layer_norm")
        for name in ("dropout_rate", "feature_dropout_rate"):
            if not 0.0 <= getattr(opts, name) < 1.0:
                raise ConfigError(f"{where}: input_layer {name} must be in [0, 1), got "
                                  f"{getattr(opts, name)}")
        norm = "batch" if opts.do_batch_norm else "layer" if opts.do_layer_norm else ""
        return BlockSpec(kind=kind, only_output_feature_list=opts.only_output_feature_list,
                         only_output_3d_tensor=opts.only_output_3d_tensor,
                         output_2d_tensor_and_feature_list=opts.output_2d_tensor_and_feature_list,
                         output_seq_and_normal_feature=opts.output_seq_and_normal_feature,
                         input_norm=norm, dropout_rate=opts.dropout_rate,
                         feature_dropout_rate=opts.feature_dropout_rate, **common)
    if proto.layers:
        steps = tuple(_step_spec(layer, where) for layer in proto.layers)
    elif kind is not None:
        steps = (_step_spec(proto, where),)
    else:
        return BlockSpec(kind="identity", **common)
    return BlockSpec(kind="layers", steps=steps, **common)


def dag_spec(blocks, output_blocks, concat_blocks, group_names, package_names,
             locate: Locate = _no_locate, what: str = "backbone",
             extra_outputs=(), outer_blocks=(), package_reads=None) -> DagSpec:
    """One DAG's spec: ordered blocks and the outputs (the leaves, with a warning, when
    neither output_blocks nor concat_blocks is set). outer_blocks, package_reads: see
    order_blocks."""
    order, graph = order_blocks(blocks, group_names, package_names, locate, what,
                                outer_blocks, package_reads)
    names = {p.name for p in blocks}  # (a set: looked up for every input of every block)
    outer = set(outer_blocks)
    specs = {p.name: block_spec(p, f"{locate('name', p.name)}: block {p.name!r}", names,
                                outer)
             for p in blocks}
    for name in list(output_blocks) + list(concat_blocks):
        if name not in specs:
            field = "output_blocks" if name in output_blocks else "concat_blocks"
            raise ConfigError(f"{locate(field, name)}: {what} output {name!r} is "
                              f"not a block{suggest(name, list(specs))}")
    if output_blocks and concat_blocks:
        raise ConfigError(f"{what}: set output_blocks or concat_blocks, not both")
    if not specs:
        raise ConfigError(f"{what} has no blocks")
    dag = DagSpec(name=what, blocks=specs, order=order, edges=list(graph.edges()),
                  outputs=list(output_blocks or concat_blocks),
                  output_kind="output_blocks" if output_blocks else "concat_blocks")
    if not output_blocks and not concat_blocks:
        dag.outputs = [n for n in dag.leaves() if n not in extra_outputs]
        log.warning("%s: neither output_blocks nor concat_blocks is set; concatenating the "
                    "DAG's leaves: %s", what, ", ".join(dag.outputs))
    return dag


def backbone_spec(config: Any, group_names, locate: Locate = _no_locate,
                  extra_outputs=()) -> BackboneSpec:
    """A BackboneTower message -> BackboneSpec (packages, the main DAG, top_mlp kwargs)."""
    packages: dict[str, DagSpec] = {}
    main_blocks = [b.name for b in config.blocks]
    for pkg in config.packages:
        if pkg.name in packages:
            raise ConfigError(f"{locate('name', pkg.name)}: duplicate package {pkg.name!r}")
        packages[pkg.name] = dag_spec(pkg.blocks, pkg.output_blocks, pkg.concat_blocks,
                                      group_names, [], locate, what=f"package {pkg.name!r}",
                                      outer_blocks=main_blocks)
    # the main DAG's blocks each package reads (EasyRec's backbone blocks in a package)
    reads = {name: {i.name for b in p.blocks.values() for i in b.inputs
                    if i.kind == "outer_block"} for name, p in packages.items()}
    dag = dag_spec(config.blocks, config.output_blocks, config.concat_blocks, group_names,
                   list(packages), locate, extra_outputs=extra_outputs, package_reads=reads)
    top_mlp = None
    if config.HasField("top_mlp"):
        if config.output_blocks:
            raise ConfigError("backbone: top_mlp needs one output (concat_blocks), not "
                              "output_blocks")
        top_mlp = message_to_kwargs(config.top_mlp)
    return BackboneSpec(dag=dag, packages=packages, top_mlp=top_mlp)
