"""Checks of a whole config that need more than one section: finite numbers, labels that are
not features, static shapes of sliced inputs, domain counts, table sizes.

Everything here reads the config or its specs only (no TensorFlow), so `validate` reports
these errors before any model is built.
"""

from __future__ import annotations

import math
import re
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from easyblocks.config.loader import LoadedConfig
from easyblocks.config.specs import BlockSpec, DagSpec, FeatureSpec, PipelineSpec
from easyblocks.errors import ConfigError

# Rows of one embedding table (ids are int64, but a table this large does not fit in any
# memory anyway); a larger hash_bucket_size / num_buckets is a typo.
MAX_TABLE_ROWS = 2**31 - 1
# Default limit of the memory that the embedding tables (and their optimizer slots) take.
DEFAULT_MAX_MEMORY_GB = 8.0
# optimizer slots per table element (Adam: m and v; FTRL: accumulator and linear; Adagrad,
# momentum: the accumulator)
_SLOTS = {"adam": 2, "adamw": 2, "ftrl": 2, "adagrad": 1, "momentum": 1, "momentumw": 1}

_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)


# ---- numbers ------------------------------------------------------------------------------

def check_finite_numbers(loaded: LoadedConfig) -> None:
    """Every float of the config (learning rates, loss weights, boundaries, st_params numbers)
    must be finite: a NaN learning rate trains to NaN and writes NaN checkpoints."""

    def walk(msg: Message, path: str) -> None:
        for field, value in msg.ListFields():
            name = f"{path}.{field.name}" if path else field.name
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if field.message_type.GetOptions().map_entry:  # st_params: by key
                    items = [(f"{name}[{k!r}]", v) for k, v in value.items()] \
                        if _message_map(field) else []
                else:
                    items = [(name, v) for v in (value if field.is_repeated else [value])]
                for item_name, item in items:
                    walk(item, item_name)
            elif field.type in _FLOATS:
                for v in value if field.is_repeated else [value]:
                    if not math.isfinite(v):
                        raise ConfigError(f"{_locate_number(loaded, field.name)}: {name} is "
                                          f"{v}; every number in a config must be finite")

    walk(loaded.proto, "")


def _message_map(field: FieldDescriptor) -> bool:
    value_field = field.message_type.fields_by_name["value"]
    return value_field.type == FieldDescriptor.TYPE_MESSAGE


def _locate_number(loaded: LoadedConfig, field: str) -> str:
    bad = r"[-+]?(nan|inf|infinity)\b"
    where = loaded.locate(rf"(?i)\b{re.escape(field)}\s*:\s*\[?[^#\n]*?{bad}")
    if where == loaded.path:  # a number too large for a float: no literal nan/inf
        where = loaded.locate(rf"(?i)\b{re.escape(field)}\s*:")
    return where


# ---- labels -------------------------------------------------------------------------------

def check_labels_are_not_features(loaded: LoadedConfig, spec: PipelineSpec) -> None:
    """A feature that reads a label column shows the model its own target."""
    labels = set(spec.data.label_fields) | set(spec.labels)
    for f in spec.features.values():
        column = next((c for c in f.input_columns if c in labels), None)  # combos: several
        if column is not None:
            where = loaded.locate_name("feature_name", f.name)
            if where == loaded.path:
                where = loaded.locate_name("input_names", column)
            raise ConfigError(f"{where}: feature {f.name!r} reads the label column "
                              f"{column!r}: the model would see its own target; remove the "
                              "feature or the label")


def check_table_sizes(loaded: LoadedConfig, features: dict[str, FeatureSpec]) -> None:
    for f in features.values():
        if f.num_ids > MAX_TABLE_ROWS:
            where = loaded.locate_name("feature_name", f.name)
            if where == loaded.path:
                where = loaded.locate_name("input_names", f.column)
            raise ConfigError(f"{where}: feature {f.name!r}: a table of {f.num_ids} rows; at "
                              f"most {MAX_TABLE_ROWS} are accepted")


# ---- memory -------------------------------------------------------------------------------

def table_memory(spec: PipelineSpec, training: bool) -> tuple[int, list[tuple[str, int]]]:
    """Bytes of the embedding tables (float32), with the optimizer's slots when training;
    and each table's bytes, largest first."""
    deep = {f for g in spec.groups.values() if not g.wide for f in g.features}
    wide = {f for g in spec.groups.values() if g.wide for f in g.features}
    tables: dict[str, int] = {}
    for f in spec.features.values():
        if f.kind == "raw":
            continue
        if f.name in deep and f.uses_table:
            tables.setdefault(f.table, f.num_ids * f.embedding_dim * 4)
        if f.name in wide:
            tables.setdefault(f"wide_{f.table}", f.num_ids * 4)
    optimizer = spec.train.table_optimizer or spec.train.optimizer  # what updates the tables
    factor = 1 + (_SLOTS.get(optimizer.kind, 0) if training else 0)
    if training and optimizer.kind == "sgd" and optimizer.momentum:
        factor = 2
    sizes = sorted(((k, v * factor) for k, v in tables.items()), key=lambda kv: -kv[1])
    return sum(v for _, v in sizes), sizes


def check_memory(spec: PipelineSpec, max_memory_gb: float | None, training: bool) -> None:
    """Refuses tables larger than max_memory_gb (None: DEFAULT_MAX_MEMORY_GB) before
    TensorFlow allocates them (an embedding_dim of 1e8 otherwise runs for minutes, then fails
    with ResourceExhausted)."""
    limit = DEFAULT_MAX_MEMORY_GB if max_memory_gb is None else max_memory_gb
    total, sizes = table_memory(spec, training)
    if total <= limit * 2**30:
        return
    top = ", ".join(f"{name} {size / 2**30:.3g} GiB" for name, size in sizes[:3])
    slots = " with the optimizer's slots" if training else ""
    raise ConfigError(f"{spec.path}: the embedding tables need {total / 2**30:.3g} GiB{slots} "
                      f"({top}), above the limit of {limit:g} GiB; make hash_bucket_size / "
                      "embedding_dim smaller, or raise the limit with --max_memory_gb")


# ---- backbone shapes ----------------------------------------------------------------------

def _group_shape(spec: PipelineSpec, group: str) -> tuple | None:
    """Static shape of a feature group's tensor (None: the batch or length axis)."""
    g = spec.groups[group]
    features = [spec.features[f] for f in g.features]
    if g.wide:
        return (None, len(features))
    if features[0].kind == "seq":
        return (None, None, features[0].embedding_dim)
    return (None, sum(f.output_dim for f in features))


def _raw_shape(spec: PipelineSpec, group: str) -> tuple | None:
    features = [spec.features[f] for f in spec.groups[group].features]
    if len(features) == 1 and features[0].kind == "seq":
        return (None, None)
    if any(f.kind in ("tag", "seq") for f in features):
        return None
    return (None, sum(f.raw_dim if f.kind == "raw" else 1 for f in features))


def _source_shape(spec: PipelineSpec, dag: DagSpec, inp) -> tuple | None:
    if inp.kind == "group":
        return _group_shape(spec, inp.name)
    if inp.kind != "block" or inp.name not in dag.blocks:
        return None
    src = dag.blocks[inp.name]
    group = src.inputs[0].name if src.inputs else None
    if src.kind == "input_layer" and not (src.only_output_feature_list
                                          or src.only_output_3d_tensor
                                          or src.output_2d_tensor_and_feature_list):
        return _group_shape(spec, group)
    if src.kind == "raw_input":
        return _raw_shape(spec, group)
    return None


def _slice_text(index: Any) -> str:
    def one(i):
        if i is Ellipsis:
            return "..."
        if isinstance(i, slice):
            parts = ["" if p is None else str(p) for p in (i.start, i.stop, i.step)]
            return ":".join(parts[:2] if i.step is None else parts)
        return str(i)

    return "[" + ", ".join(one(i) for i in (index if isinstance(index, tuple) else (index,))) + "]"


def check_slice_against_shape(index: Any, shape: tuple, where: str) -> None:
    """Refuses an input_slice that indexes the batch axis, selects nothing or reaches beyond
    a known width. shape: the input's static shape (None: unknown, e.g. the batch axis)."""
    parts = list(index) if isinstance(index, tuple) else [index]
    text = _slice_text(index)
    if Ellipsis in parts:
        k = parts.index(Ellipsis)
        before, after = parts[:k], parts[k + 1:]
        fill = max(len(shape) - len([p for p in before + after if p is not None]), 0)
        parts = before + [slice(None)] * fill + after
    parts = [p for p in parts if p is not None]  # None adds an axis
    if not parts:
        return
    if len(parts) > len(shape):
        raise ConfigError(f"{where}: input_slice {text} has {len(parts)} indices but the input "
                          f"has {len(shape)} axes (batch, ...)")
    head = parts[0]
    if not (isinstance(head, slice) and head.start is None and head.stop is None
            and head.step in (None, 1)):
        raise ConfigError(f"{where}: input_slice {text} indexes the batch axis (axis 0) of a "
                          f"tensor input; take columns with '[:, a:b]' (a list input takes "
                          "'[0]')")
    for axis, (p, size) in enumerate(zip(parts, shape)):
        if axis == 0 or size is None:
            continue
        if isinstance(p, int):
            if not -size <= p < size:
                raise ConfigError(f"{where}: input_slice {text}: index {p} on axis {axis} is "
                                  f"outside the input's width {size}")
        elif isinstance(p, slice):
            if p.step == 0:
                raise ConfigError(f"{where}: input_slice {text}: a slice step of 0")
            beyond = [b for b in (p.start, p.stop) if b is not None and not -size <= b <= size]
            if beyond or len(range(size)[p]) == 0:
                raise ConfigError(f"{where}: input_slice {text} selects "
                                  f"{'beyond' if beyond else 'none of'} the input's {size} "
                                  f"columns on axis {axis}")


def check_backbone_shapes(loaded: LoadedConfig, spec: PipelineSpec) -> None:
    """input_slice against the widths known from the feature specs, and the num_domains of
    multi-domain blocks against the ids of their domain feature."""
    bb = spec.model.backbone
    for dag in [bb.dag, *bb.packages.values()]:
        for block in dag.blocks.values():
            for inp in block.inputs:
                if inp.index is None:
                    continue
                shape = _source_shape(spec, dag, inp)
                if shape is not None:
                    check_slice_against_shape(inp.index, shape, block.where)
            _check_num_domains(spec, dag, block)


def _num_domains(block: BlockSpec) -> int | None:
    for step in block.steps:
        if step.layer is not None and "num_domains" in step.layer.params:
            value = step.layer.params["num_domains"]
            if isinstance(value, (int, float)):
                return int(value)
    return None


def _id_count(f: FeatureSpec) -> tuple[int, str] | None:
    if f.kind == "id" and f.vocab_list:
        return f.num_ids, f"a vocab_list of {len(f.vocab_list)} values + 1 for unseen values"
    if f.kind == "id" and f.num_buckets:
        return f.num_ids, f"num_buckets {f.num_buckets}"
    if f.kind == "id":
        return f.num_ids, f"hash_bucket_size {f.hash_bucket_size}"
    if f.kind == "bucketized":
        return f.num_ids, f"{len(f.boundaries)} boundaries"
    return None


def _check_num_domains(spec: PipelineSpec, dag: DagSpec, block: BlockSpec) -> None:
    num = _num_domains(block)
    if num is None:
        return
    for inp in block.inputs:
        src = dag.blocks.get(inp.name) if inp.kind == "block" else None
        if src is None or src.kind != "raw_input":
            continue
        group = spec.groups[src.inputs[0].name]
        if len(group.features) != 1:
            continue
        counted = _id_count(spec.features[group.features[0]])
        if counted is None:
            continue
        count, why = counted
        if num < count:
            raise ConfigError(
                f"{block.where}: num_domains {num}, but its domain ids come from feature "
                f"{group.features[0]!r} (raw_input {src.name!r}), which has {count} ids "
                f"({why}): ids {num}..{count - 1} would be clipped into domain {num - 1}; set "
                f"num_domains: {count}")
