"""`input_slice` strings ("[0]", "[:, 0:8]", "[..., -1]", "[i]") parsed by a tiny grammar.

EasyRec built a lambda from the string and eval'ed it; a config is data, so here
the string is parsed into Python index objects and applied with `x[index]`.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

from easyblocks.errors import ConfigError

_INT = re.compile(r"^[+-]?\d+$")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv}


def _int_expression(node: ast.AST, variables: dict[str, int]) -> int:
    """Integer arithmetic (+ - * //) over literals and the repeat index `i`."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name) and node.id in variables:
        return variables[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_int_expression(node.operand, variables)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_int_expression(node.left, variables),
                                   _int_expression(node.right, variables))
    raise ValueError(type(node).__name__)


def _bound(text: str, variables: dict[str, int], where: str) -> int | None:
    text = text.strip()
    if text == "":
        return None
    if _INT.match(text):
        return int(text)
    if len(text) > 200:
        raise ConfigError(f"{where}: an index of {len(text)} characters in input_slice; at most "
                          "200 are accepted")
    try:
        value = _int_expression(ast.parse(text, mode="eval").body, variables)
    except ZeroDivisionError:
        raise ConfigError(f"{where}: index {text!r} in input_slice divides by zero") from None
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ConfigError(f"{where}: bad index {text!r} in input_slice (integers, ':', '...' "
                          "and, in a repeat, arithmetic on i)") from None
    if abs(value) > 2**31:
        raise ConfigError(f"{where}: index {text!r} in input_slice is {value}, out of range")
    return value


def parse_slice(text: str, where: str, variables: dict[str, int] | None = None) -> Any:
    """Parses '[a, b:c, ...]' into an index usable as x[index]."""
    variables = variables or {}
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")) or len(s) < 3:
        raise ConfigError(f"{where}: input_slice must look like '[0]' or '[:, 0:8]', got {text!r}")
    parts = [p.strip() for p in s[1:-1].split(",")]
    index: list[Any] = []
    for part in parts:
        if part == "...":
            index.append(Ellipsis)
        elif part == "None":
            index.append(None)
        elif ":" in part:
            pieces = part.split(":")
            if len(pieces) > 3:
                raise ConfigError(f"{where}: bad slice {part!r} in input_slice {text!r}")
            index.append(slice(*[_bound(p, variables, where) for p in pieces]))
        else:
            index.append(_bound(part, variables, where))
    return index[0] if len(index) == 1 else tuple(index)


def apply_slice(value: Any, index: Any) -> Any:
    """x[index] for tensors; lists/tuples take a single int or slice."""
    if isinstance(value, (list, tuple)):
        if isinstance(index, tuple):
            head, rest = index[0], index[1:]
            picked = value[head]
            return picked[rest if len(rest) > 1 else rest[0]] if rest else picked
        return value[index]
    return value[index]
