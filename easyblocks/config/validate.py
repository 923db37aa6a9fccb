"""Semantic validation of a parsed config, before any TensorFlow graph is built."""

from __future__ import annotations

import dataclasses

from easyblocks.backbone.dag import check_backbone
from easyblocks.config import easyrec_check
from easyblocks.config.loader import LoadedConfig
from easyblocks.errors import ConfigError, suggest
from easyblocks.features.spec import FeatureSpec, build_feature_specs
from easyblocks.models.towers import TowerSpec, build_tower_specs
from easyblocks.protos import feature_pb2


@dataclasses.dataclass
class ResolvedConfig:
    """A config that passed validation, with its features, groups and towers resolved."""

    loaded: LoadedConfig
    specs: dict[str, FeatureSpec]
    groups: dict[str, list[str]]
    towers: list[TowerSpec]
    wide_groups: set[str] = dataclasses.field(default_factory=set)

    @property
    def proto(self):
        return self.loaded.proto

    @property
    def path(self) -> str:
        return self.loaded.path


def validate(loaded: LoadedConfig) -> ResolvedConfig:
    """Checks names and references across the config; ConfigError names file:line."""
    easyrec_check.enforce(loaded)  # refused fields: an error; not-applicable ones: a warning
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
    domain = config.eval_config.domain_field
    if domain and domain not in names:
        raise ConfigError(f"{loaded.locate('domain_field')}: eval_config.domain_field {domain!r} "
                          f"is not an input field{suggest(domain, names)}")
    for m in config.eval_config.metrics_set:
        if m.WhichOneof("metric") == "gauc" and m.gauc.uid_field not in names:
            raise ConfigError(f"{loaded.locate('uid_field')}: gauc uid_field "
                              f"{m.gauc.uid_field!r} is not an input field"
                              f"{suggest(m.gauc.uid_field, names)}")
    if not config.HasField("model_config"):
        raise ConfigError(f"{loaded.path}: no model_config")
    specs = build_feature_specs(loaded)
    groups: dict[str, list[str]] = {}
    wide_groups: set[str] = set()
    for g in config.model_config.feature_groups:
        where = f"{loaded.locate_name('group_name', g.group_name)}: feature group {g.group_name!r}"
        if g.group_name in groups:
            raise ConfigError(f"{where}: duplicate group_name")
        if not g.feature_names:
            raise ConfigError(f"{where}: no feature_names")
        for f in g.feature_names:
            if f not in specs:
                raise ConfigError(f"{where}: unknown feature {f!r}{suggest(f, specs)}")
        groups[g.group_name] = list(g.feature_names)
        mode = feature_pb2.WideOrDeep.Name(g.wide_deep)
        if mode == "WIDE_AND_DEEP":
            raise ConfigError(f"{where}: wide_deep WIDE_AND_DEEP is not supported; declare a "
                              "WIDE group and a DEEP group with the same features")
        kinds = [specs[f].kind for f in g.feature_names]
        if "seq" in kinds and (len(kinds) > 1 or mode == "WIDE"):
            raise ConfigError(f"{where}: a SequenceFeature must be alone in a DEEP group (the "
                              "group gives its (batch, length, dim) sequence)")
        if mode == "WIDE":
            wide_groups.add(g.group_name)
    if not groups:
        raise ConfigError(f"{loaded.path}: model_config has no feature_groups")
    if not config.model_config.HasField("backbone"):
        raise ConfigError(f"{loaded.path}: model_config has no backbone")
    check_backbone(config.model_config.backbone, groups, loaded.locate_name)
    towers = build_tower_specs(loaded)
    return ResolvedConfig(loaded=loaded, specs=specs, groups=groups, towers=towers,
                          wide_groups=wide_groups)
