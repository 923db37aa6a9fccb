"""Features: each feature_config entry checked and resolved into a FeatureSpec, and the
feature groups into FeatureGroupSpecs."""

from __future__ import annotations

from easyblocks.config.loader import LoadedConfig
from easyblocks.config.specs import FeatureGroupSpec, FeatureSpec
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import data_pb2, feature_pb2

FC = feature_pb2.FeatureConfig
FIELD_TYPES = data_pb2.DatasetConfig.FieldType
NUMERIC_TYPES = {"INT32", "INT64", "FLOAT", "DOUBLE", "BOOL"}
INT_TYPES = {"INT32", "INT64", "BOOL"}


def all_feature_configs(config) -> list:
    """EasyRec accepts `feature_config { features {} }` and repeated `feature_configs`."""
    return list(config.feature_configs) + list(config.feature_config.features)


def build_feature_specs(loaded: LoadedConfig) -> dict[str, FeatureSpec]:
    """Validates the feature configs and returns the specs by feature name, in config order."""
    config = loaded.proto
    fields = {f.input_name: f for f in config.data_config.input_fields}
    specs: dict[str, FeatureSpec] = {}
    for fc in all_feature_configs(config):
        if not fc.input_names:
            raise ConfigError(f"{loaded.path}: a feature has no input_names: {fc}")
        name = fc.feature_name or fc.input_names[0]
        where = loaded.locate_name("feature_name", name)
        if where == loaded.path:
            where = loaded.locate_name("input_names", fc.input_names[0])
        where = f"{where}: feature {name!r}"
        if name in specs:
            raise ConfigError(f"{where}: duplicate feature name")
        if len(fc.input_names) != 1:
            raise ConfigError(f"{where}: expected one input_names entry, got {len(fc.input_names)}")
        column = fc.input_names[0]
        if column not in fields:
            raise ConfigError(
                f"{where}: input {column!r} is not in data_config.input_fields"
                f"{suggest(column, fields)}"
            )
        ctype = FIELD_TYPES.Name(fields[column].input_type)
        spec = FeatureSpec(name=name, column=column, column_type=ctype, kind="",
                           embedding_dim=fc.embedding_dim, separator=fc.separator,
                           combiner=fc.combiner, raw_dim=fc.raw_input_dim or 1,
                           log_transform=fc.log_transform, normalizer_mean=fc.normalizer_mean,
                           normalizer_std=fc.normalizer_std or 1.0)
        ftype = fc.feature_type
        if ftype in (FC.IdFeature, FC.TagFeature, FC.SequenceFeature):
            spec.kind = {FC.IdFeature: "id", FC.TagFeature: "tag", FC.SequenceFeature: "seq"}[ftype]
            spec.max_seq_len = fc.max_seq_len
            if ftype != FC.IdFeature and ctype != "STRING":
                raise ConfigError(f"{where}: a {FC.FeatureType.Name(ftype)} needs a STRING "
                                  "input field (values joined by `separator`)")
            ways = [bool(fc.hash_bucket_size), bool(fc.num_buckets), bool(fc.vocab_list)]
            if sum(ways) != 1:
                raise ConfigError(
                    f"{where}: set exactly one of hash_bucket_size, num_buckets, vocab_list"
                )
            if fc.num_buckets and ctype not in INT_TYPES:
                raise ConfigError(
                    f"{where}: num_buckets needs an integer input field (INT32/INT64); "
                    "use hash_bucket_size for strings"
                )
            spec.hash_bucket_size = fc.hash_bucket_size
            spec.num_buckets = fc.num_buckets
            spec.vocab_list = tuple(fc.vocab_list)
            # vocab: one extra row for values outside the list
            spec.num_ids = fc.hash_bucket_size or fc.num_buckets or len(fc.vocab_list) + 1
            if fc.embedding_dim <= 0:
                raise ConfigError(f"{where}: expected a positive embedding_dim, received 0")
            if spec.combiner not in ("mean", "sum"):
                raise ConfigError(
                    f"{where}: expected combiner 'mean' or 'sum', received {spec.combiner!r}"
                )
        elif ftype == FC.RawFeature:
            if ctype not in NUMERIC_TYPES and spec.raw_dim == 1:
                raise ConfigError(f"{where}: a RawFeature needs a numeric input field")
            if fc.boundaries:
                bounds = list(fc.boundaries)
                if bounds != sorted(bounds):
                    raise ConfigError(f"{where}: boundaries must be increasing")
                spec.kind = "bucketized"
                spec.boundaries = tuple(bounds)
                spec.num_ids = len(bounds) + 1
                if fc.embedding_dim <= 0:
                    raise ConfigError(f"{where}: bucketized RawFeature needs embedding_dim > 0")
            else:
                spec.kind = "raw"
        else:
            raise ConfigError(
                f"{where}: feature_type {FC.FeatureType.Name(ftype)} is not supported yet"
            )
        spec.table = fc.embedding_name or name
        specs[name] = spec
    _check_shared_tables(loaded, specs)
    return specs


def _check_shared_tables(loaded: LoadedConfig, specs: dict[str, FeatureSpec]) -> None:
    tables: dict[str, FeatureSpec] = {}
    for spec in specs.values():
        if not spec.uses_table:
            continue
        first = tables.setdefault(spec.table, spec)
        if first is spec:
            continue
        if (first.embedding_dim, first.num_ids) != (spec.embedding_dim, spec.num_ids):
            raise ConfigError(
                f"{loaded.locate_name('embedding_name', spec.table)}: features {first.name!r} and "
                f"{spec.name!r} share embedding_name {spec.table!r} but have different table "
                f"shapes ({first.num_ids}x{first.embedding_dim} vs "
                f"{spec.num_ids}x{spec.embedding_dim})"
            )


def wide_output_dim(loaded: LoadedConfig) -> int:
    """The width of every feature of the WIDE groups: EasyRec's `wide_output_dim`, set on a
    backbone input_layer block (one value for the whole model, as in EasyRec); 1 unset."""
    backbone = loaded.proto.model_config.backbone
    blocks = [b for p in backbone.packages for b in p.blocks] + list(backbone.blocks)
    dims = {b.input_layer.wide_output_dim for b in blocks
            if b.WhichOneof("layer") == "input_layer" and b.input_layer.HasField("wide_output_dim")}
    if len(dims) > 1:
        raise ConfigError(f"{loaded.locate('wide_output_dim')}: input_layer wide_output_dim "
                          f"must be one value for the model, got {sorted(dims)}")
    dim = dims.pop() if dims else 1
    if dim < 1:
        raise ConfigError(f"{loaded.locate('wide_output_dim')}: input_layer wide_output_dim "
                          "must be positive")
    return dim


def build_group_specs(loaded: LoadedConfig,
                      specs: dict[str, FeatureSpec]) -> dict[str, FeatureGroupSpec]:
    """Validates model_config.feature_groups; returns the group specs by name, in order."""
    groups: dict[str, FeatureGroupSpec] = {}
    wide_dim = wide_output_dim(loaded)
    for g in loaded.proto.model_config.feature_groups:
        where = f"{loaded.locate_name('group_name', g.group_name)}: feature group {g.group_name!r}"
        if g.group_name in groups:
            raise ConfigError(f"{where}: duplicate group_name")
        if not g.feature_names:
            raise ConfigError(f"{where}: no feature_names")
        for f in g.feature_names:
            if f not in specs:
                raise ConfigError(f"{where}: unknown feature {f!r}{suggest(f, specs)}")
        mode = feature_pb2.WideOrDeep.Name(g.wide_deep)
        if mode == "WIDE_AND_DEEP":
            raise ConfigError(f"{where}: wide_deep WIDE_AND_DEEP is not supported; declare a "
                              "WIDE group and a DEEP group with the same features")
        kinds = [specs[f].kind for f in g.feature_names]
        if "seq" in kinds and (len(kinds) > 1 or mode == "WIDE"):
            raise ConfigError(f"{where}: a SequenceFeature must be alone in a DEEP group (the "
                              "group gives its (batch, length, dim) sequence)")
        groups[g.group_name] = FeatureGroupSpec(g.group_name, tuple(g.feature_names),
                                                wide=mode == "WIDE",
                                                wide_dim=wide_dim if mode == "WIDE" else 1)
    if not groups:
        raise ConfigError(f"{loaded.path}: model_config has no feature_groups")
    return groups
