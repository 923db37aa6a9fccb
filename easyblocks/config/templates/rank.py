"""EasyRec's ranking model classes as templates: MultiTower, DeepFM, WideAndDeep, FM, DCN,
DLRM and AutoInt, each a RankModel whose backbone ends in an `output` block, the logit
(batch, num_class) (`logit_from_backbone`).

Each template follows EasyRec's easy_rec/python/model/<class>.py: which feature groups feed
which part, the DNNs (EasyRec's DNN: Dense with bias, glorot_uniform, batch norm, activation,
dropout, every layer), how the parts are summed or concatenated, and l2_regularization
(model_params.l2_regularization: every dense kernel of the model, see docs/easyrec.md).
Where easyblocks differs, the template's docstring says how.
"""

from __future__ import annotations

from easyblocks.config.templates import TemplateInput, register_model_class
from easyblocks.config.templates.build import B, Backbone, G, base_model, dnn_units, rank_output
from easyblocks.protos import layers_pb2


def _no_backbone(ctx: TemplateInput) -> None:
    if ctx.model.HasField("backbone"):
        raise ctx.error("takes no backbone (EasyRec builds it without one); use model_class "
                        "RankModel to write the backbone yourself", "backbone")


def _sum_wide(build: Backbone, ctx: TemplateInput, group: str, width: int) -> str:
    """The WIDE group's weights summed over its features: (batch, width)."""
    n = len(ctx.group_features(group))
    if width == 1:
        expr = "lambda x: tf.reduce_sum(x, axis=-1, keepdims=True)"
    else:
        expr = f"lambda x: tf.reduce_sum(tf.reshape(x, [-1, {n}, {width}]), axis=1)"
    return build.expression(f"{group}_logit", [G(group)], expr)


def _check_wide(ctx: TemplateInput, group: str) -> None:
    if ctx.groups[group].wide_deep != 1:  # WideOrDeep.WIDE
        raise ctx.error(f"feature group {group!r} must be wide_deep: WIDE", "group_name", group)


@register_model_class("MultiTower", "multi_tower")
def multi_tower(ctx: TemplateInput):
    """Towers (one per `towers { input dnn }`: batch norm of the group, then its DNN),
    concatenated, then final_dnn and a Dense(num_class) logit.

    din_towers / bst_towers (MultiTowerDIN, MultiTowerBST) read seq_att_groups, which are not
    available yet: they are refused (EasyRec's MultiTower ignores them silently).
    """
    p = ctx.params
    _no_backbone(ctx)
    if not p.towers:
        raise ctx.error("multi_tower has no towers", "multi_tower")
    ctx.require_groups(*[t.input for t in p.towers])
    build = Backbone(ctx.model)
    outs = []
    for t in p.towers:
        # EasyRec: tf.layers.batch_normalization (momentum 0.99, epsilon 1e-3) of the group;
        # here with debiased moving statistics (Keras' are stale after a short run: 0.547
        # against 0.640 clk AUC after one pass, docs/benchmarks/zoo.md)
        bn = build.keras(f"{t.input}_fea_bn", [G(t.input)], "BatchNorm",
                         st={"momentum": 0.99, "epsilon": 1e-3})
        outs.append(build.dnn(f"{t.input}_dnn", [B(bn)], t.dnn))
    final = build.dnn("final_dnn", [B(o) for o in outs], p.final_dnn)
    output = build.dense("output", [B(final)], ctx.model.num_class)
    return rank_output(base_model(ctx.model, "RankModel", p.l2_regularization), output)


@register_model_class("DeepFM", "deepfm")
def deepfm(ctx: TemplateInput):
    """Wide (group `wide`, WIDE), FM and DNN (group `deep`; the FM reads group `fm` when
    there is one), summed into the logit, or concatenated into final_dnn.

    The wide part is every wide weight summed (EasyRec: `reduce_sum` over the features'
    wide_output_dim-wide weights; with num_class > 1 and wide_output_dim == num_class, one sum
    per class). The FM is EasyRec's vector form 0.5 ((sum v)^2 - sum v^2) (batch, d), summed
    when there is no final_dnn. Without final_dnn: logit = wide + sum(fm) + Dense(num_class)
    (dnn); with it: Dense(num_class)(final_dnn([wide, fm, dnn])). `dense_regularization`,
    when set, replaces l2_regularization (EasyRec's backward compatibility);
    `wide_regularization` is ignored, as by EasyRec.
    """
    p = ctx.params
    _no_backbone(ctx)
    ctx.require_groups("wide", "deep")
    _check_wide(ctx, "wide")
    num_class = ctx.model.num_class
    has_final = bool(dnn_units(p.final_dnn))
    k = p.wide_output_dim
    if not has_final and k != num_class:
        raise ctx.error(f"without final_dnn, wide_output_dim ({k}) must equal num_class "
                        f"({num_class}) (the wide part is added to the logit)", "wide_output_dim")
    build = Backbone(ctx.model)
    build.input_layer("wide", wide_output_dim=k)
    wide = _sum_wide(build, ctx, "wide", num_class if num_class > 1 and k == num_class else 1)
    fm_group = "fm" if "fm" in ctx.groups else "deep"
    fields = build.input_layer(fm_group, name=f"{fm_group}_fields", only_output_3d_tensor=True)
    fm = build.keras("fm_feature", [B(fields)], "FM", params="fm",
                     message=layers_pb2.FM(use_variant=True))
    deep = build.dnn("deep_feature", [G("deep")], p.dnn)
    if has_final:
        final = build.dnn("final_dnn", [B(wide), B(fm), B(deep)], p.final_dnn)
        output = build.dense("output", [B(final)], num_class)
    else:
        if num_class > 1:
            fm_logit = build.dense("fm_logits", [B(fm)], num_class)
        else:
            fm_logit = build.expression("fm_logits", [B(fm)],
                                        "lambda x: tf.reduce_sum(x, axis=-1, keepdims=True)")
        deep_logit = build.dense("deep_logits", [B(deep)], num_class)
        output = build.keras("output", [B(wide), B(fm_logit), B(deep_logit)], "Add", merge=True)
    l2 = p.dense_regularization if p.HasField("dense_regularization") else p.l2_regularization
    return rank_output(base_model(ctx.model, "RankModel", l2), output)


@register_model_class("WideAndDeep", "wide_and_deep")
def wide_and_deep(ctx: TemplateInput):
    """Wide (group `wide`, WIDE: the features' wide_output_dim-wide weights summed over the
    features) and a DNN (group `deep`): logit = wide + Dense(num_class)(dnn), or, with
    final_dnn, Dense(num_class)(final_dnn([wide, dnn])). Without final_dnn the wide width is
    num_class (EasyRec overrides wide_output_dim so).
    """
    p = ctx.params
    _no_backbone(ctx)
    ctx.require_groups("wide", "deep")
    _check_wide(ctx, "wide")
    num_class = ctx.model.num_class
    has_final = bool(dnn_units(p.final_dnn))
    k = p.wide_output_dim if has_final else num_class
    build = Backbone(ctx.model)
    build.input_layer("wide", wide_output_dim=k)
    wide = _sum_wide(build, ctx, "wide", k)
    deep = build.dnn("deep_feature", [G("deep")], p.dnn)
    if has_final:
        final = build.dnn("final_dnn", [B(wide), B(deep)], p.final_dnn)
        output = build.dense("output", [B(final)], num_class)
    else:
        deep_out = build.dense("deep_out", [B(deep)], num_class)
        output = build.keras("output", [B(deep_out), B(wide)], "Add", merge=True)
    return rank_output(base_model(ctx.model, "RankModel", p.l2_regularization), output)


@register_model_class("FM", "fm")
def fm(ctx: TemplateInput):
    """Factorization machine: logit = sum of the wide weights (group `wide`, WIDE) + the FM
    second-order term over group `deep` + a bias.

    `use_variant` is ignored, as by EasyRec's FM model class. num_class > 1 is refused:
    EasyRec sums its wide part over the classes into one number added to every class.
    """
    p = ctx.params
    _no_backbone(ctx)
    ctx.require_groups("wide", "deep")
    _check_wide(ctx, "wide")
    if ctx.model.num_class != 1:
        raise ctx.error("num_class > 1 is not implemented (EasyRec's FM sums the wide part "
                        "over the classes)", "num_class")
    build = Backbone(ctx.model)
    build.input_layer("wide", wide_output_dim=1)
    wide = _sum_wide(build, ctx, "wide", 1)
    fields = build.input_layer("deep", name="deep_fields", only_output_3d_tensor=True)
    fm_term = build.keras("fm_feature", [B(fields)], "FM")
    output = build.layers("output", [B(wide), B(fm_term)],
                          [("keras", "Add"), ("keras", "BiasAdd")], merge=True)
    return rank_output(base_model(ctx.model, "RankModel", p.l2_regularization), output)


@register_model_class("DCN", "dcn")
def dcn(ctx: TemplateInput):
    """Deep & Cross Network (v1): a DNN (deep_tower) and cross_num CrossV1 layers
    x_(l+1) = x_0 <w, x_l> + b + x_l (cross_tower) on one group, concatenated, then
    final_dnn and a Dense(num_class) logit.

    The towers read their `input` group (default `all`); EasyRec reads group `all` whatever
    `input` says. EasyRec starts the cross bias b from glorot_uniform (tf.get_variable's
    default); here it starts at 0.
    """
    p = ctx.params
    _no_backbone(ctx)
    deep_group = p.deep_tower.input or "all"
    cross_group = p.cross_tower.input or "all"
    ctx.require_groups(*sorted({deep_group, cross_group}))
    build = Backbone(ctx.model)
    deep = build.dnn("dnn", [G(deep_group)], p.deep_tower.dnn)
    num = p.cross_tower.cross_num
    if num:
        block = build.block("cross", [G(cross_group), G(cross_group)], merge=True)
        block.recurrent.num_steps = num
        block.recurrent.fixed_input_index = 0
        block.recurrent.keras_layer.class_name = "CrossV1"
        cross = block.name
    else:
        cross = build.block("cross", [G(cross_group)]).name
    final = build.dnn("final_dnn", [B(deep), B(cross)], p.final_dnn)
    output = build.dense("output", [B(final)], ctx.model.num_class)
    return rank_output(base_model(ctx.model, "RankModel", p.l2_regularization), output)


@register_model_class("DLRM", "dlrm")
def dlrm(ctx: TemplateInput):
    """DLRM (Naumov et al. 2019): bot_dnn on group `dense`; the dot products of
    [bot_dnn output, each `sparse` embedding] (arch_interaction_op "dot", with the squared
    norms when arch_interaction_itself), concatenated with the sparse embeddings (and the
    bot_dnn output with arch_with_dense_feature); or "cat": [bot_dnn output, sparse]; then
    top_dnn and a Dense(1) logit.

    The dot products come in the order of the DotInteraction block (the Gram matrix's lower
    triangle, row by row); EasyRec takes the upper triangle: the same numbers permuted, i.e.
    the same model up to the order of top_dnn's inputs.
    """
    p = ctx.params
    _no_backbone(ctx)
    ctx.require_groups("dense", "sparse")
    if ctx.model.num_class != 1:
        raise ctx.error("num_class must be 1 (EasyRec's DLRM ends in a Dense(1))", "num_class")
    op = p.arch_interaction_op
    if op not in ("dot", "cat"):
        raise ctx.error(f"arch_interaction_op must be 'dot' or 'cat', got {op!r}",
                        "arch_interaction_op")
    build = Backbone(ctx.model)
    bot = build.dnn("bot_dnn", [G("dense")], p.bot_dnn)
    top_inputs = [B(bot), G("sparse")]
    if op == "dot":
        sparse = ctx.group_features("sparse")
        dims = {ctx.feature_dims.get(f, 0) for f in sparse}
        units = dnn_units(p.bot_dnn)
        width = units[-1] if units else sum(
            ctx.feature_dims.get(f, 0) for f in ctx.group_features("dense"))
        if len(dims) != 1 or width not in dims:
            raise ctx.error(f"arch_interaction_op 'dot' needs the bot_dnn output ({width}) and "
                            f"every sparse embedding ({', '.join(map(str, sorted(dims)))}) to "
                            "have one width", "bot_dnn")
        fields = build.input_layer("sparse", name="sparse_fields", only_output_feature_list=True)
        interaction = build.keras(
            "interaction", [B(bot), B(fields)], "DotInteraction", params="dot_interaction",
            message=layers_pb2.DotInteraction(self_interaction=p.arch_interaction_itself))
        top_inputs = [B(interaction), G("sparse")] + ([B(bot)] if p.arch_with_dense_feature
                                                      else [])
    top = build.dnn("top_dnn", top_inputs, p.top_dnn)
    output = build.dense("output", [B(top)], 1)
    return rank_output(base_model(ctx.model, "RankModel", p.l2_regularization), output)


@register_model_class("AutoInt", "autoint")
def autoint(ctx: TemplateInput):
    """AutoInt (Song et al., CIKM 2019): the fields of group `all` (batch, F, d) through
    interacting_layer_num InteractingLayer blocks (multi-head self-attention with the
    residual connection), flattened, then a Dense(num_class) logit.

    The attention scores are divided by sqrt(multi_head_size); EasyRec multiplies them by it
    (see InteractingLayer).
    """
    p = ctx.params
    _no_backbone(ctx)
    ctx.require_groups("all")
    dims = {ctx.feature_dims.get(f, 0) for f in ctx.group_features("all")}
    if len(dims) != 1:
        raise ctx.error("every feature of group 'all' must have one embedding_dim (AutoInt "
                        f"attends over the fields), got {sorted(dims)}", "group_name", "all")
    build = Backbone(ctx.model)
    x = build.input_layer("all", name="all_fields", only_output_3d_tensor=True)
    if p.interacting_layer_num:
        params = layers_pb2.InteractingLayer(multi_head_num=p.multi_head_num)
        if p.HasField("multi_head_size"):
            params.multi_head_size = p.multi_head_size
        block = build.block("interacting_layers", [B(x)])
        block.recurrent.num_steps = p.interacting_layer_num
        block.recurrent.keras_layer.class_name = "InteractingLayer"
        block.recurrent.keras_layer.interacting_layer.CopyFrom(params)
        x = block.name
    output = build.layers("output", [B(x)], [
        ("keras", "Flatten"),
        ("keras", "Dense", None, None, {"units": ctx.model.num_class})])
    return rank_output(base_model(ctx.model, "RankModel", p.l2_regularization), output)
