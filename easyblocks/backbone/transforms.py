"""`lambda`, `input_fn` and `extra_input_fn` expressions, evaluated safely.

EasyRec eval'ed these strings. Here an expression such as
`lambda x: tf.concat(x, axis=-1)` or `lambda x: x[0]` is parsed with `ast` and
walked by a small interpreter that allows only: the lambda's own argument,
numbers/strings/None, lists and tuples, indexing and slicing, + - * / and unary
minus, keyword arguments, and calls to an allow-list of TensorFlow functions.
Anything else (attribute access on other objects, imports, dunder names,
comprehensions, other calls) is a ConfigError.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from easyblocks.errors import ConfigError, suggest

ALLOWED_FUNCTIONS: dict[str, Callable] = {
    "tf.concat": tf.concat,
    "tf.stack": tf.stack,
    "tf.unstack": tf.unstack,
    "tf.split": tf.split,
    "tf.add_n": tf.add_n,
    "tf.expand_dims": tf.expand_dims,
    "tf.squeeze": tf.squeeze,
    "tf.reshape": tf.reshape,
    "tf.transpose": tf.transpose,
    "tf.stop_gradient": tf.stop_gradient,
    "tf.identity": tf.identity,
    "tf.reduce_sum": tf.reduce_sum,
    "tf.reduce_mean": tf.reduce_mean,
    "tf.reduce_max": tf.reduce_max,
    "tf.reduce_min": tf.reduce_min,
    "tf.multiply": tf.multiply,
    "tf.add": tf.add,
    "tf.subtract": tf.subtract,
    "tf.square": tf.square,
    "tf.sqrt": tf.sqrt,
    "tf.abs": tf.abs,
    "tf.cast": tf.cast,
    "tf.float32": tf.float32,
    "tf.int32": tf.int32,
    "tf.int64": tf.int64,
    "tf.gather": tf.gather,
    "tf.nn.l2_normalize": tf.nn.l2_normalize,
    "tf.nn.relu": tf.nn.relu,
    "tf.nn.sigmoid": tf.nn.sigmoid,
    "tf.sigmoid": tf.sigmoid,
    "tf.nn.softmax": tf.nn.softmax,
    "tf.nn.tanh": tf.nn.tanh,
    "tf.tanh": tf.tanh,
    "tf.math.log1p": tf.math.log1p,
    "tf.math.l2_normalize": tf.math.l2_normalize,
    "len": len,
}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Interpreter:
    def __init__(self, arg: str, where: str, source: str):
        self.arg = arg
        self.where = where
        self.source = source

    def fail(self, what: str) -> ConfigError:
        return ConfigError(f"{self.where}: {what} is not allowed in expression {self.source!r}")

    def evaluate(self, node: ast.AST, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, type(None),
                                                                        bool)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            if node.id in ALLOWED_FUNCTIONS:
                return ALLOWED_FUNCTIONS[node.id]
            raise self.fail(f"name {node.id!r}")
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted in ALLOWED_FUNCTIONS:
                return ALLOWED_FUNCTIONS[dotted]
            raise self.fail(f"{dotted or 'attribute access'!r}" +
                            suggest(dotted or "", ALLOWED_FUNCTIONS))
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.evaluate(e, env) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Subscript):
            return self.evaluate(node.value, env)[self.evaluate(node.slice, env)]
        if isinstance(node, ast.Slice):
            return slice(*[None if p is None else self.evaluate(p, env)
                           for p in (node.lower, node.upper, node.step)])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.evaluate(node.left, env), self.evaluate(node.right, env)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.evaluate(node.operand, env)
        if isinstance(node, ast.Call):
            func = self.evaluate(node.func, env)
            if func not in ALLOWED_FUNCTIONS.values():
                raise self.fail("this call")
            args = [self.evaluate(a, env) for a in node.args]
            kwargs = {k.arg: self.evaluate(k.value, env) for k in node.keywords if k.arg}
            if len(kwargs) != len(node.keywords):
                raise self.fail("**kwargs")
            return func(*args, **kwargs)
        raise self.fail(type(node).__name__)


def compile_expression(source: str, where: str) -> Callable[[Any], Any]:
    """Turns 'lambda x: <expr>' into a function, without eval; ConfigError if not allowed."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ConfigError(f"{where}: cannot parse expression {source!r}: {e.msg}") from None
    fn = tree.body
    if not isinstance(fn, ast.Lambda) or len(fn.args.args) != 1 or fn.args.vararg \
            or fn.args.kwarg or fn.args.kwonlyargs:
        raise ConfigError(f"{where}: expected 'lambda x: <expression>', got {source!r}")
    arg = fn.args.args[0].arg
    interp = _Interpreter(arg, where, source)
    # check the names now so that a bad expression fails when the model is built
    bases = set()
    for node in ast.walk(fn.body):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is None or not any(f == dotted or f.startswith(dotted + ".")
                                         for f in ALLOWED_FUNCTIONS):
                raise interp.fail(repr(dotted or "attribute access"))
            inner = node.value
            while isinstance(inner, ast.Attribute):
                inner = inner.value
            bases.add(id(inner))
    for node in ast.walk(fn.body):
        if isinstance(node, ast.Name) and id(node) not in bases and node.id != arg \
                and node.id not in ALLOWED_FUNCTIONS:
            raise interp.fail(f"name {node.id!r}")
    return lambda x: interp.evaluate(fn.body, {arg: x})
