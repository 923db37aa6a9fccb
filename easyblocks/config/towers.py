"""Task towers: what each head predicts, from which label, with which losses."""

from __future__ import annotations

import logging

from easyblocks.config.features import all_feature_configs, input_field_types
from easyblocks.config.kwargs import message_to_kwargs
from easyblocks.config.loader import LoadedConfig
from easyblocks.config.specs import REGRESSION_METRICS, InBatchSpec, LossSpec, TowerSpec
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import loss_pb2

log = logging.getLogger("easyblocks")
LossType = loss_pb2.LossType

# AITM's alpha (Xi et al. 2021, section 4.1.4 uses 0.6): the calibration loss weight
# when the config does not set one.
DEFAULT_CALIBRATION_WEIGHT = 0.6
# what a regression (L2_LOSS) tower is evaluated with (EasyRec's metric names), and what else
# it may ask for in its metrics_set
REGRESSION_TOWER_METRICS = ("mean_squared_error", "mean_absolute_error")
# a tower of more than two classes has no single positive score (for AUC): it is evaluated with
# the cross-entropy and the accuracy
MULTICLASS_METRICS = ("logloss", "accuracy")


# the parameters message of each loss type that has one (Loss.loss_param)
_LOSS_PARAMS = {"F1_REWEIGHTED_LOSS": ("f1_reweighted_loss", loss_pb2.F1ReweighedLoss),
                "ZILN_LOSS": ("ziln_loss", loss_pb2.ZILNLoss),
                "PAIR_WISE_LOSS": ("pairwise_loss", loss_pb2.PairwiseLoss)}


def _loss_params(name: str, loss, where: str) -> dict:
    """The loss's parameters message as a dict (EasyRec's defaults when unset)."""
    which = loss.WhichOneof("loss_param") if loss is not None else None
    field, message = _LOSS_PARAMS.get(name, (None, None))
    if which is not None and which != field:
        raise ConfigError(f"{where}: loss parameters {which} {{}} do not apply to loss_type "
                          f"{name}")
    if message is None:
        return {}
    return message_to_kwargs(getattr(loss, field) if which else message())


def _loss_specs(loss_type: int, losses, where: str = "") -> list[LossSpec]:
    if not losses:
        name = LossType.Name(loss_type)
        return [LossSpec(name, 1.0, _loss_params(name, None, where))]
    specs = []
    for loss in losses:
        name = LossType.Name(loss.loss_type)
        weight = loss.weight
        if name == "ORDER_CALIBRATE_LOSS" and not loss.HasField("weight"):
            weight = DEFAULT_CALIBRATION_WEIGHT
        specs.append(LossSpec(name, weight, _loss_params(name, loss, where),
                              item_id=loss.item_id))
    # two losses of one type in a tower get distinct names: "l2", "l2_1", ...
    seen: dict[str, int] = {}
    for spec in specs:
        n = seen.get(spec.loss_type, 0)
        seen[spec.loss_type] = n + 1
        if n:
            spec.name = f"{spec.key}_{n}"
    return specs


def _check_easyrec_losses(t: TowerSpec, where: str, sample_weight: bool) -> None:
    """EasyRec's rules for its F1_REWEIGHTED_LOSS and ZILN_LOSS."""
    types = {loss.loss_type for loss in t.losses}
    for name in ("F1_REWEIGHTED_LOSS", "PAIR_WISE_LOSS"):
        if name in types and t.num_class != 1:
            raise ConfigError(f"{where}: {name} needs num_class 1")
    if "ZILN_LOSS" in types:
        if t.num_class != 3:
            raise ConfigError(f"{where}: ZILN_LOSS needs num_class 3 (positive logit, mu, "
                              f"sigma), got {t.num_class}")
        if types != {"ZILN_LOSS"}:
            raise ConfigError(f"{where}: ZILN_LOSS cannot be combined with other losses in a "
                              "tower (its logits are not a class score)")
        if sample_weight and t.use_sample_weight:
            raise ConfigError(f"{where}: ZILN_LOSS with data_config.sample_weight: EasyRec "
                              "ignores the weights for this loss; remove sample_weight (or set "
                              "the tower's use_sample_weight: false)")


def _dnn_kwargs(dnn) -> dict | None:
    """A tower's `dnn` as MLP kwargs: EasyRec's DNN, per layer Dense (with bias,
    glorot_uniform) -> [BatchNorm] -> activation -> [dropout], the last layer included;
    None without hidden_units."""
    kw = message_to_kwargs(dnn)
    if not kw.get("hidden_units"):
        return None
    kw["use_final_bn"] = kw["use_bn"]
    kw["final_activation"] = kw["activation"]
    kw.update(use_bias=True, use_final_bias=True, initializer="glorot_uniform")
    return kw


def build_tower_specs(loaded: LoadedConfig) -> list[TowerSpec]:
    """Validated tower specs for RankModel (one implicit tower) or MultiTaskModel."""
    config = loaded.proto
    model = config.model_config
    labels = list(config.data_config.label_fields)
    fields = list(input_field_types(config))
    if model.model_class == "RankModel":
        if not labels:
            raise ConfigError(f"{loaded.path}: RankModel needs data_config.label_fields")
        label = model.label_name or labels[0]
        towers = [TowerSpec(name=label, label=label,
                            losses=_loss_specs(model.loss_type, model.losses,
                                               f"{loaded.locate('model_class')}: model_config"),
                            num_class=model.num_class, add_to_logit=list(model.add_to_logit),
                            logit_from_backbone=model.logit_from_backbone,
                            logit_if_num_class=True)]
        if towers[0].is_regression:
            towers[0].metrics = list(REGRESSION_TOWER_METRICS)
        elif towers[0].is_multiclass and towers[0].num_class > 2:
            towers[0].metrics = list(MULTICLASS_METRICS)
    elif model.model_class == "MultiTaskModel":
        protos = model.model_params.task_towers
        if not protos:
            raise ConfigError(f"{loaded.path}: MultiTaskModel needs model_params.task_towers")
        towers = []
        for i, t in enumerate(protos):
            label = t.label_name or (labels[i] if i < len(labels) else "")
            where = f"{loaded.locate_name('tower_name', t.tower_name)}: tower {t.tower_name!r}"
            if not label:
                raise ConfigError(f"{where}: no label_name and no label_fields entry {i}")
            metrics = ["auc", "logloss"]
            for m in t.metrics_set:
                which = m.WhichOneof("metric")
                if which and which not in metrics:
                    metrics.append(which)
            regression = all(loss.loss_type == LossType.L2_LOSS for loss in t.losses) \
                if t.losses else t.loss_type == LossType.L2_LOSS
            if regression:
                asked = [m.WhichOneof("metric") for m in t.metrics_set]
                wrong = [m for m in asked if m and m not in REGRESSION_METRICS]
                if wrong:
                    raise ConfigError(f"{where}: metrics_set {', '.join(wrong)}: a regression "
                                      "(L2_LOSS) tower predicts a number, evaluated with "
                                      f"{', '.join(REGRESSION_METRICS)}; remove the others")
                metrics = list(dict.fromkeys(REGRESSION_TOWER_METRICS + tuple(filter(None, asked))))
            elif t.num_class > 2 and not any(loss.loss_type == LossType.ZILN_LOSS
                                             for loss in t.losses):
                metrics = list(MULTICLASS_METRICS) + [m for m in metrics[2:]
                                                      if m not in MULTICLASS_METRICS]
            towers.append(TowerSpec(
                name=t.tower_name, label=label,
                losses=_loss_specs(t.loss_type, t.losses, where),
                use_sample_weight=t.use_sample_weight,
                weight=t.weight, num_class=t.num_class,
                dnn=_dnn_kwargs(t.dnn) if t.HasField("dnn") else None,
                relation_tower_names=list(t.relation_tower_names), metrics=metrics,
                add_to_logit=list(t.add_to_logit), logit_from_backbone=t.logit_from_backbone,
                prob_product_of=list(t.prob_product_of),
            ))
    else:
        from easyblocks.config import templates

        known = list(templates.BASE_CLASSES) + list(templates.registered_model_classes())
        raise ConfigError(
            f"{loaded.locate('model_class')}: model_class {model.model_class!r} is not supported"
            f"{suggest(model.model_class, known)}; expected one of {', '.join(known)}"
        )
    names = [t.name for t in towers]
    by_name = {t.name: t for t in towers}
    blocks = [b.name for b in model.backbone.blocks]
    for t in towers:
        where = f"{loaded.locate_name('tower_name', t.name)}: tower {t.name!r}"
        if names.count(t.name) > 1:
            raise ConfigError(f"{where}: duplicate tower_name")
        if t.label not in fields:
            raise ConfigError(f"{where}: label {t.label!r} is not in data_config.input_fields"
                              f"{suggest(t.label, fields)}")
        for b in t.add_to_logit:
            if b not in blocks:
                raise ConfigError(f"{loaded.locate_name('add_to_logit', b)}: tower {t.name!r}: "
                                  f"add_to_logit names {b!r}, which is not a backbone block"
                                  f"{suggest(b, blocks)}")
        earlier = names[:names.index(t.name)]
        for r in t.prob_product_of:
            if r not in earlier:
                raise ConfigError(f"{where}: prob_product_of names {r!r}, which is not a tower "
                                  f"listed before this one{suggest(r, earlier)}")
        if t.num_class < 1:
            raise ConfigError(f"{loaded.locate(r'num_class')}: tower {t.name!r}: num_class "
                              f"{t.num_class} gives no output; use num_class 1 (a binary label "
                              "or, with L2_LOSS, a number) or more (a class id: softmax)")
        if t.num_class != 1 and (t.is_regression or t.prob_product_of or any(
                loss.loss_type == "ORDER_CALIBRATE_LOSS" for loss in t.losses)):
            what = ("L2_LOSS predicts one number" if t.is_regression else
                    "prob_product_of multiplies probabilities of a binary label"
                    if t.prob_product_of else
                    "ORDER_CALIBRATE_LOSS compares probabilities of binary labels")
            raise ConfigError(f"{loaded.locate(r'num_class')}: tower {t.name!r}: num_class "
                              f"{t.num_class}: {what}; it needs num_class 1")
        kinds = {"L2_LOSS" if loss.loss_type == "L2_LOSS" else "classification"
                 for loss in t.losses}
        if len(kinds) > 1:
            others = sorted({x.loss_type for x in t.losses if x.loss_type != "L2_LOSS"})
            raise ConfigError(f"{where}: L2_LOSS (regression: the prediction is the logit) and "
                              f"{', '.join(others)} (a probability) cannot be mixed in one "
                              "tower; use two towers")
        for r in t.prob_product_of:
            if t.is_regression or by_name[r].is_regression:
                raise ConfigError(f"{where}: prob_product_of multiplies probabilities; "
                                  "regression (L2_LOSS) towers have none")
            if by_name[r].num_class != 1:
                raise ConfigError(f"{where}: prob_product_of names {r!r}, a tower of num_class "
                                  f"{by_name[r].num_class}; it needs towers of num_class 1")
        if t.logit_from_backbone and t.dnn:
            raise ConfigError(f"{where}: logit_from_backbone takes the backbone output as the "
                              "logit; remove dnn")
        _check_easyrec_losses(t, where, bool(config.data_config.sample_weight))
        if t.ziln:  # the label is a value (e.g. lifetime value), not 0/1
            t.metrics = [m for m in t.metrics if m != "logloss"]
        for r in t.relation_tower_names:
            if r not in names or r == t.name:
                raise ConfigError(f"{where}: relation_tower_names names {r!r}, which is not "
                                  f"another tower{suggest(r, names)}")
    _infer_relations(loaded, towers)
    for t in towers:
        for r in t.relation_tower_names:
            if by_name[r].is_regression or by_name[r].num_class != 1:
                what = ("a regression (L2_LOSS) tower" if by_name[r].is_regression
                        else f"a tower of num_class {by_name[r].num_class}")
                raise ConfigError(f"{loaded.locate_name('tower_name', t.name)}: tower "
                                  f"{t.name!r}: relation tower {r!r} is {what}; "
                                  "ORDER_CALIBRATE_LOSS compares probabilities of binary labels")
    _in_batch_towers(loaded, towers)
    return towers


def _in_batch_towers(loaded: LoadedConfig, towers: list[TowerSpec]) -> None:
    """SOFTMAX_CROSS_ENTROPY: the softmax over in-batch negatives scores every user of the
    batch against every item, so the tower's output block must be a two-tower similarity:
    a block with two block inputs (the user and the item vectors, merge_inputs_into_list),
    whose output is the logit (logit_from_backbone); its layer must score all pairs
    (Similarity; checked when the model is built)."""
    config = loaded.proto
    backbone = config.model_config.backbone
    blocks = {b.name: b for b in backbone.blocks}
    outputs = list(backbone.output_blocks) or list(backbone.concat_blocks)
    features = {fc.feature_name or fc.input_names[0]: fc for fc in all_feature_configs(config)
                if fc.input_names}
    for i, t in enumerate(towers):
        losses = [loss for loss in t.losses if loss.loss_type == "SOFTMAX_CROSS_ENTROPY"]
        if not losses:
            continue
        where = f"{loaded.locate_name('tower_name', t.name)}: tower {t.name!r}" \
            if config.model_config.model_class != "RankModel" else \
            f"{loaded.locate('SOFTMAX_CROSS_ENTROPY')}: tower {t.name!r}"
        need = ("needs its logit to be a two-tower similarity: logit_from_backbone and one "
                "backbone output block (a Similarity block) with two block inputs, the user "
                "and the item vectors, merge_inputs_into_list")
        if not t.logit_from_backbone or t.num_class != 1:
            raise ConfigError(f"{where}: SOFTMAX_CROSS_ENTROPY over in-batch negatives {need}")
        name = outputs[i] if len(outputs) == len(towers) else \
            (outputs[0] if len(outputs) == 1 else "")
        block = blocks.get(name)
        inputs = [inp for inp in block.inputs if not inp.ignore_input] if block else []
        if block is None or len(inputs) != 2 or not block.merge_inputs_into_list or any(
                inp.WhichOneof("name") != "block_name" or inp.input_fn for inp in inputs):
            raise ConfigError(f"{where}: SOFTMAX_CROSS_ENTROPY over in-batch negatives {need}"
                              + (f"; output block {name!r} is not" if block else ""))
        item = next((loss.item_id for loss in losses if loss.item_id), "")
        if item and item not in features:
            raise ConfigError(f"{loaded.locate_name('item_id', item)}: tower {t.name!r}: item_id "
                              f"{item!r} is not a feature{suggest(item, features)}")
        if item and features[item].feature_type != features[item].IdFeature:
            raise ConfigError(f"{loaded.locate_name('item_id', item)}: tower {t.name!r}: item_id "
                              f"{item!r} must be an IdFeature (one id per row)")
        if any(inp.input_slice for inp in inputs):
            raise ConfigError(f"{where}: SOFTMAX_CROSS_ENTROPY: the similarity block's inputs "
                              "must be whole blocks (no input_slice)")
        t.in_batch = InBatchSpec(name, inputs[0].block_name, inputs[1].block_name, item)


def _infer_relations(loaded: LoadedConfig, towers: list[TowerSpec]) -> None:
    """ORDER_CALIBRATE_LOSS without relation_tower_names: infer them from the backbone DAG.

    The relation of tower t is the tower whose output block is a direct input of
    t's output block (seed 004: `cvr_aitm` takes `ctr_tower`, so cvr's relation is
    ctr). EasyRec silently dropped the loss here; we infer and log, or fail.
    """
    backbone = loaded.proto.model_config.backbone
    outputs = list(backbone.output_blocks)
    blocks = {b.name: b for b in backbone.blocks}
    for i, t in enumerate(towers):
        if not any(loss.loss_type == "ORDER_CALIBRATE_LOSS" for loss in t.losses):
            continue
        if t.relation_tower_names:
            continue
        where = f"{loaded.locate_name('tower_name', t.name)}: tower {t.name!r}"
        found = []
        if len(outputs) == len(towers) and outputs[i] in blocks:
            feeds = [inp.block_name for inp in blocks[outputs[i]].inputs
                     if inp.WhichOneof("name") == "block_name"]
            found = [towers[j].name for j, out in enumerate(outputs) if j != i and out in feeds]
        if not found:
            raise ConfigError(
                f"{where}: ORDER_CALIBRATE_LOSS needs relation_tower_names (the towers whose "
                "probability bounds this one), and none could be inferred from the backbone "
                "(no other tower's output block feeds this tower's output block)"
            )
        t.relation_tower_names = found
        log.info("tower %r: ORDER_CALIBRATE_LOSS relation towers inferred from the DAG: %s",
                 t.name, ", ".join(found))
