"""Feature specs: what each configured feature reads and how it is embedded."""

from __future__ import annotations

import dataclasses

from easyblocks.config.loader import LoadedConfig
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import data_pb2, feature_pb2

FC = feature_pb2.FeatureConfig
FIELD_TYPES = data_pb2.DatasetConfig.FieldType
NUMERIC_TYPES = {FIELD_TYPES.INT32, FIELD_TYPES.INT64, FIELD_TYPES.FLOAT, FIELD_TYPES.DOUBLE,
                 FIELD_TYPES.BOOL}
INT_TYPES = {FIELD_TYPES.INT32, FIELD_TYPES.INT64, FIELD_TYPES.BOOL}


@dataclasses.dataclass
class FeatureSpec:
    """One feature: its input column, kind and embedding table.

    kind: "id" (one id per row), "tag" (several ids per row, pooled),
    "seq" (an ordered list of ids, kept as a sequence), "raw" (numbers, used as they
    are or through a projection), or "bucketized" (a number turned into an id by
    `boundaries`).
    """

    name: str
    column: str
    column_type: int
    kind: str
    embedding_dim: int = 0
    num_ids: int = 0  # rows of the embedding table
    hash_bucket_size: int = 0
    num_buckets: int = 0
    vocab_list: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()
    separator: str = "|"
    combiner: str = "mean"
    table: str = ""  # embedding table name (shared through embedding_name)
    raw_dim: int = 1
    max_seq_len: int = 0  # seq: keep the first max_seq_len values (0: all)
    log_transform: bool = False
    normalizer_mean: float = 0.0
    normalizer_std: float = 1.0
    # the table's initializer as configured (an Initializer message), None: the default
    initializer: object = None

    @property
    def uses_table(self) -> bool:
        return self.kind in ("id", "tag", "seq", "bucketized") or (
            self.kind == "raw" and self.embedding_dim > 0
        )

    @property
    def output_dim(self) -> int:
        """Width of this feature in its group's concatenated tensor."""
        if self.kind == "raw" and self.embedding_dim == 0:
            return self.raw_dim
        return self.embedding_dim


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
        ctype = fields[column].input_type
        spec = FeatureSpec(name=name, column=column, column_type=ctype, kind="",
                           embedding_dim=fc.embedding_dim, separator=fc.separator,
                           combiner=fc.combiner, raw_dim=fc.raw_input_dim or 1,
                           log_transform=fc.log_transform, normalizer_mean=fc.normalizer_mean,
                           normalizer_std=fc.normalizer_std or 1.0)
        ftype = fc.feature_type
        if ftype in (FC.IdFeature, FC.TagFeature, FC.SequenceFeature):
            spec.kind = {FC.IdFeature: "id", FC.TagFeature: "tag", FC.SequenceFeature: "seq"}[ftype]
            spec.max_seq_len = fc.max_seq_len
            if ftype != FC.IdFeature and ctype != FIELD_TYPES.STRING:
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
        if fc.HasField("initializer"):
            spec.initializer = _checked_initializer(fc.initializer, spec, where)
        specs[name] = spec
    _check_shared_tables(loaded, specs)
    return specs


def _checked_initializer(init, spec: FeatureSpec, where: str):
    """The feature's Initializer message, after checking what its table can take."""
    if not spec.uses_table:
        raise ConfigError(f"{where}: `initializer` is set but the feature has no embedding "
                          "(a RawFeature without boundaries or embedding_dim)")
    which = init.WhichOneof("initializer_oneof")
    if which is None:
        raise ConfigError(f"{where}: `initializer {{}}` names no initializer; set one of "
                          "truncated_normal_initializer, random_normal_initializer, "
                          "glorot_normal_initializer, constant_initializer")
    if which in ("truncated_normal_initializer", "random_normal_initializer"):
        stddev = getattr(init, which).stddev
        if not stddev >= 0:
            raise ConfigError(f"{where}: initializer {which}: expected stddev >= 0, "
                              f"received: stddev={stddev}")
    if which == "constant_initializer":
        rows = spec.raw_dim if spec.kind == "raw" else spec.num_ids
        size = rows * spec.embedding_dim
        n = len(init.constant_initializer.consts)
        if n > size:
            raise ConfigError(
                f"{where}: initializer constant_initializer: {n} consts for a table of "
                f"{rows} x {spec.embedding_dim} = {size} entries")
    return init


def _check_shared_tables(loaded: LoadedConfig, specs: dict[str, FeatureSpec]) -> None:
    tables: dict[str, FeatureSpec] = {}
    for spec in specs.values():
        if not spec.uses_table:
            continue
        first = tables.setdefault(spec.table, spec)
        if first is spec:
            continue
        if spec.initializer is not None and first.initializer is not None and \
                spec.initializer != first.initializer:
            raise ConfigError(
                f"{loaded.locate_name('embedding_name', spec.table)}: features {first.name!r} and "
                f"{spec.name!r} share embedding_name {spec.table!r} but set different "
                "initializers (set it on one of them, or the same on both)"
            )
        if first.initializer is None:
            first.initializer = spec.initializer
        if (first.embedding_dim, first.num_ids) != (spec.embedding_dim, spec.num_ids):
            raise ConfigError(
                f"{loaded.locate_name('embedding_name', spec.table)}: features {first.name!r} and "
                f"{spec.name!r} share embedding_name {spec.table!r} but have different table "
                f"shapes ({first.num_ids}x{first.embedding_dim} vs "
                f"{spec.num_ids}x{spec.embedding_dim})"
            )
    for spec in specs.values():  # every feature of a shared table knows its initializer
        if spec.uses_table:
            spec.initializer = tables[spec.table].initializer
