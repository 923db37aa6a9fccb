"""Reads a .config file (protobuf text format) into an EasyRecConfig message."""

from __future__ import annotations

import itertools
import os
import re

from google.protobuf import descriptor_pool, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from easyblocks.config.easyrec_fields import EASYREC_BLOCK_PARAMS, ZOO
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import pipeline_pb2

# a config is a short text file; anything larger is refused before it is parsed
MAX_CONFIG_BYTES = 16 * 2**20
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')


class LoadedConfig:
    """A parsed config and the text it came from (to point at lines in errors)."""

    def __init__(self, path: str, text: str, proto: pipeline_pb2.EasyRecConfig):
        self.path = path
        self.text = text
        self.proto = proto
        # the model class whose template produced this config's model_config, if any
        # (easyblocks.config.templates.expand)
        self.expanded_from: str | None = None
        self._lines: tuple[str, list[str]] | None = None  # (text, its lines)
        self._names = None  # `_name_index` of the lines

    @property
    def lines(self) -> list[str]:
        """The text's lines (split once per text)."""
        if self._lines is None or self._lines[0] is not self.text:
            self._lines = (self.text, self.text.splitlines())
            self._names = None
        return self._lines[1]

    def locate(self, pattern: str) -> str:
        """Returns 'path:line' of the first line matching the regex pattern, else 'path'."""
        rx = re.compile(pattern)
        for i, line in enumerate(self.lines, start=1):
            if rx.search(line):
                return f"{self.path}:{i}"
        return self.path

    def locate_name(self, field: str, value: str) -> str:
        """'path:line' of `field: "value"` (quotes either way).

        Called for every block of a backbone: answered from an index of the text's
        `field: "value"` pairs (built once), not by scanning the text each time.
        """
        lines = self.lines  # (re)sets the index when the text changed
        if self._names is None:
            self._names = _name_index(lines)
        first, odd = self._names
        found = first.get((field, value))
        pattern = rf"\b{field}\s*:\s*[\"']{re.escape(value)}[\"']"
        if found is None:  # e.g. a value with quotes in it: the plain scan
            return self.locate(pattern)
        # a line whose quoted value holds a colon may hide a pair from the index
        earlier = list(itertools.takewhile(lambda i: i < found, odd))
        if earlier:
            rx = re.compile(pattern)
            for i in earlier:
                if rx.search(lines[i - 1]):
                    return f"{self.path}:{i}"
        return f"{self.path}:{found}"


# `field: "value"` (either quotes) as `locate_name` looks for them
_FIELD_VALUE = re.compile(r"\b(\w+)\s*:\s*[\"']([^\"'\n]*)[\"']")


def _name_index(lines: list[str]) -> tuple[dict[tuple[str, str], int], list[int]]:
    """{(field, value): its first line} for the `field: "value"` pairs of the lines, and the
    lines (ascending) where a quoted value holds a colon: there a pair may start inside the
    value (`input_fn: "lambda x: ..."`), which the index then does not hold."""
    first: dict[tuple[str, str], int] = {}
    odd: list[int] = []
    for i, line in enumerate(lines, start=1):
        for m in _FIELD_VALUE.finditer(line):
            first.setdefault((m.group(1), m.group(2)), i)
            if ":" in m.group(2) and (not odd or odd[-1] != i):
                odd.append(i)
    return first, odd


def parse_config_text(text: str, path: str = "<config>") -> LoadedConfig:
    """Parses config text; syntax errors become ConfigError('path:line:col: ...').

    Like EasyRec, with protobuf's merge semantics: a scalar field written twice keeps
    the last value, a message written twice is merged.
    """
    proto = pipeline_pb2.EasyRecConfig()
    try:
        text_format.Merge(text, proto)
    except text_format.ParseError as e:
        msg = str(e)
        line, col = e.GetLine(), e.GetColumn()
        # "3:5 : message" -> "message"
        msg = re.sub(r"^\d+:\d+\s*:\s*", "", msg)
        m = _NO_FIELD.search(msg)
        if m and m.group(1) == "easyblocks.protos.KerasLayer" and \
                m.group(2) in EASYREC_BLOCK_PARAMS:
            msg += (f" ({m.group(2)} {{}}: parameters of an EasyRec block that is not "
                    f"available yet, {ZOO})")
        elif m:
            desc = descriptor_pool.Default().FindMessageTypeByName(m.group(1))
            msg += suggest(m.group(2), [f.name for f in desc.fields])
        where = f"{path}:{line}:{col}" if line else path
        raise ConfigError(f"{where}: {msg}") from None
    return LoadedConfig(path, text, proto)


def load_config(path: str) -> LoadedConfig:
    """Reads and parses the .config file at path (syntax only; see validate.py)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config: {e.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES // 2**20} MiB; a .config is a "
                          "short text file")
    if raw[:2] == b"\x1f\x8b":
        raise ConfigError(f"{path}: a gzip file, not a text config; decompress it first")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text config (byte {e.start} cannot be "
                          "decoded)") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: a binary file, not a text config")
    return parse_config_text(text, path)


def merge_override(dst: Message, src: Message) -> None:
    """Merges an override into a config: scalars are replaced, messages merged field by
    field, and a list the override names (repeated field, e.g. `optimizer_config` or
    `hidden_units`) replaces the config's list instead of being appended to it; maps
    (`st_params` fields) are merged by key."""
    for field, value in src.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            target = getattr(dst, field.name)
            message_values = field.message_type.fields_by_name["value"].type == \
                FieldDescriptor.TYPE_MESSAGE
            for key, item in value.items():
                if message_values:
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            dst.ClearField(field.name)
            getattr(dst, field.name).extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(dst, field.name)
            sub.SetInParent()  # an empty message (`auc {}`) is set too; a oneof switches
            merge_override(sub, value)
        else:
            setattr(dst, field.name, value)


def apply_override(loaded: LoadedConfig, text: str) -> None:
    """Merges config text given with --set into the loaded config (see merge_override)."""
    override = pipeline_pb2.EasyRecConfig()
    try:
        text_format.Parse(text, override)
    except text_format.ParseError as e:
        raise ConfigError(f"--set {text!r}: {e}") from None
    merge_override(loaded.proto, override)
