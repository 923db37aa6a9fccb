"""A parsed config -> a PipelineSpec, with every default and every check in one place.

Nothing here imports TensorFlow or Keras: `easyblocks validate` reports the errors
found here before TensorFlow loads. What needs the block classes (an unknown
class_name, a block's parameters) is checked when the model is built.
"""

from __future__ import annotations

from easyblocks.config import easyrec_check, templates
from easyblocks.config.dag import backbone_spec
from easyblocks.config.features import build_feature_specs, build_group_specs
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
    TrainSpec,
)
from easyblocks.config.towers import build_tower_specs
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import data_pb2, train_pb2

FIELD_TYPES = data_pb2.DatasetConfig.FieldType
SUPPORTED_STRATEGIES = ("NoStrategy",)
DEFAULT_LEARNING_RATE = 0.001


def resolve(loaded: LoadedConfig) -> PipelineSpec:
    """Checks names and references across the config; ConfigError names file:line."""
    easyrec_check.enforce(loaded)  # refused fields: an error; not-applicable ones: a warning
    # a model class template (DeepFM, DBMTL, ...) -> RankModel / MultiTaskModel + backbone
    loaded = templates.expand(loaded)
    config = loaded.proto
    data = data_spec(loaded)
    if not config.HasField("model_config"):
        raise ConfigError(f"{loaded.path}: no model_config")
    features = build_feature_specs(loaded)
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
    towers = build_tower_specs(loaded)
    model = ModelSpec(model_class=model_config.model_class, expanded_from=loaded.expanded_from,
                      groups=groups, backbone=backbone,
                      towers=towers,
                      l2_regularization=model_config.model_params.l2_regularization,
                      embedding_regularization=model_config.embedding_regularization)
    return PipelineSpec(
        path=loaded.path, train_input_path=config.train_input_path,
        eval_input_path=config.eval_input_path, model_dir=config.model_dir, data=data,
        features=features, model=model, train=_train_spec(loaded), eval=_eval_spec(loaded),
        export=ExportSpec(export_dir=config.export_config.export_dir),
        plugins=list(config.plugins))


def data_spec(loaded: LoadedConfig) -> DataSpec:
    config = loaded.proto
    data = config.data_config
    if not data.input_fields:
        raise ConfigError(f"{loaded.path}: data_config.input_fields is empty")
    names = [f.input_name for f in data.input_fields]
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
    fields = [FieldSpec(f.input_name, FIELD_TYPES.Name(f.input_type),
                        f.default_val if f.HasField("default_val") else None)
              for f in data.input_fields]
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
                    input_type=data_pb2.DatasetConfig.InputType.Name(data.input_type))


def _learning_rate(lr) -> LearningRateSpec:
    which = lr.WhichOneof("learning_rate")
    if which is None:
        return LearningRateSpec("constant", DEFAULT_LEARNING_RATE)
    if which == "constant_learning_rate":
        return LearningRateSpec("constant", lr.constant_learning_rate.learning_rate)
    if which != "exponential_decay_learning_rate":  # the field table refuses the others
        raise ConfigError(f"learning rate {which} is not implemented")
    c = lr.exponential_decay_learning_rate
    return LearningRateSpec("exponential_decay", c.initial_learning_rate,
                            decay_steps=c.decay_steps, decay_factor=c.decay_factor,
                            staircase=c.staircase, min_learning_rate=c.min_learning_rate)


def _optimizer_spec(loaded: LoadedConfig) -> OptimizerSpec:
    tc = loaded.proto.train_config
    clip = tc.gradient_clipping_by_norm
    if not tc.optimizer_config:
        return OptimizerSpec("adam", LearningRateSpec("constant", DEFAULT_LEARNING_RATE),
                             clip_norm=clip)
    opt = tc.optimizer_config[0]
    which = opt.WhichOneof("optimizer")
    if which is None:
        raise ConfigError(f"{loaded.locate(r'optimizer_config')}: train_config.optimizer_config "
                          "names no optimizer (adam_optimizer, adagrad_optimizer or "
                          "sgd_optimizer)")
    c = getattr(opt, which)
    lr = _learning_rate(c.learning_rate)
    if which in ("adam_optimizer", "lazy_adam_optimizer"):
        # EasyRec's LazyAdam (lazy rows, dense Adam elsewhere) is what adam does here
        return OptimizerSpec("adam", lr, beta1=c.beta1, beta2=c.beta2,
                             epsilon=getattr(c, "epsilon", 1e-8), clip_norm=clip)
    if which == "adagrad_optimizer":
        return OptimizerSpec("adagrad", lr,
                             initial_accumulator_value=c.initial_accumulator_value,
                             clip_norm=clip)
    if which == "sgd_optimizer":
        return OptimizerSpec("sgd", lr, momentum=c.momentum, clip_norm=clip)
    raise ConfigError(f"{loaded.locate(which)}: {which} is not implemented")  # table refuses


def _train_spec(loaded: LoadedConfig) -> TrainSpec:
    config = loaded.proto
    tc, data = config.train_config, config.data_config
    strategy = train_pb2.DistributionStrategy.Name(tc.train_distribute)
    if strategy not in SUPPORTED_STRATEGIES:
        raise ConfigError(f"{loaded.locate('train_distribute')}: train_config.train_distribute: "
                          f"{strategy} is not supported yet; use NoStrategy")
    # num_epochs 0 with num_steps: repeat until num_steps
    num_epochs = data.num_epochs if data.num_epochs or not tc.num_steps else 0
    return TrainSpec(optimizer=_optimizer_spec(loaded), num_steps=tc.num_steps,
                     num_epochs=num_epochs, save_checkpoints_steps=tc.save_checkpoints_steps,
                     log_step_count_steps=max(tc.log_step_count_steps, 1),
                     keep_checkpoint_max=tc.keep_checkpoint_max, strategy=strategy,
                     seed=tc.seed)


def _eval_spec(loaded: LoadedConfig) -> EvalSpec:
    config = loaded.proto
    ec = config.eval_config
    names = [f.input_name for f in config.data_config.input_fields]
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
    return EvalSpec(uid_field=first.uid_field if first else None,
                    gauc_reduction=first.reduction if first else "mean",
                    domain_field=domain, num_examples=ec.num_examples)
