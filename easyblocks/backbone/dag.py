"""The backbone: the blocks of a DagSpec, built once and run in topological order.

Every layer is created here, when the model is built (never inside `call`), so
weights are tracked and saved; nothing is shared between two models built from
one config (packages belong to the Backbone instance, not to a class). The order,
the inputs and every check of the structure come from `easyblocks.config.dag`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from easyblocks.backbone.transforms import compile_expression
from easyblocks.blocks.mlp import MLP
from easyblocks.blocks.registry import create_layer
from easyblocks.config.checks import check_slice_against_shape
from easyblocks.config.slicing import apply_slice
from easyblocks.config.specs import BackboneSpec, BlockSpec, DagSpec, InputSpec, StepSpec
from easyblocks.errors import ConfigError, EasyblocksError
from easyblocks.features.embedding import InputLayerOptions


def _concat(values: list, axis: int, where: str, join_lists: bool = False):
    """Concatenates tensors on `axis`. With join_lists (a block's inputs), when an input is a
    list (e.g. the field embeddings of an `input_layer { only_output_feature_list: true }`
    block) the inputs are joined into one flat list instead, tensors as items, as EasyRec's
    merge_inputs does."""
    if len(values) == 1:
        return values[0]
    if any(isinstance(v, (list, tuple)) for v in values):
        if join_lists:
            return [item for v in values
                    for item in (v if isinstance(v, (list, tuple)) else [v])]
        raise ConfigError(
            f"{where}: an input is a list of tensors; set merge_inputs_into_list: true "
            "or pick one with input_slice"
        )
    return tf.concat(values, axis=axis)


class _Step:
    """One callable step of a block: a layer, a lambda, a repeat or a recurrent layer."""

    def __init__(self, spec: StepSpec, name: str, where: str):
        self.spec = spec
        self.where = where
        self.kind = spec.kind
        self.fn = None
        self.input_fn = None
        if spec.kind == "keras_layer":
            self.layers = [create_layer(spec.layer, name, where)]
        elif spec.kind == "lambda":
            self.fn = compile_expression(spec.expression, where)
            self.layers = []
        else:  # repeat, recurrent: independent copies of one layer
            self.layers = [create_layer(spec.layer, f"{name}_{i}", where)
                           for i in range(spec.num)]
            if spec.repeat_input_fn:
                self.input_fn = compile_expression(spec.repeat_input_fn, where)

    def __call__(self, x: Any, training: Any) -> Any:
        if self.kind == "keras_layer":
            return self.layers[0](x, training=training)
        if self.kind == "lambda":
            return self.fn(x)
        if self.kind == "repeat":
            outs = []
            for layer, index in zip(self.layers, self.spec.repeat_indices):
                xi = apply_slice(x, index) if index is not None else x
                if self.input_fn is not None:
                    xi = self.input_fn(xi)
                outs.append(layer(xi, training=training))
            axis = self.spec.output_concat_axis
            return outs if axis is None else tf.concat(outs, axis)
        return self._recurrent(x, training)

    def _recurrent(self, x: Any, training: Any) -> Any:
        """Feeds each step's output back, keeping input `fixed_input_index` in place."""
        fixed = self.spec.fixed_input_index
        if fixed >= 0 and not isinstance(x, (list, tuple)):
            raise ConfigError(f"{self.where}: fixed_input_index needs a list input "
                              "(merge_inputs_into_list: true)")
        inputs = list(x) if fixed >= 0 else x
        out = inputs
        for layer in self.layers:
            out = layer(out, training=training)
            if fixed >= 0:
                new = list(out) if isinstance(out, (list, tuple)) else [out]
                others = [i for i in range(len(inputs)) if i != fixed]
                for j, idx in enumerate(others):
                    inputs[idx] = new[j] if j < len(new) else new[-1]
                out = list(inputs)
        if fixed >= 0:
            del out[fixed]
            return out[0] if len(out) == 1 else out
        return out


class _Block:
    """A built block: its spec, its steps and its input functions."""

    def __init__(self, spec: BlockSpec):
        self.spec = spec
        self.name = spec.name
        self.where = spec.where
        self.input_fns = [compile_expression(i.fn, spec.where) if i.fn else None
                          for i in spec.inputs]
        self.extra_fn = compile_expression(spec.extra_input_fn, spec.where) \
            if spec.extra_input_fn else None
        single = len(spec.steps) == 1
        self.steps = [_Step(s, spec.name if single else f"{spec.name}_{i}", spec.where)
                      for i, s in enumerate(spec.steps)]
        # an input_layer's do_batch_norm / do_layer_norm / dropout (EasyRec's input layer)
        self.input_options = InputLayerOptions(
            spec.input_norm, spec.dropout_rate, spec.feature_dropout_rate,
            per_feature=spec.only_output_feature_list or spec.only_output_3d_tensor
            or spec.output_2d_tensor_and_feature_list,
            name=f"{spec.name}_input_layer") if spec.has_input_options else None

    @property
    def layers(self) -> list:
        return [layer for step in self.steps for layer in step.layers]


class Dag(keras.layers.Layer):
    """One DAG of blocks (the backbone's main DAG, or a package).

    Args:
      spec: the DAG's blocks, order and outputs.
      packages: name -> Dag, callable from blocks by `package_name`.
      extra_outputs: blocks whose values are also returned, as a dict (e.g. for towers'
        add_to_logit); then `call` returns (output, {name: value}).
      is_package: a package, whose one concat_blocks output may be a list (passed on as
        it is, as EasyRec's merge_inputs does; the blocks that call the package take it).
    """

    def __init__(self, spec: DagSpec, packages: dict[str, Dag] | None = None,
                 extra_outputs=(), is_package: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.is_package = is_package
        self.packages = packages or {}
        self.extra_outputs = list(extra_outputs)
        self.blocks: dict[str, _Block] = {name: _Block(b) for name, b in spec.blocks.items()}
        # tracked by Keras, so that the blocks' weights are this layer's weights
        self.tracked_layers = [layer for b in self.blocks.values() for layer in b.layers] + [
            b.input_options for b in self.blocks.values() if b.input_options is not None]
        # no weights of its own: each block's layers build on their first call. Unbuilt,
        # Keras would first trace the whole DAG symbolically to build it (and the Backbone
        # around it once more): 3 runs of every block before the real one, not 1
        self.built = True

    @property
    def order(self) -> list[str]:
        return self.spec.order

    # ---- what other parts of the model need ---------------------------------------------
    def block_layers(self) -> Iterator[tuple[str, _Step, int, keras.layers.Layer]]:
        """(block name, step, index in the step, layer) for every layer of every block."""
        for name, block in self.blocks.items():
            for step in block.steps:
                for i, layer in enumerate(step.layers):
                    yield name, step, i, layer

    def replace_layer(self, step: _Step, index: int, layer: keras.layers.Layer) -> None:
        """Puts `layer` in place of a block's layer (e.g. its merged form for serving)."""
        step.layers[index] = layer

    def block_losses(self) -> dict[str, list]:
        """The losses each block added with `add_loss` in its last call, by block name."""
        out: dict[str, list] = {}
        for name, _, _, layer in self.block_layers():
            added = [loss for sub in layer._flatten_layers(include_self=True)
                     for loss in sub._get_own_losses()]
            if added:
                out.setdefault(name, []).extend(added)
        return out

    def upstream(self, targets) -> tuple[list[str], set[str]]:
        """The blocks `targets` depend on (themselves included, in run order) and the
        feature groups those blocks read (through packages too)."""
        needed = set(targets)
        for t in targets:
            needed |= self.spec.ancestors(t)
        order = [n for n in self.order if n in needed]
        groups: set[str] = set()
        for n in order:
            for inp in self.spec.blocks[n].inputs:
                if inp.kind == "group":
                    groups.add(inp.name)
                elif inp.kind == "package":
                    called = [inp.name]
                    if inp.package_input in self.packages:
                        called.append(inp.package_input)
                    elif inp.package_input and inp.package_input not in self.spec.blocks:
                        groups.add(inp.package_input)
                    for p in called:
                        pkg = self.packages[p].spec
                        groups |= {g for b in pkg.blocks.values() for g in b.group_inputs}
        return order, groups

    # ---- running -------------------------------------------------------------------------
    def _input_value(self, inp: InputSpec, values, features, package_input, training,
                     outer):
        if inp.kind == "group":
            return features["groups"][inp.name]
        if inp.kind == "block":
            return values[inp.name]
        if inp.kind == "package_input":
            return package_input
        if inp.kind == "outer_block":  # a main-DAG block, read by a package's block
            return outer[inp.name]
        # package: call the package on its input (a block, a group or another package's
        # output), with the main DAG's values for the blocks it reads
        arg = None
        if inp.package_input:
            name = inp.package_input
            if name in values:
                arg = values[name]
            elif name in self.packages:
                arg = self.packages[name](features, training=training, outer=values)
            else:
                arg = features["groups"][name]
        return self.packages[inp.name](features, package_input=arg, training=training,
                                       outer=values)

    def _run_block(self, block: _Block, values, features, package_input, training, outer):
        spec = block.spec
        if spec.kind == "input_layer":  # EasyRec's precedence of the output options
            group = spec.inputs[0].name
            if spec.output_seq_and_normal_feature:
                seq, lengths, target = features["seq_and_normal"][group]
                return [seq, lengths] if target is None else [seq, lengths, target]
            tensor, tensors = features["groups"][group], list(features["lists"][group])
            if block.input_options is not None:
                tensor, tensors = block.input_options(tensor, tensors, training=training)
            if spec.only_output_feature_list:
                return tensors
            if spec.only_output_3d_tensor:
                dims = sorted({int(t.shape[-1]) for t in tensors})
                if len(dims) > 1:  # EasyRec's tf.stack fails on these too
                    raise ConfigError(
                        f"{spec.where}: only_output_3d_tensor stacks the features of group "
                        f"{group!r} into (batch, fields, dim), which needs one embedding "
                        f"dimension; they have {', '.join(map(str, dims))}: give them one "
                        "embedding_dim, or use only_output_feature_list")
                return tf.stack(tensors, axis=1)
            if spec.output_2d_tensor_and_feature_list:
                return [tensor, tensors]
            return tensor
        if spec.kind == "raw_input":
            group = spec.inputs[0].name
            raw = features["raw"][group]
            if raw is None:
                raise ConfigError(f"{spec.where}: raw_input cannot take group {group!r}: it has "
                                  "multi-valued (tag) features")
            return raw
        vals = []
        for inp, fn in zip(spec.inputs, block.input_fns):
            v = self._input_value(inp, values, features, package_input, training, outer)
            if inp.index is not None:
                if not isinstance(v, (list, tuple)):  # a tensor: its width is known now
                    shape = (None,) * (len(v.shape) - 1) + tuple(v.shape[-1:])
                    check_slice_against_shape(inp.index, shape, spec.where)
                v = apply_slice(v, inp.index)
            if fn is not None:
                v = fn(v)
            if not inp.ignore:
                vals.append(v)
        if spec.merge_inputs_into_list:
            x = vals
        else:
            x = _concat(vals, spec.input_concat_axis, spec.where, join_lists=True)
        if block.extra_fn is not None:
            x = block.extra_fn(x)
        for step in block.steps:
            x = step(x, training)
        return x

    def block_values(self, features: dict, package_input=None, training=None,
                     only=None, outer=None) -> dict:
        """Runs the blocks in topological order (`only`: just these, in that order);
        returns {block name: output}. outer (a package's): the main DAG's values."""
        values: dict[str, Any] = {}
        for name in only or self.order:
            block = self.blocks[name]
            try:
                values[name] = self._run_block(block, values, features, package_input, training,
                                               outer)
            except EasyblocksError:
                raise
            except Exception as e:  # the block's own error: one line naming the block
                raise ConfigError(f"{block.where} ({block.spec.class_name}): "
                                  f"{type(e).__name__}: {_first_line(e)}") from e
        return values

    def call(self, features: dict, package_input=None, training=None, outer=None):
        values = self.block_values(features, package_input, training, outer=outer)
        if self.spec.output_kind == "output_blocks":
            out = []
            for name in self.spec.outputs:
                v = values[name]
                out.extend(v if isinstance(v, (list, tuple)) else [v])
        elif self.is_package and len(self.spec.outputs) == 1:
            out = values[self.spec.outputs[0]]
        else:
            for n in self.spec.outputs:
                if isinstance(values[n], (list, tuple)):
                    raise ConfigError(
                        f"{self.spec.blocks[n].where}: {self.spec.name} concat_blocks: block "
                        f"{n!r} outputs a list of {len(values[n])} tensors, which cannot be "
                        "concatenated; name it in output_blocks instead (its tensors go to the "
                        "task towers in order), or pick one tensor in a block with "
                        "input_slice: \"[0]\"")
            out = _concat([values[n] for n in self.spec.outputs], -1,
                          f"{self.spec.name} concat_blocks")
        if self.extra_outputs:
            return out, {name: values[name] for name in self.extra_outputs}
        return out


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(e: BaseException) -> str:
    """The first meaningful line of an exception's message, without terminal colours (Keras
    wraps errors raised in a layer's call in a multi-line banner with ANSI codes)."""
    text = _ANSI.sub("", str(e)).strip()
    for line in text.splitlines():
        line = line.strip().strip("'\"")
        # TensorFlow's op errors start with "{{function_node ...}}" and end with "[Op:Name]"
        line = re.sub(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]( name: \S*)?$", "",
                      line)
        if line and not line.startswith("Exception encountered when calling"):
            return line
    return type(e).__name__


class Backbone(keras.layers.Layer):
    """The model's backbone: packages, the main DAG and the optional top MLP.

    Call with the dict from FeatureGroups; returns a tensor (concat_blocks) or a
    list of tensors (output_blocks, in task-tower order).
    """

    def __init__(self, spec: BackboneSpec, extra_outputs=(), **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.packages = {name: Dag(p, is_package=True, name=f"package_{name}")
                         for name, p in spec.packages.items()}
        self.dag = Dag(spec.dag, self.packages, extra_outputs=extra_outputs, name="dag")
        self.top_mlp = MLP(name="top_mlp", **spec.top_mlp) if spec.top_mlp is not None else None
        self.built = True  # no weights of its own (see Dag)

    def dags(self) -> list[tuple[str, Dag]]:
        """(prefix, Dag) for the main DAG ("") and every package ("package_<name>/")."""
        return [("", self.dag)] + [(f"package_{n}/", d) for n, d in self.packages.items()]

    def call(self, features: dict, training=None):
        """Returns the output, or (output, extras) when extra_outputs were requested."""
        result = self.dag(features, training=training)
        out, extras = result if self.dag.extra_outputs else (result, None)
        if self.top_mlp is not None:
            out = self.top_mlp(out, training=training)
        return (out, extras) if self.dag.extra_outputs else out
