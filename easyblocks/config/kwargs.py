"""The one path from a proto message (typed params or st_params) to constructor kwargs.

EasyRec read unset fields differently depending on whether a block's parameters
were written as a typed message (`mlp {}`) or as a `st_params` Struct, so the
same layer got different defaults. Here a Struct given to a block that has a
typed message is first parsed *into that message*, then both forms go through
`message_to_kwargs`: the defaults are those of the proto, whichever form is used.
"""

from __future__ import annotations

import inspect
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from easyblocks.errors import ConfigError


def message_to_kwargs(msg: Message) -> dict[str, Any]:
    """Converts a params message into kwargs.

    Set fields, and unset fields that declare an explicit default, are included;
    other unset fields are left out, so the constructor's own default applies.
    Repeated fields become lists, sub-messages become dicts (recursively).
    """
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        is_repeated = field.is_repeated
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        value = getattr(msg, field.name)
        if is_repeated:
            if len(value):
                out[field.name] = [message_to_kwargs(v) if is_message else v for v in value]
        elif is_message:
            if msg.HasField(field.name):
                out[field.name] = message_to_kwargs(value)
        elif msg.HasField(field.name) or field.has_default_value:
            out[field.name] = value
    return out


def _plain(value: Any) -> Any:
    """Struct numbers are doubles: give back ints where the number is integral."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def dict_to_kwargs(
    as_dict: dict[str, Any], message_type: type[Message] | None, where: str
) -> dict[str, Any]:
    """Converts `st_params` (as a dict) into kwargs, through `message_type` when the block
    has a typed message, so that its defaults are the message's."""
    if message_type is None:
        return _plain(as_dict)
    msg = message_type()
    try:
        json_format.ParseDict(as_dict, msg)
    except json_format.ParseError as e:
        fields = ", ".join(f.name for f in message_type.DESCRIPTOR.fields)
        raise ConfigError(f"{where}: bad st_params: {e}; accepted fields: {fields}") from None
    return message_to_kwargs(msg)


def check_kwargs(cls: type, kwargs: dict[str, Any], where: str) -> None:
    """Raises ConfigError when kwargs do not fit cls.__init__ (unknown or missing arguments)."""
    sig = inspect.signature(cls.__init__)
    params = [p for n, p in sig.parameters.items() if n != "self"]
    named = {
        p.name: p
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    accepted = ", ".join(named) or "(none)"
    # Keras layers take **kwargs for the base Layer (name, dtype, trainable ...) only.
    unknown = [k for k in kwargs if k not in named]
    base_ok = {"name", "dtype", "trainable", "autocast", "input_dim", "input_shape"}
    if unknown and (not takes_any or any(k not in base_ok for k in unknown)):
        bad = [k for k in unknown if k not in base_ok] or unknown
        raise ConfigError(
            f"{where}: {cls.__name__} got unknown parameter(s) {', '.join(bad)}; "
            f"accepted: {accepted}"
        )
    missing = [
        n for n, p in named.items() if p.default is inspect.Parameter.empty and n not in kwargs
    ]
    if missing:
        raise ConfigError(
            f"{where}: {cls.__name__} is missing required parameter(s) {', '.join(missing)}; "
            f"accepted: {accepted}"
        )
