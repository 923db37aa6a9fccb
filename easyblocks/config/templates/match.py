"""EasyRec's two-tower model classes as templates: DSSM and DSSM_SENet.

A user tower (group `user`) and an item tower (group `item`) map their features to vectors;
the logit is their similarity (block Similarity). Each tower is a block, so
`easyblocks export --block user_tower --block item_tower` serves the vectors for retrieval.
With loss_type SOFTMAX_CROSS_ENTROPY the model trains on a softmax over in-batch negatives
(every item of the batch scored against every user; see models/losses.py).
"""

from __future__ import annotations

from easyblocks.config.templates import TemplateInput, register_model_class
from easyblocks.config.templates.build import B, Backbone, G, base_model, mlp_params, rank_output
from easyblocks.protos import layers_pb2, loss_pb2, simi_pb2

SOFTMAX = loss_pb2.LossType.Value("SOFTMAX_CROSS_ENTROPY")
NORMALIZE = "lambda x: tf.math.l2_normalize(x, axis=-1)"


def _tower(build: Backbone, ctx: TemplateInput, side: str, senet: bool) -> str:
    """`<side>_tower`: [SENet over the group's fields,] the DNN whose last layer is linear
    (EasyRec: DNN on all but the last width, then a Dense with bias), l2-normalised for
    COSINE (EasyRec normalises the tower vectors it outputs)."""
    tower = getattr(ctx.params, f"{side}_tower")
    mlp = mlp_params(tower.dnn, last_linear=True)
    if mlp is None:
        raise ctx.error(f"{side}_tower.dnn needs hidden_units (the last one is the vector's "
                        "width)", f"{side}_tower")
    inputs = [G(side)]
    if senet:
        se = tower.senet
        params = layers_pb2.SENet(
            reduction_ratio=se.reduction_ratio, num_squeeze_group=se.num_squeeze_group,
            # EasyRec's DSSM_SENet runs the original SENet: no skip connection, no layer norm,
            # whatever these two fields say; set, they are honoured here
            use_skip_connection=se.use_skip_connection if se.HasField("use_skip_connection")
            else False,
            use_output_layer_norm=se.use_output_layer_norm
            if se.HasField("use_output_layer_norm") else False)
        fields = build.input_layer(side, name=f"{side}_fields", only_output_feature_list=True)
        inputs = [B(build.keras(f"{side}_senet", [B(fields)], "SENet", params="senet",
                                message=params))]
    steps = [("keras", "MLP", "mlp", mlp)]
    if ctx.params.simi_func == simi_pb2.COSINE:
        steps.append(("lambda", NORMALIZE))
    return build.layers(f"{side}_tower", inputs, steps)


def _two_towers(ctx: TemplateInput, senet: bool):
    p = ctx.params
    if ctx.model.HasField("backbone"):
        raise ctx.error("takes no backbone (EasyRec builds it without one)", "backbone")
    ctx.require_groups("user", "item")
    if ctx.model.num_class != 1:
        raise ctx.error("num_class must be 1 (the logit is one similarity)", "num_class")
    build = Backbone(ctx.model)
    user, item = _tower(build, ctx, "user", senet), _tower(build, ctx, "item", senet)
    params = layers_pb2.SimilarityLayer(simi_func=simi_pb2.Similarity.Name(p.simi_func),
                                        temperature=p.temperature, scale_simi=p.scale_simi)
    output = build.keras("similarity", [B(user), B(item)], "Similarity", params="similarity",
                         message=params, merge=True)
    item_id = p.item_id
    model = ctx.model
    if model.loss_type == SOFTMAX and not model.losses:
        model.losses.add(loss_type=SOFTMAX)
        model.ClearField("loss_type")
    for loss in model.losses:
        if loss.loss_type == SOFTMAX and item_id and not loss.item_id:
            loss.item_id = item_id
    return rank_output(base_model(model, "RankModel", p.l2_regularization), output)


@register_model_class("DSSM", "dssm")
def dssm(ctx: TemplateInput):
    """DSSM two towers: each a DNN ending in a linear layer (l2-normalised for COSINE); logit
    = similarity / temperature (then * |w| + b with scale_simi).

    loss_type CLASSIFICATION / L2_LOSS: pointwise on the logit; SOFTMAX_CROSS_ENTROPY: a
    softmax over in-batch negatives, with `item_id` masking in-batch copies of a positive's
    item (EasyRec's MatchModel; it also samples negatives with a negative sampler, which is
    not available here). The temperature applies to INNER_PRODUCT too (EasyRec: only to
    COSINE).
    """
    return _two_towers(ctx, senet=False)


@register_model_class("DSSM_SENet", "dssm_senet")
def dssm_senet(ctx: TemplateInput):
    """DSSM whose towers first re-weight their fields with a SENet (reduction_ratio,
    num_squeeze_group; EasyRec's original SENet: squeeze by max and mean per group, excite
    without a sigmoid, no skip connection, no layer norm), then the DNN (see DSSM)."""
    return _two_towers(ctx, senet=True)
