"""EasyRec's multi-task model classes as templates: MMoE, ESMM, DBMTL, SimpleMultiTask and
PLE, each a MultiTaskModel: a bottom (group `all`, or the config's own backbone as in
EasyRec), the class's shared network as backbone blocks, and the task towers (their `dnn`,
EasyRec's DNN, then a Dense(num_class)).

EasyRec's TaskTower becomes MultiTaskModel's BayesTaskTower with the same fields.
"""

from __future__ import annotations

from easyblocks.config.templates import TemplateInput, register_model_class
from easyblocks.config.templates.build import (
    B,
    Backbone,
    G,
    backbone_output,
    base_model,
    copy_towers,
    dnn_units,
    expand_relation_towers,
    mlp_params,
    task_tower,
)
from easyblocks.protos import layers_pb2, loss_pb2

CLASSIFICATION = loss_pb2.LossType.Value("CLASSIFICATION")


def _bottom(ctx: TemplateInput, what: str):
    """EasyRec's input of a multi-task class: the backbone's output when the config has a
    backbone, else group `all`."""
    if ctx.model.HasField("backbone"):
        return backbone_output(ctx.model, ctx.loaded, f"model_class {ctx.name}")
    ctx.require_groups("all")
    return G("all")


def _as_output(build: Backbone, inp) -> str:
    """A block name whose output is `inp` (an input_layer block for a group)."""
    if inp.WhichOneof("name") == "block_name" and not inp.input_slice:
        return inp.block_name
    if inp.WhichOneof("name") == "feature_group_name":
        if inp.feature_group_name in {b.name for b in build.backbone.blocks}:
            return inp.feature_group_name
        return build.input_layer(inp.feature_group_name)
    return build.block("bottom", [inp]).name


def _towers(ctx: TemplateInput, towers, field: str = "task_towers") -> list:
    if not towers:
        raise ctx.error(f"{field} is empty", field)
    return [task_tower(t) for t in towers]


@register_model_class("MMoE", "mmoe")
def mmoe(ctx: TemplateInput):
    """Multi-gate mixture of experts: `num_expert` experts (expert_dnn; or one per
    `experts { dnn }`) on the bottom, one softmax gate per task tower, then the towers.

    EasyRec builds the experts of its MMoE layer in inference mode (is_training is never
    passed: batch norm uses its moving statistics and dropout is off while training); here
    they train like every other DNN.
    """
    p = ctx.params
    towers = _towers(ctx, p.task_towers)
    bottom = _bottom(ctx, "mmoe")
    build = Backbone(ctx.model)
    layer = layers_pb2.MMoELayer(num_task=len(towers))
    if p.HasField("expert_dnn"):
        expert = mlp_params(p.expert_dnn)
        if expert is None or p.num_expert < 1:
            raise ctx.error("expert_dnn needs hidden_units and num_expert > 0", "expert_dnn")
        layer.num_expert = p.num_expert
        layer.expert_mlp.CopyFrom(expert)
        out = build.keras("mmoe", [bottom], "MMoE", params="mmoe", message=layer)
    else:
        if not p.experts:
            raise ctx.error("set expert_dnn and num_expert, or experts", "mmoe")
        experts = [build.dnn(e.expert_name or f"expert_{i}", [bottom], e.dnn)
                   for i, e in enumerate(p.experts)]
        layer.num_expert = len(experts)
        out = build.keras("mmoe", [B(e) for e in experts] + [bottom], "MMoE", params="mmoe",
                          message=layer, merge=True)
    model = base_model(ctx.model, "MultiTaskModel", p.l2_regularization)
    copy_towers(model, towers)
    model.backbone.output_blocks.append(out)
    return model


@register_model_class("ESMM", "esmm")
def esmm(ctx: TemplateInput):
    """Entire space multi-task model (Ma et al., SIGIR 2018): a shared bottom (each
    `groups { input dnn }` through its DNN, concatenated; else group `all`), a ctr tower and
    a cvr tower whose probability is p_cvr x p_ctr (`prob_product_of`), its losses on the
    product (pCTCVR).

    Towers without label_name take EasyRec's labels: cvr the first of label_fields, ctr the
    second. Differences: each loss is the batch mean (EasyRec sums over the batch, so its
    strength grows with the batch size); the cvr tower's label is used as the click-and-
    convert label (EasyRec multiplies it by the ctr label: the same where conversions follow
    clicks); `probs_<cvr tower>` is pCTCVR and `cond_probs_<cvr tower>` pCVR (EasyRec:
    probs_ctcvr and probs_<cvr tower>). A cvr tower with L2_LOSS is not implemented.
    """
    p = ctx.params
    for field in ("ctr_tower", "cvr_tower"):
        if not p.HasField(field):
            raise ctx.error(f"needs {field}", "esmm")
    if p.ctr_tower.loss_type != CLASSIFICATION or p.ctr_tower.num_class != 1:
        raise ctx.error("the ctr tower must be a binary CLASSIFICATION tower (num_class 1)",
                        "ctr_tower")
    if p.cvr_tower.loss_type != CLASSIFICATION or p.cvr_tower.num_class != 1:
        raise ctx.error("the cvr tower must be a binary CLASSIFICATION tower (num_class 1); "
                        "L2_LOSS (EasyRec's y_ctcvr) is not implemented yet", "cvr_tower")
    ctr, cvr = task_tower(p.ctr_tower), task_tower(p.cvr_tower)
    for tower, i in ((cvr, 0), (ctr, 1)):  # EasyRec matches labels to [cvr, ctr] in order
        if not tower.label_name:
            if i >= len(ctx.label_fields):
                raise ctx.error(f"tower {tower.tower_name!r} has no label_name and "
                                f"data_config.label_fields has no entry {i}", "tower_name",
                                tower.tower_name)
            tower.label_name = ctx.label_fields[i]
    cvr.prob_product_of.append(ctr.tower_name)
    build = Backbone(ctx.model)
    if ctx.model.HasField("backbone") or not p.groups:
        bottom = _as_output(build, _bottom(ctx, "esmm"))
    else:
        ctx.require_groups(*[g.input for g in p.groups])
        parts = [build.dnn(f"{g.input}_dnn", [G(g.input)], g.dnn) for g in p.groups]
        bottom = parts[0] if len(parts) == 1 else build.block("bottom", [B(x) for x in parts]).name
    model = base_model(ctx.model, "MultiTaskModel", p.l2_regularization)
    copy_towers(model, [ctr, cvr])
    model.backbone.concat_blocks.append(bottom)
    return model


@register_model_class("DBMTL", "dbmtl")
def dbmtl(ctx: TemplateInput):
    """Deep Bayesian multi-target learning: bottom_dnn on group `all` (or the config's
    backbone), an optional MMoE (expert_dnn, num_expert), then per task tower its `dnn` and its
    `relation_dnn` over [the tower's dnn output, the relation_dnn outputs of its
    relation_tower_names] (expand_relation_towers), and a Dense(num_class).

    bottom_cmbf / bottom_uniter (CMBF, Uniter) are not available. With a backbone, EasyRec
    ignores bottom_dnn; here setting both is an error.
    """
    p = ctx.params
    towers = list(p.task_towers)
    if not towers:
        raise ctx.error("task_towers is empty", "task_towers")
    build = Backbone(ctx.model)
    if ctx.model.HasField("backbone"):
        if p.HasField("bottom_dnn"):
            raise ctx.error("bottom_dnn with a backbone: EasyRec ignores bottom_dnn then; "
                            "remove one", "bottom_dnn")
        bottom = _bottom(ctx, "dbmtl")
    else:
        bottom = _bottom(ctx, "dbmtl")
        if dnn_units(p.bottom_dnn):
            bottom = B(build.dnn("bottom_dnn", [bottom], p.bottom_dnn))
    if p.HasField("expert_dnn"):
        expert = mlp_params(p.expert_dnn)
        if expert is None or p.num_expert < 1:
            raise ctx.error("expert_dnn needs hidden_units and num_expert > 0", "expert_dnn")
        layer = layers_pb2.MMoELayer(num_task=len(towers), num_expert=p.num_expert,
                                     expert_mlp=expert)
        out = build.keras("mmoe", [bottom], "MMoE", params="mmoe", message=layer)
        inputs = [B(out, f"[{i}]") for i in range(len(towers))]
    else:
        inputs = [bottom] * len(towers)
    copies = []
    for t in towers:
        copy = type(t)()
        copy.CopyFrom(t)
        copy.relation_dnn.SetInParent()  # DBMTL always runs relation_dnn (empty: identity)
        copies.append(copy)
    model = base_model(ctx.model, "MultiTaskModel", p.l2_regularization)
    copy_towers(model, copies)
    expand_relation_towers(model, ctx.loaded, inputs)
    return model


@register_model_class("SimpleMultiTask", "simple_multi_task")
def simple_multi_task(ctx: TemplateInput):
    """Towers (their dnn, then a Dense(num_class)) on one shared input: group `all` or the
    config's backbone."""
    p = ctx.params
    towers = _towers(ctx, p.task_towers)
    build = Backbone(ctx.model)
    out = _as_output(build, _bottom(ctx, "simple_multi_task"))
    model = base_model(ctx.model, "MultiTaskModel", p.l2_regularization)
    copy_towers(model, towers)
    model.backbone.concat_blocks.append(out)
    return model


@register_model_class("PLE", "ple")
def ple(ctx: TemplateInput):
    """Progressive layered extraction: the extraction networks (CGC layers: per-task and
    shared experts with softmax gates; block PLE) on group `all` (or the config's backbone),
    then the towers. `network_name` only named EasyRec's variable scopes."""
    p = ctx.params
    towers = _towers(ctx, p.task_towers)
    if not p.extraction_networks:
        raise ctx.error("extraction_networks is empty", "extraction_networks")
    layer = layers_pb2.PLELayer(num_task=len(towers))
    for net in p.extraction_networks:
        level = layer.extraction_networks.add(expert_num_per_task=net.expert_num_per_task,
                                              share_num=net.share_num)
        for field in ("task_expert_net", "share_expert_net"):
            mlp = mlp_params(getattr(net, field))
            if mlp is not None:
                getattr(level, field).CopyFrom(mlp)
    build = Backbone(ctx.model)
    out = build.keras("ple", [_bottom(ctx, "ple")], "PLE", params="ple", message=layer)
    model = base_model(ctx.model, "MultiTaskModel", p.l2_regularization)
    copy_towers(model, towers)
    model.backbone.output_blocks.append(out)
    return model
