"""A parsed config -> a PipelineSpec, with every default and every check in one place.

Nothing here imports TensorFlow or Keras: `easyblocks validate` reports the errors
found here before TensorFlow loads. What needs the block classes (an unknown
class_name, a block's parameters) is checked when the model is built.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from easyblocks.config import checks, easyrec_check, templates
from easyblocks.config.dag import backbone_spec
from easyblocks.config.easyrec_fields import REFUSED_STRATEGIES, SUPPORTED_STRATEGIES
from easyblocks.config.features import (
    build_feature_specs,
    build_group_specs,
    expand_names,
    input_field_types,
)
from easyblocks.config.loader import LoadedConfig
from easyblocks.config.specs import (
    DataSpec,
    EvalSpec,
    ExportSpec,
    FieldSpec,
    LearningRateSpec,
    ModelSpec,
    OptimizerSpec,
    PipelineSpec,
    SelectionSpec,
    TowerSpec,
    TrainSpec,
    VariationalDropoutSpec,
)
from easyblocks.config.towers import build_tower_specs
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import data_pb2, train_pb2

FIELD_TYPES = data_pb2.DatasetConfig.FieldType
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
DEFAULT_LEARNING_RATE = 0.001
EXPORTER_TYPES = ("final", "latest", "best", "none")
SMALLER_IS_BETTER = ("logloss", "mean_absolute_error", "mean_squared_error",
                     "root_mean_squared_error")
GAUC_REDUCTIONS = easyrec_check.GAUC_REDUCTIONS
# eval_config metrics computed for every tower (besides auc, logloss and gauc)
EXTRA_METRICS = ("max_f1", "session_auc", "recall_at_topk", "accuracy", "mean_absolute_error",
                 "mean_squared_error", "root_mean_squared_error")


def resolve(loaded: LoadedConfig, allow_plugin_files: bool = False) -> PipelineSpec:
    """Checks names and references across the config; ConfigError names file:line.

    allow_plugin_files: accept `plugins` entries that are .py file paths (the command
    line's --allow-config-plugins); by default a config may name importable modules only.
    """
    checks.check_finite_numbers(loaded)
    easyrec_check.enforce(loaded)  # refused fields: an error; not-applicable ones: a warning
    check_plugins(loaded, allow_plugin_files)
    # a model class template (DeepFM, DBMTL, ...) -> RankModel / MultiTaskModel + backbone;
    # every check below (table sizes, labels, slices, num_domains) reads the expanded model
    expanded = templates.expand(loaded)
    if expanded is not loaded:
        checks.check_finite_numbers(expanded)  # the numbers a template computed
    loaded = expanded
    config = loaded.proto
    data = data_spec(loaded)
    if not config.HasField("model_config"):
        raise ConfigError(f"{loaded.path}: no model_config")
    features = build_feature_specs(loaded)
    checks.check_table_sizes(loaded, features)
    groups = build_group_specs(loaded, features)
    model_config = config.model_config
    if model_config.model_class not in templates.BASE_CLASSES:
        known = list(templates.BASE_CLASSES) + list(templates.registered_model_classes())
        raise ConfigError(
            f"{loaded.locate('model_class')}: model_class {model_config.model_class!r} is not "
            f"supported{suggest(model_config.model_class, known)}; expected one of "
            f"{', '.join(known)} (or a model class a plugin registers)")
    if not model_config.HasField("backbone"):
        raise ConfigError(f"{loaded.path}: model_config has no backbone")
    # blocks added to a tower's logit are not DAG outputs (for the leaves default)
    logit_blocks = set(model_config.add_to_logit) | {
        b for t in model_config.model_params.task_towers for b in t.add_to_logit}
    backbone = backbone_spec(model_config.backbone, list(groups), loaded.locate_name,
                             extra_outputs=sorted(logit_blocks))
    _check_sequence_groups(groups, backbone)
    towers = build_tower_specs(loaded)
    data = _loss_columns(loaded, data, features, towers)
    eval_spec = _eval_spec(loaded)
    for t in towers:
        for name in ("recall_at_topk", "accuracy"):
            if t.num_class == 1 and name in eval_spec.metrics + t.metrics:
                raise ConfigError(f"{loaded.locate(name)}: {name} needs a multi-class tower "
                                  f"(num_class > 1); tower {t.name!r} has 1")
        regression = [m for m in eval_spec.metrics + t.metrics
                      if m in ("mean_absolute_error", "mean_squared_error",
                               "root_mean_squared_error")]
        if regression and t.num_class != 1 and t.ziln is None:
            raise ConfigError(f"{loaded.locate(regression[0])}: {regression[0]} needs a tower "
                              f"with one output or ZILN_LOSS; tower {t.name!r} has "
                              f"num_class {t.num_class}")
    model = ModelSpec(model_class=model_config.model_class, expanded_from=loaded.expanded_from,
                      groups=groups, backbone=backbone,
                      towers=towers,
                      l2_regularization=model_config.model_params.l2_regularization,
                      embedding_regularization=model_config.embedding_regularization,
                      variational_dropout=_variational_dropout(loaded, groups))
    data.label_rules = {t.label: t.label_rule for t in towers}
    data.finite_columns = {
        f.column: f.separator if f.column_type == "STRING" else None
        for f in features.values()
        if f.kind in ("raw", "bucketized") and f.column_type in ("FLOAT", "DOUBLE", "STRING")}
    spec = PipelineSpec(
        path=loaded.path,
        # EasyRec's parquet_train_input / parquet_eval_input are the paths of Parquet input
        train_input_path=config.train_input_path or config.parquet_train_input,
        eval_input_path=config.eval_input_path or config.parquet_eval_input,
        model_dir=config.model_dir, data=data,
        features=features, model=model, train=_train_spec(loaded, towers, eval_spec),
        eval=eval_spec,
        export=ExportSpec(export_dir=config.export_config.export_dir),
        plugins=list(config.plugins))
    checks.check_labels_are_not_features(loaded, spec)
    checks.check_backbone_shapes(loaded, spec)
    return spec


def _variational_dropout(loaded: LoadedConfig, groups: dict) -> VariationalDropoutSpec | None:
    """model_config.variational_dropout, applied to every feature group (EasyRec's input
    layer does it to each group it assembles)."""
    model_config = loaded.proto.model_config
    if not model_config.HasField("variational_dropout"):
        return None
    vd = model_config.variational_dropout
    where = loaded.locate(r"\bvariational_dropout\s*[:{]")
    if vd.regularization_lambda < 0:
        raise ConfigError(f"{where}: variational_dropout.regularization_lambda must be >= 0, "
                          f"got {vd.regularization_lambda:g}")
    for g in groups.values():
        if g.sequences:
            raise ConfigError(
                f"{where}: variational_dropout: feature group {g.name!r} has SequenceFeature "
                f"{g.sequences[0]!r} without sequence_combiner, which variational dropout "
                "cannot drop (nor can EasyRec's: 'not supported in not combined mode'); set "
                "a sequence_combiner to pool it")
    return VariationalDropoutSpec(vd.regularization_lambda,
                                  vd.embedding_wise_variational_dropout)


def _loss_columns(loaded: LoadedConfig, data: DataSpec, features: dict,
                  towers: list) -> DataSpec:
    """PAIR_WISE_LOSS's session_name (a feature or input field) -> the raw column the loss
    reads, also recorded in the DataSpec so that the input passes it on."""
    columns = []
    for t in towers:
        for loss in t.losses:
            name = loss.params.get("session_name")
            if not name:
                continue
            if name in features:
                column = features[name].column
            elif name in data.field_names:
                column = name
            else:
                raise ConfigError(f"{loaded.locate_name('session_name', name)}: tower "
                                  f"{t.name!r}: PAIR_WISE_LOSS session_name {name!r} is neither "
                                  f"a feature nor an input field"
                                  f"{suggest(name, list(features) + data.field_names)}")
            loss.params["session_column"] = column
            columns.append(column)
    if not columns:
        return data
    return dataclasses.replace(data, loss_columns=tuple(dict.fromkeys(columns)))


def _check_sequence_groups(groups: dict, backbone) -> None:
    """A group that mixes SequenceFeatures (without combiner) with other features, or holds
    several, has no single tensor: only an input_layer with output_seq_and_normal_feature
    reads it (EasyRec fails on it elsewhere too)."""
    mixed = {g for g, spec in groups.items() if spec.needs_seq_output}
    for dag in [backbone.dag] + list(backbone.packages.values()):
        for block in dag.blocks.values():
            reads = [i.name for i in block.inputs if i.kind == "group"] + [
                i.package_input for i in block.inputs if i.kind == "package"
                and i.package_input in groups and i.package_input not in dag.blocks]
            for g in reads:
                if g in mixed and not (block.kind == "input_layer"
                                       and block.output_seq_and_normal_feature):
                    raise ConfigError(
                        f"{block.where}: feature group {g!r} holds SequenceFeatures "
                        f"({', '.join(groups[g].sequences)}) beside other features: read it "
                        "with input_layer { output_seq_and_normal_feature: true }, or give "
                        "its sequences a sequence_combiner")
            if block.output_seq_and_normal_feature and not groups[block.inputs[0].name].sequences:
                raise ConfigError(f"{block.where}: output_seq_and_normal_feature needs a feature "
                                  f"group with a SequenceFeature; {block.inputs[0].name!r} has "
                                  "none")


def _default_val(field) -> str | None:
    """An input field's default_val as EasyRec reads it: "" is the type's default (0, ""),
    a BOOL's "true" / "false" is 1 / 0."""
    if not field.HasField("default_val"):
        return None
    value = field.default_val
    kind = FIELD_TYPES.Name(field.input_type)
    if kind == "STRING":
        return value
    if value.strip() == "":
        return None
    if kind == "BOOL" and value.strip().lower() in ("true", "false"):
        return "1" if value.strip().lower() == "true" else "0"
    return value


def data_spec(loaded: LoadedConfig) -> DataSpec:
    config = loaded.proto
    data = config.data_config
    if not data.input_fields:
        raise ConfigError(f"{loaded.path}: data_config.input_fields is empty")
    protos = [(name, f) for f in data.input_fields
              for name in (expand_names(f.input_name) if data.auto_expand_input_fields
                           else [f.input_name])]
    names = [name for name, _ in protos]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{loaded.locate_name('input_name', name)}: duplicate input field "
                              f"{name!r}")
    for label in data.label_fields:
        if label not in names:
            raise ConfigError(f"{loaded.locate_name('label_fields', label)}: label field "
                              f"{label!r} is not an input field{suggest(label, names)}")
    if data.batch_size <= 0:
        raise ConfigError(f"{loaded.path}: data_config.batch_size must be positive")
    if data.num_epochs == 0 and config.train_config.num_steps == 0:
        raise ConfigError(f"{loaded.locate('num_epochs')}: data_config.num_epochs 0 repeats the "
                          "data forever; set train_config.num_steps or num_epochs > 0")
    fields = [FieldSpec(name, FIELD_TYPES.Name(f.input_type), _default_val(f))
              for name, f in protos]
    weight = data.sample_weight or None
    if weight is not None:
        if weight not in names:
            raise ConfigError(f"{loaded.locate('sample_weight')}: data_config.sample_weight "
                              f"{weight!r} is not an input field{suggest(weight, names)}")
        if FIELD_TYPES.Name(dict(protos)[weight].input_type) == "STRING":
            raise ConfigError(f"{loaded.locate('sample_weight')}: data_config.sample_weight "
                              f"{weight!r} must be a number column, not STRING")
    for f in fields:
        if f.default is not None and not f.is_string:
            try:
                float(f.default) if f.is_float else int(float(f.default))
            except ValueError:
                raise ConfigError(f"{loaded.locate_name('input_name', f.name)}: input field "
                                  f"{f.name!r}: default_val {f.default!r} is not a "
                                  f"{f.type}") from None
    return DataSpec(fields=fields, label_fields=list(data.label_fields),
                    batch_size=data.batch_size,
                    eval_batch_size=data.eval_batch_size or max(data.batch_size, 1024),
                    separator=data.separator, with_header=data.with_header,
                    shuffle=data.shuffle, shuffle_buffer_size=max(data.shuffle_buffer_size, 1),
                    prefetch_size=data.prefetch_size,
                    input_type=data_pb2.DatasetConfig.InputType.Name(data.input_type),
                    sample_weight=weight)


def _learning_rate(loaded: LoadedConfig, lr) -> LearningRateSpec:
    which = lr.WhichOneof("learning_rate")
    if which is None:
        return LearningRateSpec("constant", DEFAULT_LEARNING_RATE)
    if which == "constant_learning_rate":
        return LearningRateSpec("constant", lr.constant_learning_rate.learning_rate)
    where = f"{loaded.locate(which)}: {which}"
    if which == "cosine_decay_learning_rate":
        c = lr.cosine_decay_learning_rate
        if c.warmup_learning_rate > c.learning_rate_base:
            raise ConfigError(f"{where}: warmup_learning_rate {c.warmup_learning_rate:g} is "
                              f"above learning_rate_base {c.learning_rate_base:g}")
        if c.total_steps <= c.warmup_steps + c.hold_base_rate_steps:
            raise ConfigError(f"{where}: total_steps {c.total_steps} must be larger than "
                              f"warmup_steps + hold_base_rate_steps "
                              f"({c.warmup_steps} + {c.hold_base_rate_steps})")
        return LearningRateSpec("cosine_decay", c.learning_rate_base,
                                warmup_steps=c.warmup_steps,
                                warmup_learning_rate=c.warmup_learning_rate,
                                hold_steps=c.hold_base_rate_steps, total_steps=c.total_steps)
    if which != "exponential_decay_learning_rate":  # the field table refuses the others
        raise ConfigError(f"{where}: this learning rate is not implemented")
    c = lr.exponential_decay_learning_rate
    if c.decay_steps <= 0:
        raise ConfigError(f"{where}: decay_steps must be positive")
    return LearningRateSpec("exponential_decay", c.initial_learning_rate,
                            decay_steps=c.decay_steps, decay_factor=c.decay_factor,
                            staircase=c.staircase, min_learning_rate=c.min_learning_rate,
                            warmup_steps=c.burnin_steps,
                            warmup_learning_rate=c.burnin_learning_rate)


def _optimizer_spec(loaded: LoadedConfig, index: int = 0) -> OptimizerSpec:
    """The optimizer_config[index]; embedding_learning_rate_multiplier is always the first
    optimizer_config's (as in EasyRec)."""
    spec = _optimizer_settings(loaded, index)
    configs = loaded.proto.train_config.optimizer_config
    if configs and configs[0].HasField("embedding_learning_rate_multiplier"):
        spec = dataclasses.replace(
            spec, embedding_lr_multiplier=configs[0].embedding_learning_rate_multiplier)
    return spec


def _optimizer_settings(loaded: LoadedConfig, index: int = 0) -> OptimizerSpec:
    tc = loaded.proto.train_config
    clip = tc.gradient_clipping_by_norm
    if not tc.optimizer_config:
        return OptimizerSpec("adam", LearningRateSpec("constant", DEFAULT_LEARNING_RATE),
                             clip_norm=clip)
    opt = tc.optimizer_config[index]
    which = opt.WhichOneof("optimizer")
    if which is None:
        raise ConfigError(f"{loaded.locate(r'optimizer_config')}: train_config.optimizer_config "
                          "names no optimizer (adam_optimizer, adagrad_optimizer or "
                          "sgd_optimizer)")
    c = getattr(opt, which)
    lr = _learning_rate(loaded, c.learning_rate)
    if which in ("adam_optimizer", "lazy_adam_optimizer", "adam_async_optimizer"):
        # EasyRec's LazyAdam (lazy rows, dense Adam elsewhere) is what adam does here; PAI-TF's
        # AdamAsync is Adam's update with each variable's own beta powers, which in one
        # synchronous process advance with the step: Adam's
        return OptimizerSpec("adam", lr, beta1=c.beta1, beta2=c.beta2,
                             epsilon=getattr(c, "epsilon", train_pb2.AdamOptimizer().epsilon),
                             clip_norm=clip)
    if which == "adagrad_optimizer":
        return OptimizerSpec("adagrad", lr,
                             initial_accumulator_value=c.initial_accumulator_value,
                             clip_norm=clip)
    if which == "sgd_optimizer":
        return OptimizerSpec("sgd", lr, momentum=c.momentum, clip_norm=clip)
    # EasyRec's other optimizers: TF1's momentum, AdamW / MomentumW (decoupled weight
    # decay, TF1's epsilon 1e-8) and FTRL
    if which == "momentum_optimizer":
        return OptimizerSpec("momentum", lr, momentum=c.momentum_optimizer_value,
                             clip_norm=clip)
    if which == "momentumw_optimizer":
        return OptimizerSpec("momentumw", lr, momentum=c.momentum_optimizer_value,
                             weight_decay=c.weight_decay, clip_norm=clip)
    if which in ("adamw_optimizer", "adam_asyncw_optimizer"):  # AdamAsyncW: as AdamAsync
        return OptimizerSpec("adamw", lr, beta1=c.beta1, beta2=c.beta2, epsilon=1e-8,
                             weight_decay=c.weight_decay, clip_norm=clip)
    if which == "ftrl_optimizer":
        return OptimizerSpec("ftrl", lr, initial_accumulator_value=c.initial_accumulator_value,
                             learning_rate_power=c.learning_rate_power, l1=c.l1_reg,
                             l2=c.l2_reg, l2_shrinkage=c.l2_shrinkage_reg, clip_norm=clip)
    raise ConfigError(f"{loaded.locate(which)}: {which} is not implemented")  # table refuses


def _train_spec(loaded: LoadedConfig, towers: list[TowerSpec], eval_spec: EvalSpec
                ) -> TrainSpec:
    config = loaded.proto
    tc, data = config.train_config, config.data_config
    strategy = train_pb2.DistributionStrategy.Name(tc.train_distribute)
    if strategy not in SUPPORTED_STRATEGIES:
        raise ConfigError(f"{loaded.locate('train_distribute')}: train_config.train_distribute: "
                          f"{strategy} is not supported: {REFUSED_STRATEGIES[strategy]} "
                          f"(supported: {', '.join(SUPPORTED_STRATEGIES)})")
    # num_epochs 0 with num_steps: repeat until num_steps
    num_epochs = data.num_epochs if data.num_epochs or not tc.num_steps else 0
    selection = _selection_spec(loaded, towers, eval_spec)
    if selection and not (eval_spec.interval_steps or eval_spec.interval_epochs):
        # something to select from: every epoch of a multi-epoch run, else every checkpoint
        if num_epochs != 1:
            eval_spec.interval_epochs = 1
        else:
            eval_spec.interval_steps = tc.save_checkpoints_steps
    # EasyRec's two optimizer_config: the first for the embedding tables, the second for the
    # other weights
    two = len(tc.optimizer_config) == 2
    return TrainSpec(optimizer=_optimizer_spec(loaded, 1 if two else 0),
                     table_optimizer=_optimizer_spec(loaded, 0) if two else None,
                     num_steps=tc.num_steps,
                     num_epochs=num_epochs, save_checkpoints_steps=tc.save_checkpoints_steps,
                     log_step_count_steps=max(tc.log_step_count_steps, 1),
                     keep_checkpoint_max=tc.keep_checkpoint_max, strategy=strategy,
                     seed=tc.seed, selection=selection,
                     dead_line=_dead_line(loaded), dead_line_text=tc.dead_line,
                     freeze_gradient=_freeze_patterns(loaded),
                     freeze_where=loaded.locate(r"\bfreeze_gradient\s*:"),
                     jit_compile=tc.jit_compile)


def _freeze_patterns(loaded: LoadedConfig) -> tuple[str, ...]:
    """train_config.freeze_gradient: regular expressions (data, never run as code)."""
    patterns = tuple(loaded.proto.train_config.freeze_gradient)
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            where = loaded.locate(r"\bfreeze_gradient\s*:.*" + re.escape(p))
            raise ConfigError(f"{where}: train_config.freeze_gradient: {p!r} is not a regular "
                              f"expression ({e})") from None
    return patterns


def _dead_line(loaded: LoadedConfig) -> float | None:
    """train_config.dead_line as a Unix time: EasyRec's two forms, "YYYYmmdd HH:MM:SS" (local
    time) or 10-digit Unix seconds."""
    tc = loaded.proto.train_config
    if not tc.HasField("dead_line"):
        return None
    text = tc.dead_line
    if len(text) == 10 and text.isdigit():
        return float(text)
    if len(text) == 17:
        try:
            return datetime.datetime.strptime(text, "%Y%m%d %H:%M:%S").timestamp()
        except ValueError:
            pass
    where = loaded.locate(r"\bdead_line\s*:")
    raise ConfigError(f"{where}: train_config.dead_line: expected 'YYYYmmdd HH:MM:SS' (local "
                      f"time) or 10-digit Unix seconds, got {text!r}")


def _monitored_metric(loaded: LoadedConfig, name: str, towers: list[TowerSpec],
                      eval_spec: EvalSpec) -> str:
    """best_exporter_metric -> "tower/metric": "tower/metric", EasyRec's "metric_tower",
    or a bare metric name when there is one tower."""
    available = {t.name: eval_spec.tower_metrics(t) for t in towers}
    choices = [f"{t}/{m}" for t, ms in available.items() for m in ms]
    # EasyRec names a tower's metric "auc_ctr" (metric names have "_" too)
    suffixed = [(t, m) for t, ms in available.items() for m in ms if name == f"{m}_{t}"]
    if "/" in name:
        tower, metric = name.split("/", 1)
    elif suffixed:
        tower, metric = suffixed[0]
    elif len(towers) == 1:
        tower, metric = towers[0].name, name
    elif "_" in name:
        metric, tower = name.split("_", 1)
    else:
        raise ConfigError(f"{loaded.locate('best_exporter_metric')}: export_config."
                          f"best_exporter_metric {name!r} is ambiguous with towers "
                          f"{', '.join(available)}; name one of: {', '.join(choices)}")
    if metric not in available.get(tower, ()):
        raise ConfigError(f"{loaded.locate('best_exporter_metric')}: export_config."
                          f"best_exporter_metric {name!r} is not a metric of this config"
                          f"{suggest(f'{tower}/{metric}', choices)}; metrics: "
                          f"{', '.join(choices)}")
    return f"{tower}/{metric}"


def _selection_spec(loaded: LoadedConfig, towers: list[TowerSpec],
                    eval_spec: EvalSpec) -> SelectionSpec | None:
    """The best checkpoint and early stopping of export_config (None: neither)."""
    config = loaded.proto
    ex = config.export_config
    if ex.exporter_type not in EXPORTER_TYPES:
        raise ConfigError(f"{loaded.locate('exporter_type')}: export_config.exporter_type "
                          f"{ex.exporter_type!r} is not one of {', '.join(EXPORTER_TYPES)}"
                          f"{suggest(ex.exporter_type, EXPORTER_TYPES)}")
    early_stop = ex.enable_early_stop or ex.early_stop_patience > 0
    if ex.exporter_type != "best" and not early_stop:
        return None
    what = "early stopping" if early_stop else 'exporter_type "best"'
    if not (config.eval_input_path or config.parquet_eval_input or eval_spec.holdout_fraction):
        raise ConfigError(f"{loaded.path}: {what} needs rows the model does not train on: "
                          "set eval_input_path or eval_config.holdout_fraction")
    metric = _monitored_metric(loaded, ex.best_exporter_metric, towers, eval_spec)
    bigger = (ex.metric_bigger if ex.HasField("metric_bigger")
              else metric.split("/")[1] not in SMALLER_IS_BETTER)
    if ex.exports_to_keep < 1:
        raise ConfigError(f"{loaded.locate('exports_to_keep')}: export_config.exports_to_keep "
                          "must be at least 1")
    if early_stop and not ex.early_stop_patience and ex.max_check_steps <= 0:
        raise ConfigError(f"{loaded.locate('max_check_steps')}: export_config.max_check_steps "
                          "must be positive (or set early_stop_patience)")
    return SelectionSpec(metric=metric, bigger=bigger, keep=ex.exports_to_keep,
                         early_stop=early_stop, patience=ex.early_stop_patience,
                         max_check_steps=ex.max_check_steps)


def _eval_spec(loaded: LoadedConfig) -> EvalSpec:
    config = loaded.proto
    ec = config.eval_config
    names = list(input_field_types(config))
    domain = ec.domain_field or None
    if domain and domain not in names:
        raise ConfigError(f"{loaded.locate('domain_field')}: eval_config.domain_field {domain!r} "
                          f"is not an input field{suggest(domain, names)}")
    gaucs = [m.gauc for m in ec.metrics_set if m.WhichOneof("metric") == "gauc"]
    for g in gaucs:
        if g.uid_field not in names:
            raise ConfigError(f"{loaded.locate('uid_field')}: gauc uid_field "
                              f"{g.uid_field!r} is not an input field"
                              f"{suggest(g.uid_field, names)}")
    first = gaucs[0] if gaucs else None  # the field table refuses a second gauc
    towers = config.model_config.model_params.task_towers
    sets = [("eval_config", ec.metrics_set)] + [(f"tower {t.tower_name!r}", t.metrics_set)
                                                for t in towers]
    sessions = [(w, m.session_auc) for w, ms in sets for m in ms
                if m.WhichOneof("metric") == "session_auc"]
    for w, s in sessions:
        if s.session_id_field not in names:
            raise ConfigError(f"{loaded.locate('session_id_field')}: {w}: session_auc "
                              f"session_id_field {s.session_id_field!r} is not an input field"
                              f"{suggest(s.session_id_field, names)}")
        if s.reduction not in GAUC_REDUCTIONS:
            raise ConfigError(f"{loaded.locate('session_id_field')}: {w}: session_auc "
                              f"reduction {s.reduction!r}: expected one of "
                              f"{', '.join(GAUC_REDUCTIONS)}")
        if (s.session_id_field, s.reduction) != (sessions[0][1].session_id_field,
                                                 sessions[0][1].reduction):
            raise ConfigError(f"{loaded.locate('session_id_field')}: {w}: only one session_auc "
                              "(session_id_field and reduction) is computed; use the same "
                              "everywhere")
    topks = {m.recall_at_topk.topk for _, ms in sets for m in ms
             if m.WhichOneof("metric") == "recall_at_topk"}
    if len(topks) > 1:
        raise ConfigError(f"{loaded.locate('recall_at_topk')}: recall_at_topk is computed for "
                          f"one topk; got {sorted(topks)}")
    extra = [m.WhichOneof("metric") for m in ec.metrics_set
             if m.WhichOneof("metric") in EXTRA_METRICS]
    fraction = ec.holdout_fraction
    if not 0 <= fraction < 1:
        raise ConfigError(f"{loaded.locate('holdout_fraction')}: eval_config.holdout_fraction "
                          f"{fraction:g} must be at least 0 and below 1")
    if fraction and (config.eval_input_path or config.parquet_eval_input):
        raise ConfigError(f"{loaded.locate('holdout_fraction')}: eval_config.holdout_fraction "
                          "holds out training rows for evaluation, but eval_input_path is set: "
                          "keep one of the two")
    return EvalSpec(uid_field=first.uid_field if first else None,
                    gauc_reduction=first.reduction if first else "mean",
                    domain_field=domain, num_examples=ec.num_examples,
                    interval_steps=ec.eval_interval_steps,
                    interval_epochs=ec.eval_interval_epochs, holdout_fraction=fraction,
                    metrics=list(dict.fromkeys(extra)),
                    session_field=sessions[0][1].session_id_field if sessions else None,
                    session_reduction=sessions[0][1].reduction if sessions else "mean",
                    recall_topk=topks.pop() if topks else 5)


def check_plugins(loaded: LoadedConfig, allow_files: bool) -> None:
    """A config names plugin modules (imported like any installed dependency); it runs no file
    of its own unless the command line allows it (--allow-config-plugins)."""
    for name in loaded.proto.plugins:
        if _MODULE_NAME.match(name.strip()) or allow_files:
            continue
        raise ConfigError(
            f"{loaded.locate_name('plugins', name)}: plugins: {name!r} is not a module name; "
            "a config may name importable modules only (e.g. \"my_team.blocks\"), never a "
            "file to run: give a .py file on the command line with --plugin, or pass "
            "--allow-config-plugins to let this config run it")
