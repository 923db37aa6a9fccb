"""Building blocks of the templates: backbone blocks as proto messages, EasyRec's DNN as an
MLP block, the towers of the base model classes, and the expansion of relation towers."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import backbone_pb2, layers_pb2, tower_pb2


def G(group: str) -> backbone_pb2.Input:  # noqa: N802  (short names keep templates readable)
    """An input that reads feature group `group` (or the input_layer block named like it)."""
    return backbone_pb2.Input(feature_group_name=group)


def B(block: str, input_slice: str | None = None) -> backbone_pb2.Input:  # noqa: N802
    """An input that reads block `block` (optionally `input_slice`, e.g. "[0]")."""
    inp = backbone_pb2.Input(block_name=block)
    if input_slice is not None:
        inp.input_slice = input_slice
    return inp


def dnn_units(dnn: Any) -> list[int]:
    """EasyRec's DNN layers; `hidden_units: 0` (or none) is the identity, as in EasyRec."""
    units = [int(u) for u in dnn.hidden_units]
    return [] if units in ([], [0]) else units


def mlp_params(dnn: Any, last_linear: bool = False) -> layers_pb2.MLP | None:
    """EasyRec's DNN (per layer: Dense with bias, glorot_uniform -> [BatchNorm] -> activation
    -> [dropout], the last layer included) as MLP parameters; None for no layers.

    last_linear: the last layer is a plain Dense with bias (no batch norm, no activation, no
    dropout), as DSSM's towers end.
    """
    units = dnn_units(dnn)
    if not units:
        return None
    mlp = layers_pb2.MLP(hidden_units=units, activation=dnn.activation, use_bn=dnn.use_bn,
                         use_final_bn=dnn.use_bn and not last_linear,
                         final_activation="linear" if last_linear else dnn.activation,
                         use_bias=True, use_final_bias=True, initializer="glorot_uniform")
    ratios = [float(r) for r in dnn.dropout_ratio]
    if last_linear and ratios:
        n = len(units)
        ratios = ([ratios[0]] * (n - 1) if len(ratios) == 1 else ratios[:n - 1]) + [0.0]
    if any(ratios):
        mlp.dropout_ratio.extend(ratios)
    return mlp


def mlp_kwargs(dnn: Any, last_linear: bool = False) -> dict:
    """`mlp_params` as a dict of MLP constructor arguments (for nested block parameters)."""
    from easyblocks.config.kwargs import message_to_kwargs

    mlp = mlp_params(dnn, last_linear)
    return {} if mlp is None else message_to_kwargs(mlp)


class Backbone:
    """Adds blocks to a model_config's backbone, with names unique among its blocks,
    packages and feature groups."""

    def __init__(self, model: Any):
        self.model = model
        self.backbone = model.backbone
        self.taken = {b.name for b in self.backbone.blocks} | \
            {p.name for p in self.backbone.packages} | \
            {g.group_name for g in model.feature_groups}

    def name(self, wanted: str) -> str:
        name, i = wanted, 2
        while name in self.taken:
            name, i = f"{wanted}_{i}", i + 1
        self.taken.add(name)
        return name

    def block(self, name: str, inputs: list, *, merge: bool = False,
              exact_name: bool = False) -> backbone_pb2.Block:
        """A new block (no layer yet: the identity, concatenating several inputs)."""
        if exact_name:
            self.taken.add(name)
        else:
            name = self.name(name)
        block = self.backbone.blocks.add(name=name)
        for inp in inputs:
            block.inputs.add().CopyFrom(inp)
        if merge:
            block.merge_inputs_into_list = True
        return block

    def input_layer(self, group: str, *, name: str | None = None, **options: Any) -> str:
        """An input_layer block over `group` with InputLayer options; by default named like
        the group (EasyRec's style: blocks reading that group then get this block's output)."""
        block = self.block(name or group, [G(group)], exact_name=name is None)
        block.input_layer.SetInParent()
        for key, value in options.items():
            setattr(block.input_layer, key, value)
        return block.name

    def keras(self, name: str, inputs: list, class_name: str, *, params: str | None = None,
              message: Any = None, st: dict | None = None, merge: bool = False) -> str:
        """A keras_layer block: a typed params message (`params` field, `message`), or
        st_params (`st`), or no parameters."""
        block = self.block(name, inputs, merge=merge)
        _set_layer(block.keras_layer, class_name, params, message, st)
        return block.name

    def layers(self, name: str, inputs: list, steps: list[tuple], *, merge: bool = False) -> str:
        """A block of sequential steps: ("keras", class_name, params, message, st) or
        ("lambda", expression)."""
        block = self.block(name, inputs, merge=merge)
        for step in steps:
            layer = block.layers.add()
            if step[0] == "lambda":
                getattr(layer, "lambda").expression = step[1]
            else:
                _set_layer(layer.keras_layer, *step[1:])
        return block.name

    def dnn(self, name: str, inputs: list, dnn: Any, last_linear: bool = False) -> str:
        """EasyRec's DNN as an MLP block; with no layers, an identity block (it concatenates
        several inputs; one block input is returned as it is)."""
        mlp = mlp_params(dnn, last_linear)
        if mlp is None:
            if len(inputs) == 1 and inputs[0].WhichOneof("name") == "block_name" and \
                    not inputs[0].input_slice:
                return inputs[0].block_name
            return self.block(name, inputs).name
        return self.keras(name, inputs, "MLP", params="mlp", message=mlp)

    def expression(self, name: str, inputs: list, expression: str) -> str:
        block = self.block(name, inputs)
        getattr(block, "lambda").expression = expression
        return block.name

    def dense(self, name: str, inputs: list, units: int) -> str:
        """A Dense(units) block (kernel glorot_uniform, bias zeros: tf.layers.dense's)."""
        return self.keras(name, inputs, "Dense", st={"units": units})


def _set_layer(keras_layer: Any, class_name: str, params: str | None = None,
               message: Any = None, st: dict | None = None) -> None:
    keras_layer.class_name = class_name
    if params is not None:
        getattr(keras_layer, params).CopyFrom(message)
    elif st is not None:
        keras_layer.st_params.CopyFrom(_struct(st))


def _struct(values: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


# ---- the model_config a template returns ----------------------------------------------------

def base_model(model: Any, model_class: str, l2_regularization: float) -> Any:
    """`model` (a template's copy of model_config) turned into a RankModel / MultiTaskModel:
    the class's parameter message is replaced by model_params { l2_regularization }; the
    feature groups, losses, regularization and the backbone (if any) stay."""
    which = model.WhichOneof("model")
    if which and which != "model_params":
        model.ClearField(which)
    model.model_class = model_class
    model.model_params.l2_regularization = l2_regularization
    return model


def rank_output(model: Any, output: str) -> Any:
    """A RankModel whose backbone output `output` (batch, num_class) is the logit."""
    del model.backbone.concat_blocks[:]
    del model.backbone.output_blocks[:]
    model.backbone.concat_blocks.append(output)
    model.logit_from_backbone = True
    return model


def task_tower(tower: Any) -> tower_pb2.BayesTaskTower:
    """A TaskTower (MMoE, ESMM, PLE, SimpleMultiTask) as MultiTaskModel's BayesTaskTower (the
    same fields: name, label, losses, metrics, dnn, weight)."""
    out = tower_pb2.BayesTaskTower()
    for field, value in tower.ListFields():
        target = getattr(out, field.name)
        if field.is_repeated:
            for v in value:
                if field.type == field.TYPE_MESSAGE:
                    target.add().CopyFrom(v)
                else:
                    target.append(v)
        elif field.type == field.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(out, field.name, value)
    return out


def backbone_output(model: Any, loaded: Any, what: str) -> backbone_pb2.Input:
    """The output of the config's own backbone as one input (a multi-task model class on a
    backbone: EasyRec's `self.backbone`): its concat_blocks (or leaves) joined in one block,
    its top_mlp turned into a block. The backbone's outputs are cleared."""
    from easyblocks.config.dag import order_blocks

    bb = model.backbone
    if bb.output_blocks:
        raise ConfigError(f"{loaded.locate('output_blocks')}: {what}: the backbone must give one "
                          "output (concat_blocks), not output_blocks")
    names = list(bb.concat_blocks)
    if not names:
        groups = [g.group_name for g in model.feature_groups]
        _, graph = order_blocks(bb.blocks, groups, [p.name for p in bb.packages],
                                lambda f, v: loaded.locate_name(f, v))
        names = [n for n in (b.name for b in bb.blocks) if graph.out_degree(n) == 0]
    del bb.concat_blocks[:]
    build = Backbone(model)
    out = names[0] if len(names) == 1 else \
        build.block("backbone_output", [B(n) for n in names]).name
    if bb.HasField("top_mlp"):
        out = build.keras("top_mlp", [B(out)], "MLP", params="mlp", message=bb.top_mlp)
        bb.ClearField("top_mlp")
    return B(out)


# ---- MultiTaskModel's relation towers (DBMTL) ----------------------------------------------

def has_relation_towers(model: Any) -> bool:
    return model.model_class == "MultiTaskModel" and any(
        t.HasField("relation_dnn") for t in model.model_params.task_towers)


def expand_relation_towers(model: Any, loaded: Any, task_inputs: list | None = None) -> None:
    """Moves the `dnn` and `relation_dnn` of MultiTaskModel's towers into backbone blocks.

    EasyRec's MultiTaskModel (and DBMTL): each tower t runs its `dnn` on its input (h_t);
    a tower with `relation_dnn` then runs it on [h_t, r_s for s in relation_tower_names],
    where r_s is the relation_dnn output of an earlier tower s; its logit is a Dense on r_t.
    Here h_t and r_t become blocks `<t>_dnn` and `<t>_relation_dnn`, and r_t is the tower's
    backbone output; towers without relation_dnn keep their dnn.

    task_inputs: each tower's input; default: the backbone's output_blocks (one per tower)
    or its one output.
    """
    towers = model.model_params.task_towers
    build = Backbone(model)
    bb = model.backbone
    if task_inputs is None:
        if bb.output_blocks:
            if len(bb.output_blocks) != len(towers):
                raise ConfigError(
                    f"{loaded.locate('output_blocks')}: relation_dnn needs one backbone output "
                    f"block per task tower ({len(towers)}), or one output (concat_blocks); got "
                    f"output_blocks {', '.join(bb.output_blocks)}")
            task_inputs = [B(n) for n in bb.output_blocks]
        else:
            task_inputs = [backbone_output(model, loaded, "relation_dnn")] * len(towers)
    del bb.output_blocks[:]
    del bb.concat_blocks[:]
    relation: dict[str, str] = {}
    outputs = []
    for index, (t, inp) in enumerate(zip(towers, task_inputs)):
        where = f"{loaded.locate_name('tower_name', t.tower_name)}: tower {t.tower_name!r}"
        if not t.HasField("relation_dnn"):
            outputs.append(inp.block_name if inp.block_name and not inp.input_slice
                           else build.block(f"{t.tower_name}_input", [inp]).name)
            continue
        x = inp
        if t.HasField("dnn"):
            x = B(build.dnn(f"{t.tower_name}_dnn", [x], t.dnn))
        inputs = [x]
        for r in t.relation_tower_names:
            if r not in relation:
                names = [s.tower_name for s in towers[:index]]
                raise ConfigError(
                    f"{where}: relation_dnn reads the relation_dnn output of tower {r!r}, which "
                    "is not an earlier tower with relation_dnn" +
                    ("" if r in names else suggest(r, names)))
            inputs.append(B(relation[r]))
        # an empty relation_dnn on one block input: that block is r_t
        relation[t.tower_name] = build.dnn(f"{t.tower_name}_relation_dnn", inputs,
                                           t.relation_dnn)
        t.ClearField("dnn")
        t.ClearField("relation_dnn")
        outputs.append(relation[t.tower_name])
    bb.output_blocks.extend(outputs)


def copy_towers(model: Any, towers: list) -> None:
    """Sets model_params.task_towers (BayesTaskTower messages)."""
    del model.model_params.task_towers[:]
    for t in towers:
        model.model_params.task_towers.add().CopyFrom(t)

