"""Features: each feature_config entry checked and resolved into a FeatureSpec, and the
feature groups into FeatureGroupSpecs (with EasyRec's sequence_features)."""

from __future__ import annotations

import re

from easyblocks.config.expressions import parse_feature_expression
from easyblocks.config.kwargs import message_to_kwargs
from easyblocks.config.loader import LoadedConfig
from easyblocks.config.specs import FeatureGroupSpec, FeatureSpec, SeqAttSpec
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import data_pb2, feature_pb2

FC = feature_pb2.FeatureConfig
FIELD_TYPES = data_pb2.DatasetConfig.FieldType
NUMERIC_TYPES = {"INT32", "INT64", "FLOAT", "DOUBLE", "BOOL"}
INT_TYPES = {"INT32", "INT64", "BOOL"}
# EasyRec's scoring network of sequence_features when seq_dnn is not set
DEFAULT_SEQ_DNN = (128, 64, 32, 1)

_EXPAND = re.compile(r"^([a-zA-Z_]+)\[([0-9]+)-([0-9]+)\]$")


def expand_names(name: str) -> list[str]:
    """EasyRec's name ranges: 'field[1-3]' -> field1, field2, field3; other names as they are
    (input_fields with data_config.auto_expand_input_fields, feature group feature_names)."""
    m = _EXPAND.match(name)
    if not m:
        return [name]
    return [f"{m.group(1)}{i}" for i in range(int(m.group(2)), int(m.group(3)) + 1)]


def input_field_types(config) -> dict[str, str]:
    """Input column name -> its type name ("INT64", ...), names expanded as EasyRec does."""
    data = config.data_config
    out = {}
    for f in data.input_fields:
        names = expand_names(f.input_name) if data.auto_expand_input_fields else [f.input_name]
        for name in names:
            out[name] = FIELD_TYPES.Name(f.input_type)
    return out


def all_feature_configs(config) -> list:
    """EasyRec accepts `feature_config { features {} }` and repeated `feature_configs`. A
    feature with `shared_names` is copied, after all the others, once per shared name (name
    ranges expanded with auto_expand_input_fields) with that name as its one input, as
    EasyRec's auto_expand_share_feature_configs."""
    configs = list(config.feature_configs) + list(config.feature_config.features)
    copies = []
    for fc in configs:
        for shared in fc.shared_names:
            names = expand_names(shared) if config.data_config.auto_expand_input_fields \
                else [shared]
            for name in names:
                copy = feature_pb2.FeatureConfig()
                copy.CopyFrom(fc)
                copy.ClearField("shared_names")
                copy.ClearField("input_names")
                copy.input_names.append(name)
                copies.append(copy)
    return configs + copies


def _normalized_buckets(fc) -> tuple[float, ...]:
    """EasyRec: a number normalized by min_val / max_val into [0, 1] and num_buckets > 1 is
    bucketized at 0, 1/n, ..., (n-1)/n (n + 1 ids: below 0, then one per 1/n)."""
    if fc.num_buckets > 1 and fc.max_val > fc.min_val:
        return tuple(i / float(fc.num_buckets) for i in range(fc.num_buckets))
    return ()


def _sorted_boundaries(fc, where: str) -> tuple[float, ...]:
    bounds = list(fc.boundaries)
    if bounds != sorted(bounds):
        raise ConfigError(f"{where}: boundaries must be increasing")
    return tuple(bounds)


def _id_settings(fc, spec: FeatureSpec, ctype: str, where: str) -> None:
    """hash_bucket_size / num_buckets / vocab_list of an id, tag or id-sequence feature."""
    ways = [bool(fc.hash_bucket_size), bool(fc.num_buckets), bool(fc.vocab_list)]
    if sum(ways) != 1:
        raise ConfigError(f"{where}: set exactly one of hash_bucket_size, num_buckets, vocab_list")
    if fc.num_buckets and ctype not in INT_TYPES and fc.feature_type == FC.IdFeature:
        raise ConfigError(f"{where}: num_buckets needs an integer input field (INT32/INT64); "
                          "use hash_bucket_size for strings")
    spec.hash_bucket_size = fc.hash_bucket_size
    spec.num_buckets = fc.num_buckets
    spec.vocab_list = tuple(fc.vocab_list)
    # vocab: one extra row for values outside the list
    spec.num_ids = fc.hash_bucket_size or fc.num_buckets or len(fc.vocab_list) + 1


def _check_embedding(fc, spec: FeatureSpec, where: str, pooled: bool) -> None:
    if fc.embedding_dim <= 0:
        raise ConfigError(f"{where}: expected a positive embedding_dim, received 0")
    if pooled and spec.combiner not in ("mean", "sum"):
        raise ConfigError(f"{where}: expected combiner 'mean' or 'sum', received "
                          f"{spec.combiner!r}")


def _combo(fc, spec: FeatureSpec, fields: dict[str, str], where: str) -> None:
    """ComboFeature: the cross of its inputs' values, hashed into hash_bucket_size ids."""
    names = list(fc.input_names)
    if len(names) < 2:
        raise ConfigError(f"{where}: a ComboFeature needs at least two input_names")
    seps = list(fc.combo_input_seps)
    if seps and len(seps) != len(names):
        raise ConfigError(f"{where}: combo_input_seps has {len(seps)} entries for "
                          f"{len(names)} input_names (one separator per input, '' for none)")
    seps = seps or [""] * len(names)
    for name, sep in zip(names, seps):
        if fields[name] in ("FLOAT", "DOUBLE"):
            raise ConfigError(f"{where}: input {name!r} is {fields[name]}: EasyRec crosses "
                              "numbers as text only with `precision`, which is not "
                              "implemented; declare the column as STRING or INT64")
        if sep and fields[name] != "STRING":
            raise ConfigError(f"{where}: combo_input_seps splits input {name!r}, which is "
                              f"{fields[name]}, not STRING")
    if not fc.hash_bucket_size:
        raise ConfigError(f"{where}: a ComboFeature needs hash_bucket_size")
    spec.combo_columns = tuple(names)
    spec.combo_seps = tuple(seps)
    spec.combo_join_sep = fc.combo_join_sep
    spec.hash_bucket_size = fc.hash_bucket_size
    spec.num_ids = fc.hash_bucket_size
    # one id per row unless an input is split into several values
    spec.kind = "tag" if any(seps) else "id"
    _check_embedding(fc, spec, where, pooled=spec.kind == "tag")


def _sequence_combiner(fc, where: str) -> dict | None:
    if not fc.HasField("sequence_combiner"):
        return None
    which = fc.sequence_combiner.WhichOneof("combiner")
    if which == "attention":
        return {"kind": "attention"}
    if which == "text_cnn":
        c = fc.sequence_combiner.text_cnn
        if not c.filter_sizes or len(c.filter_sizes) != len(c.num_filters):
            raise ConfigError(f"{where}: sequence_combiner text_cnn needs as many num_filters "
                              "as filter_sizes")
        return {"kind": "text_cnn", "filter_sizes": list(c.filter_sizes),
                "num_filters": list(c.num_filters),
                "pad_sequence_length": c.pad_sequence_length, "activation": c.activation}
    # multi_head_attention: refused by the field table (EasyRec raises NotImplementedError)
    raise ConfigError(f"{where}: sequence_combiner {which or '{}'} is not supported; use "
                      "attention or text_cnn")


def _sequence(fc, spec: FeatureSpec, ctype: str, where: str) -> None:
    """SequenceFeature: ids (sub_feature_type IdFeature) or numbers (RawFeature)."""
    if ctype != "STRING":
        raise ConfigError(f"{where}: a SequenceFeature needs a STRING input field (values "
                          "joined by `separator`)")
    spec.seq_combiner = _sequence_combiner(fc, where)
    if fc.seq_multi_sep:
        if spec.combiner not in ("mean", "sum"):
            raise ConfigError(f"{where}: expected combiner 'mean' or 'sum' (how the values of "
                              f"a step are pooled), received {spec.combiner!r}")
        if fc.seq_multi_sep == fc.separator:
            raise ConfigError(f"{where}: seq_multi_sep must differ from separator")
        spec.seq_multi_sep = fc.seq_multi_sep
    if fc.sub_feature_type == FC.IdFeature:
        spec.kind = "seq"
        spec.max_seq_len = fc.max_seq_len
        _id_settings(fc, spec, ctype, where)
        _check_embedding(fc, spec, where, pooled=False)
        return
    if fc.sub_feature_type != FC.RawFeature:
        raise ConfigError(f"{where}: sub_feature_type must be IdFeature or RawFeature")
    if fc.hash_bucket_size or fc.vocab_list:
        raise ConfigError(f"{where}: a numeric sequence (sub_feature_type RawFeature) is "
                          "bucketized by boundaries (or num_buckets with min_val / max_val), "
                          "not hashed; set sub_feature_type: IdFeature to hash its values")
    if spec.raw_dim != 1:
        raise ConfigError(f"{where}: raw_input_dim > 1 of a numeric sequence needs "
                          "seq_multi_sep, which is not implemented yet")
    spec.min_val, spec.max_val = fc.min_val, fc.max_val
    spec.max_seq_len = fc.max_seq_len
    bounds = _sorted_boundaries(fc, where) if fc.boundaries else _normalized_buckets(fc)
    if bounds:
        spec.kind, spec.seq_values = "seq", "ids"
        spec.boundaries = bounds
        spec.num_ids = len(bounds) + 1
        _check_embedding(fc, spec, where, pooled=False)
    else:
        spec.kind, spec.seq_values = "seq_raw", "raw"
        if spec.seq_multi_sep:
            raise ConfigError(f"{where}: seq_multi_sep on a numeric sequence without "
                              "boundaries (vectors of raw_input_dim values per step) is not "
                              "implemented yet")
        # EasyRec pads the values to sequence_length (and fails on a longer row); here the
        # first sequence_length values are kept when it is set
        if fc.HasField("sequence_length"):
            spec.max_seq_len = fc.sequence_length
        if spec.seq_combiner is not None and fc.embedding_dim == 0:
            raise ConfigError(f"{where}: a sequence_combiner needs embedding_dim > 0")


def build_feature_specs(loaded: LoadedConfig) -> dict[str, FeatureSpec]:
    """Validates the feature configs and returns the specs by feature name, in config order."""
    config = loaded.proto
    fields = input_field_types(config)
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
        ftype = fc.feature_type
        if fc.seq_multi_sep and ftype != FC.SequenceFeature:
            raise ConfigError(f"{where}: seq_multi_sep of a {FC.FeatureType.Name(ftype)} (values "
                              "combined per row) is not implemented yet; it is implemented for "
                              "SequenceFeature")
        several = ftype in (FC.ComboFeature, FC.ExprFeature)
        if len(fc.input_names) != 1 and not several:
            raise ConfigError(f"{where}: expected one input_names entry, got {len(fc.input_names)}")
        for column in fc.input_names:
            if column not in fields:
                raise ConfigError(f"{where}: input {column!r} is not in data_config.input_fields"
                                  f"{suggest(column, fields)}")
        column = fc.input_names[0]
        ctype = fields[column]
        spec = FeatureSpec(name=name, column=column, column_type=ctype, kind="",
                           embedding_dim=fc.embedding_dim, separator=fc.separator,
                           combiner=fc.combiner, raw_dim=fc.raw_input_dim or 1,
                           log_transform=fc.log_transform, normalizer_mean=fc.normalizer_mean,
                           normalizer_std=fc.normalizer_std or 1.0)
        if fc.HasField("kv_separator") and ftype != FC.TagFeature:
            raise ConfigError(f"{where}: kv_separator (weighted tags) is read by a TagFeature "
                              f"only, not a {FC.FeatureType.Name(ftype)}")
        if ftype in (FC.IdFeature, FC.TagFeature):
            spec.kind = "id" if ftype == FC.IdFeature else "tag"
            if ftype == FC.TagFeature and ctype != "STRING":
                raise ConfigError(f"{where}: a TagFeature needs a STRING input field (values "
                                  "joined by `separator`)")
            if fc.HasField("kv_separator"):
                if not fc.kv_separator or fc.kv_separator == fc.separator:
                    raise ConfigError(f"{where}: kv_separator must be a character other than "
                                      f"the separator {fc.separator!r}")
                spec.kv_separator = fc.kv_separator
            _id_settings(fc, spec, ctype, where)
            _check_embedding(fc, spec, where, pooled=True)
        elif ftype == FC.SequenceFeature:
            _sequence(fc, spec, ctype, where)
        elif ftype == FC.ComboFeature:
            _combo(fc, spec, fields, where)
        elif ftype == FC.ExprFeature:
            for c in fc.input_names:
                if fields[c] not in NUMERIC_TYPES and fields[c] != "STRING":
                    raise ConfigError(f"{where}: input {c!r} of an ExprFeature must be a number")
            spec.expression = parse_feature_expression(fc.expression, list(fc.input_names),
                                                       where)
            if not spec.expression.names:
                raise ConfigError(f"{where}: expression {fc.expression!r} reads no input")
            # EasyRec: the value itself, never embedded (embedding_dim is not used)
            spec.kind, spec.embedding_dim, spec.raw_dim = "raw", 0, 1
        elif ftype == FC.RawFeature:
            if ctype not in NUMERIC_TYPES and spec.raw_dim == 1:
                raise ConfigError(f"{where}: a RawFeature needs a numeric input field")
            spec.min_val, spec.max_val = fc.min_val, fc.max_val
            bounds = _sorted_boundaries(fc, where) if fc.boundaries else \
                _normalized_buckets(fc)
            if bounds:
                spec.kind = "bucketized"
                spec.boundaries = bounds
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
        rows = spec.raw_dim if spec.kind in ("raw", "seq_raw") else spec.num_ids
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
        if not spec.uses_table or spec.kind == "seq_raw":
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
        if spec.table in tables and spec.uses_table and spec.kind != "seq_raw":
            spec.initializer = tables[spec.table].initializer


def _seq_att_specs(loaded: LoadedConfig, g, specs: dict[str, FeatureSpec],
                   where: str) -> tuple[SeqAttSpec, ...]:
    """A group's sequence_features: EasyRec's DIN target attention (its input layer)."""
    out = []
    for sf in g.sequence_features:
        here = f"{where}: sequence_features {sf.group_name!r}"
        keys = [k for m in sf.seq_att_map for k in m.key]
        hists = [h for m in sf.seq_att_map for h in m.hist_seq]
        auxes = [a for m in sf.seq_att_map for a in m.aux_hist_seq]
        if not keys or not hists:
            raise ConfigError(f"{here}: seq_att_map needs at least one key and one hist_seq")
        for f in keys + hists + auxes:
            if f not in specs:
                raise ConfigError(f"{here}: unknown feature {f!r}{suggest(f, specs)}")
            if not specs[f].uses_table and f in keys:
                raise ConfigError(f"{here}: key {f!r} must be an embedded feature "
                                  "(IdFeature, TagFeature or bucketized RawFeature)")
        for f in hists + auxes:
            if not specs[f].is_sequence or specs[f].item_dim <= 0:
                raise ConfigError(f"{here}: {f!r} must be a SequenceFeature with embedding_dim "
                                  "and without sequence_combiner")
        dnn = message_to_kwargs(sf.seq_dnn) if sf.HasField("seq_dnn") else {}
        units = list(dnn.get("hidden_units") or DEFAULT_SEQ_DNN)
        if units[-1] != 1:
            raise ConfigError(f"{here}: the last of seq_dnn.hidden_units must be 1 (the "
                              f"attention score), got {units}")
        # EasyRec's DNN with last_layer_no_activation and last_layer_no_batch_norm
        mlp = {"hidden_units": units, "dropout_ratio": dnn.get("dropout_ratio"),
               "activation": dnn.get("activation", "relu"), "use_bn": dnn.get("use_bn", True),
               "use_final_bn": False, "final_activation": "linear", "use_bias": True,
               "use_final_bias": True, "initializer": "glorot_uniform"}
        key_dim = sum(specs[k].output_dim for k in keys)
        seq_dim = sum(specs[h].item_dim for h in hists)
        aux_dim = sum(specs[a].item_dim for a in auxes)
        spec = SeqAttSpec(name=sf.group_name or f"seq_att_{len(out)}", keys=tuple(keys),
                          hist_seqs=tuple(hists), aux_hist_seqs=tuple(auxes), dnn=mlp,
                          need_key_feature=sf.need_key_feature,
                          allow_key_transform=sf.allow_key_transform,
                          transform_dnn=sf.transform_dnn, key_dim=key_dim, seq_dim=seq_dim,
                          aux_dim=aux_dim)
        if key_dim != seq_dim and not sf.allow_key_transform:
            raise ConfigError(f"{here}: the keys ({', '.join(keys)}) have width {key_dim} but "
                              f"the sequences ({', '.join(hists)}) {seq_dim}; make them equal "
                              "or set allow_key_transform")
        out.append(spec)
    return tuple(out)


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
        names = [n for f in g.feature_names for n in expand_names(f)]
        if not names and not g.sequence_features:
            raise ConfigError(f"{where}: no feature_names")
        for f in names:
            if f not in specs:
                raise ConfigError(f"{where}: unknown feature {f!r}{suggest(f, specs)}")
        mode = feature_pb2.WideOrDeep.Name(g.wide_deep)
        if mode == "WIDE_AND_DEEP":
            raise ConfigError(f"{where}: wide_deep WIDE_AND_DEEP is not supported; declare a "
                              "WIDE group and a DEEP group with the same features")
        if g.sequence_features and mode == "WIDE":
            raise ConfigError(f"{where}: sequence_features need a DEEP group")
        sequences = [f for f in names if specs[f].is_sequence]
        if sequences and (mode == "WIDE" or g.sequence_features):
            raise ConfigError(f"{where}: SequenceFeature {sequences[0]!r} without "
                              "sequence_combiner cannot be in a WIDE group or a group with "
                              "sequence_features; set a sequence_combiner (attention or "
                              "text_cnn) to pool it, or use a TagFeature")
        if mode == "WIDE":
            pooled = [f for f in names if specs[f].kind in ("seq", "seq_raw")]
            if pooled:
                raise ConfigError(f"{where}: SequenceFeature {pooled[0]!r} cannot be in a WIDE "
                                  "group")
        groups[g.group_name] = FeatureGroupSpec(
            g.group_name, tuple(names), wide=mode == "WIDE",
            wide_dim=wide_dim if mode == "WIDE" else 1,
            seq_att=_seq_att_specs(loaded, g, specs, where), sequences=tuple(sequences))
    if not groups:
        raise ConfigError(f"{loaded.path}: model_config has no feature_groups")
    return groups
