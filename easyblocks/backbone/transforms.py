"""Interprets the expressions checked by `easyblocks.config.expressions`.

A `lambda`, `input_fn` or `extra_input_fn` expression becomes a Python function
that walks the expression's syntax tree, with each allowed name bound to its
TensorFlow function. Nothing is eval'ed.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from easyblocks.config.expressions import ALLOWED_NAMES, dotted_name, fail, parse_expression

FUNCTIONS: dict[str, Any] = {
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
assert set(FUNCTIONS) == set(ALLOWED_NAMES), "expressions.ALLOWED_NAMES and FUNCTIONS differ"

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


class _Interpreter:
    def __init__(self, where: str, source: str):
        self.where = where
        self.source = source
        self.callables = [f for f in FUNCTIONS.values() if callable(f)]

    def evaluate(self, node: ast.AST, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in env else FUNCTIONS[node.id]
        if isinstance(node, ast.Attribute):
            return FUNCTIONS[dotted_name(node)]
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.evaluate(e, env) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Subscript):
            return self.evaluate(node.value, env)[self.evaluate(node.slice, env)]
        if isinstance(node, ast.Slice):
            return slice(*[None if p is None else self.evaluate(p, env)
                           for p in (node.lower, node.upper, node.step)])
        if isinstance(node, ast.BinOp):
            left, right = self.evaluate(node.left, env), self.evaluate(node.right, env)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return -self.evaluate(node.operand, env)
        if isinstance(node, ast.Call):
            func = self.evaluate(node.func, env)
            if not any(func is f for f in self.callables):
                raise fail(self.where, self.source, "this call")
            args = [self.evaluate(a, env) for a in node.args]
            kwargs = {k.arg: self.evaluate(k.value, env) for k in node.keywords}
            return func(*args, **kwargs)
        raise fail(self.where, self.source, type(node).__name__)


def compile_expression(source: str, where: str) -> Callable[[Any], Any]:
    """Turns 'lambda x: <expr>' into a function, without eval; ConfigError if not allowed."""
    fn = parse_expression(source, where)
    arg = fn.args.args[0].arg
    interp = _Interpreter(where, source)
    return lambda x: interp.evaluate(fn.body, {arg: x})
