"""Applies the field table (easyrec_fields) to a parsed config.

`enforce` runs first in validation: the first refused field is one error line
(file:line: field path: why), and every set field that is accepted but not applicable
is named in one warning line. `explain` lists all of them at once (`easyblocks validate
--explain`).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from easyblocks.config import easyrec_fields as T
from easyblocks.errors import ConfigError

log = logging.getLogger("easyblocks")

Path = tuple  # ((field name, index or None), ...)
GAUC_REDUCTIONS = ("mean", "mean_by_sample_num", "mean_by_positive_num")  # EasyRec's


@dataclasses.dataclass
class Finding:
    """A set field that is refused or accepted-not-applicable."""

    path: str  # e.g. "model_config.feature_groups[0].sequence_features"
    state: str
    reason: str
    line: int | None  # 1-based line in the config text; None: not from the file (--set)

    def where(self, file: str) -> str:
        return f"{file}:{self.line}" if self.line else file

    def format(self, file: str) -> str:
        return f"{self.where(file)}: {self.path}: {self.reason}"


# ---- where each field is written ---------------------------------------------------------

_TOKEN = re.compile(r"""\s+|\#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
                    r"""|[\w.+\-]+|[{}<>\[\]:,;/]""")


def _tokens(text: str) -> list[tuple[str, int]]:
    out, line = [], 1
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if not tok.isspace() and not tok.startswith("#"):
            out.append((tok, line))
        line += tok.count("\n")
    return out


def field_lines(text: str, descriptor: Descriptor) -> dict[Path, list[int]]:
    """Line numbers of every field occurrence in config text (already known to parse).

    Keys are paths of (field name, index) pairs, the index counting the elements of a
    repeated field (in text order, as merging appends them) and None for singular fields,
    so a field set twice (merge semantics) has two lines under one key.
    """
    toks = _tokens(text)
    lines: dict[Path, list[int]] = {}
    counts: dict[Path, int] = {}
    pos = 0

    def element(path: Path, field: FieldDescriptor, line: int) -> Path:
        if field.is_repeated:
            key = path + ((field.name, "#"),)
            index = counts.get(key, 0)
            counts[key] = index + 1
            here = path + ((field.name, index),)
        else:
            here = path + ((field.name, None),)
        lines.setdefault(here, []).append(line)
        return here

    def message(desc: Descriptor, path: Path, close: str | None) -> None:
        nonlocal pos
        while pos < len(toks):
            tok, line = toks[pos]
            if tok == close:
                pos += 1
                return
            if tok in (",", ";"):
                pos += 1
                continue
            pos += 1
            field = desc.fields_by_name.get(tok)
            if field is None:
                raise ValueError(f"line {line}: unexpected {tok!r}")
            if toks[pos][0] == ":":
                pos += 1
            is_message = field.type == FieldDescriptor.TYPE_MESSAGE
            if toks[pos][0] == "[":  # a list of values or of messages
                pos += 1
                while toks[pos][0] != "]":
                    if toks[pos][0] == ",":
                        pos += 1
                        continue
                    value(field, element(path, field, toks[pos][1]), is_message)
                pos += 1
            else:
                value(field, element(path, field, line), is_message)

    def value(field: FieldDescriptor, here: Path, is_message: bool) -> None:
        nonlocal pos
        if is_message:
            close = "}" if toks[pos][0] == "{" else ">"
            pos += 1
            message(field.message_type, here, close)
            return
        pos += 1
        while pos < len(toks) and toks[pos][0][:1] in "\"'" and toks[pos - 1][0][:1] in "\"'":
            pos += 1  # adjacent strings are concatenated

    message(descriptor, (), None)
    return lines


# ---- the walk ----------------------------------------------------------------------------

def _name(desc) -> str:
    """A descriptor's name without the package ("DatasetConfig.Field")."""
    return desc.full_name.split(".", 2)[-1]


def _text(path: Path) -> str:
    return ".".join(name if index is None else f"{name}[{index}]" for name, index in path)


class _Walker:
    def __init__(self, lines: dict[Path, list[int]]):
        self.lines = lines
        self.findings: list[Finding] = []

    def line(self, path: Path, last: bool = False) -> int | None:
        found = self.lines.get(path)
        if not found:
            return None
        return found[-1] if last else found[0]

    def add(self, path: Path, state: str, reason: str, value: str | None = None,
            last: bool = False) -> None:
        text = _text(path) + (f" = {value}" if value is not None else "")
        self.findings.append(Finding(text, state, reason, self.line(path, last)))

    def walk(self, msg, path: Path = ()) -> None:
        msg_name = _name(msg.DESCRIPTOR)
        for field, value in msg.ListFields():
            key = f"{msg_name}.{field.name}"
            if _said_by_model_class(msg_name, msg, field):
                continue
            state = T.FIELDS.get(key) or T.R(f"{key} is not in easyblocks' field table")
            values = list(value) if field.is_repeated else [value]
            paths = [path + ((field.name, i if field.is_repeated else None),)
                     for i in range(len(values))]
            scalar = field.type != FieldDescriptor.TYPE_MESSAGE
            if key == "EasyRecModel.model_class":
                cls_state = T.model_class_state(value)
                if cls_state is not None and cls_state.state != T.HONOURED:
                    self.add(paths[0], cls_state.state, cls_state.reason, repr(value))
                continue
            if state.state != T.HONOURED:
                if state.ok and scalar and all(v in state.ok for v in values):
                    continue
                self.add(paths[0], state.state, state.reason, last=scalar)
                continue
            if state.max_items is not None and len(values) > state.max_items:
                self.add(paths[state.max_items], T.REFUSED, state.reason)
            if field.type == FieldDescriptor.TYPE_ENUM:
                enum = _name(field.enum_type)
                for v, p in zip(values, paths):
                    label = field.enum_type.values_by_number[v].name
                    v_state = T.ENUM_VALUES.get(f"{enum}.{label}") or T.R(
                        f"{enum}.{label} is not in easyblocks' field table")
                    if v_state.state != T.HONOURED:
                        self.add(p, v_state.state, v_state.reason, label, last=True)
            elif not scalar and not _block_params(msg_name, field):
                for v, p in zip(values, paths):
                    self.walk(v, p)
        _context_rules(msg_name, msg, path, self)


def _said_by_model_class(msg_name: str, msg, field: FieldDescriptor) -> bool:
    """The parameters of a refused model class (`mind {}`): its model_class says it; those of
    a plugin's template whose parameter message the table does not honour: the template
    reads them."""
    from easyblocks.config import templates

    if msg_name != "EasyRecModel" or field.containing_oneof is None or \
            field.name == "model_params":
        return False
    cls_state = T.model_class_state(msg.model_class)
    if cls_state is not None and cls_state.state == T.REFUSED:
        return True
    template = templates.get_model_class(msg.model_class)
    state = T.FIELDS.get(f"EasyRecModel.{field.name}")
    return template is not None and template.params == field.name and \
        (state is None or state.state != T.HONOURED)


def _block_params(msg_name: str, field: FieldDescriptor) -> bool:
    """Block parameters are not walked: they become the block's constructor arguments."""
    if f"{msg_name}.{field.name}" in T.BLOCK_PARAM_FIELDS:
        return True
    return msg_name == "KerasLayer" and field.containing_oneof is not None


def _context_rules(msg_name: str, msg, path: Path, walker: _Walker) -> None:
    """Rules that depend on more than one field (or check a value)."""
    if msg_name == "GAUC" and msg.reduction not in GAUC_REDUCTIONS:
        walker.add(path + (("reduction", None),), T.REFUSED,
                   f"expected reduction {' | '.join(GAUC_REDUCTIONS)}, got {msg.reduction!r}")
    if msg_name == "EvalConfig":
        gaucs = [i for i, m in enumerate(msg.metrics_set) if m.WhichOneof("metric") == "gauc"]
        for i in gaucs[1:]:
            walker.add(path + (("metrics_set", i), ("gauc", None)), T.REFUSED,
                       "only one gauc metric is computed (the first in eval_config)")
    if msg_name == "EasyRecConfig":
        evals = [m.gauc for m in msg.eval_config.metrics_set if m.WhichOneof("metric") == "gauc"]
        towers = msg.model_config.model_params.task_towers
        for t, tower in enumerate(towers):
            for i, m in enumerate(tower.metrics_set):
                if m.WhichOneof("metric") != "gauc":
                    continue
                if not evals or (evals[0].uid_field, evals[0].reduction) != \
                        (m.gauc.uid_field, m.gauc.reduction):
                    where = (("model_config", None), ("model_params", None),
                             ("task_towers", t), ("metrics_set", i), ("gauc", None))
                    walker.add(where, T.REFUSED,
                               "a tower's gauc is computed only with the uid_field and "
                               "reduction of eval_config's gauc; set the same gauc there")


# ---- entry points ------------------------------------------------------------------------

def check_fields(loaded) -> list[Finding]:
    """Every set field of `loaded` (a LoadedConfig) that is refused or not applicable,
    ordered by line (fields without a line, from --set, last)."""
    try:
        lines = field_lines(loaded.text, loaded.proto.DESCRIPTOR)
    except (ValueError, IndexError):  # cannot happen for text that parsed; stay usable
        lines = {}
    walker = _Walker(lines)
    walker.walk(loaded.proto)
    return sorted(walker.findings, key=lambda f: (f.line is None, f.line or 0))


def enforce(loaded) -> list[Finding]:
    """Raises ConfigError for the first refused field; logs one warning line naming the
    accepted-but-not-applicable ones. Returns the findings."""
    findings = check_fields(loaded)
    refused = [f for f in findings if f.state == T.REFUSED]
    if refused:
        more = f" (and {len(refused) - 1} more: easyblocks validate --explain lists them)" \
            if len(refused) > 1 else ""
        raise ConfigError(refused[0].format(loaded.path) + more)
    ignored = [f for f in findings if f.state == T.NOT_APPLICABLE]
    if ignored:
        names = ", ".join(f"{f.path}" + (f" (line {f.line})" if f.line else "") for f in ignored)
        log.warning("warning: %s: accepted, not applicable in easyblocks (no effect on the "
                    "model; easyblocks validate --explain says why): %s", loaded.path, names)
    return findings


def explain(loaded) -> tuple[str, int]:
    """The `validate --explain` listing and the number of refused fields."""
    findings = check_fields(loaded)
    out = [f"{f.where(loaded.path)}: {f.path}: {f.state}: {f.reason}" for f in findings]
    refused = sum(f.state == T.REFUSED for f in findings)
    out.append(f"{loaded.path}: {len(findings) - refused} field(s) accepted, not applicable; "
               f"{refused} refused")
    return "\n".join(out), refused
