"""`lambda`, `input_fn` and `extra_input_fn` expressions: the allowed grammar and names.

EasyRec eval'ed these strings. Here an expression such as
`lambda x: tf.concat(x, axis=-1)` or `lambda x: x[0]` is parsed with `ast` and
checked when the config is resolved: only the lambda's own argument,
numbers/strings/None, lists and tuples, indexing and slicing, + - * / and unary
minus, keyword arguments, and calls to the allow-listed functions below are
accepted. `easyblocks.backbone.transforms` then interprets the checked tree with
the TensorFlow function behind each allowed name; nothing is ever eval'ed.
"""

from __future__ import annotations

import ast

from easyblocks.errors import ConfigError, suggest

# The names an expression may use (backbone/transforms.py maps each to its function).
ALLOWED_NAMES: tuple[str, ...] = (
    "tf.concat", "tf.stack", "tf.unstack", "tf.split", "tf.add_n", "tf.expand_dims",
    "tf.squeeze", "tf.reshape", "tf.transpose", "tf.stop_gradient", "tf.identity",
    "tf.reduce_sum", "tf.reduce_mean", "tf.reduce_max", "tf.reduce_min", "tf.multiply",
    "tf.add", "tf.subtract", "tf.square", "tf.sqrt", "tf.abs", "tf.cast", "tf.float32",
    "tf.int32", "tf.int64", "tf.gather", "tf.nn.l2_normalize", "tf.nn.relu", "tf.nn.sigmoid",
    "tf.sigmoid", "tf.nn.softmax", "tf.nn.tanh", "tf.tanh", "tf.math.log1p",
    "tf.math.l2_normalize", "len",
)
# an expression longer than this is refused before it is parsed (a config is data)
MAX_EXPRESSION_LENGTH = 10_000

# deeper expressions are refused (the interpreter in backbone/transforms.py recurses)
MAX_EXPRESSION_DEPTH = 100


def _depth(tree: ast.AST) -> int:
    """The nesting depth of an expression tree (iteratively: no recursion limit)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


_NODES = (ast.Expression, ast.Lambda, ast.arguments, ast.arg, ast.Constant, ast.Name,
          ast.Attribute, ast.List, ast.Tuple, ast.Subscript, ast.Slice, ast.BinOp, ast.UnaryOp,
          ast.Call, ast.keyword, ast.Load, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub)


def dotted_name(node: ast.AST) -> str | None:
    """'tf.nn.relu' for the attribute chain tf.nn.relu; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def fail(where: str, source: str, what: str) -> ConfigError:
    return ConfigError(f"{where}: {what} is not allowed in expression {source!r}")


def parse_expression(source: str, where: str) -> ast.Lambda:
    """Parses and checks 'lambda x: <expression>'; ConfigError naming what is not allowed."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ConfigError(f"{where}: expression of {len(source)} characters; at most "
                          f"{MAX_EXPRESSION_LENGTH} are accepted")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as e:
        why = e.msg if isinstance(e, SyntaxError) else "too deeply nested"
        raise ConfigError(f"{where}: cannot parse expression {source!r}: {why}") from None
    fn = tree.body
    if not isinstance(fn, ast.Lambda) or len(fn.args.args) != 1 or fn.args.vararg \
            or fn.args.kwarg or fn.args.kwonlyargs or fn.args.defaults:
        raise ConfigError(f"{where}: expected 'lambda x: <expression>', got {source!r}")
    arg = fn.args.args[0].arg
    depth = _depth(fn.body)
    if depth > MAX_EXPRESSION_DEPTH:
        raise ConfigError(f"{where}: expression nested {depth} levels deep; at most "
                          f"{MAX_EXPRESSION_DEPTH} are accepted")
    bases = set()
    for node in ast.walk(fn.body):
        if not isinstance(node, _NODES) or isinstance(node, ast.Lambda):
            raise fail(where, source, type(node).__name__)
        if isinstance(node, ast.Constant) and not isinstance(
                node.value, (int, float, str, type(None), bool)):
            raise fail(where, source, f"constant {node.value!r}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and len(node.value) > 100:
            raise fail(where, source, "a string longer than 100 characters")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise fail(where, source, "**kwargs")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and any(
                isinstance(s, ast.Constant) and isinstance(s.value, str)
                for s in (node.left, node.right)):
            raise fail(where, source, "repeating a string")
        if isinstance(node, ast.Attribute):
            dotted = dotted_name(node)
            if dotted is None or not any(f == dotted or f.startswith(dotted + ".")
                                         for f in ALLOWED_NAMES):
                raise fail(where, source, repr(dotted or "attribute access")
                           + suggest(dotted or "", ALLOWED_NAMES))
            inner = node.value
            while isinstance(inner, ast.Attribute):
                inner = inner.value
            bases.add(id(inner))
    for node in ast.walk(fn.body):
        if isinstance(node, ast.Name) and id(node) not in bases and node.id != arg \
                and node.id not in ALLOWED_NAMES:
            raise fail(where, source, f"name {node.id!r}")
    return fn


# ---- ExprFeature ---------------------------------------------------------------------------
# EasyRec's ExprFeature computes one number per row from its input columns, e.g.
# `(age_level>=item_age_level) & (age_level<=(item_age_level+5))`; EasyRec rewrote the text
# into Python and eval'ed it. Here it is parsed by the small grammar below (conventional
# precedence: * / over + - over comparisons over & over |; parentheses group) into a tree
# that features/preprocess.py interprets with TensorFlow ops. Comparisons give booleans,
# `&` and `|` combine booleans, the result is a number (true: 1.0).

_EXPR_TOKEN_RE = r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_]\w*)|(>=|<=|==|[-+*/()<>&|]))"
_COMPARISONS = (">=", "<=", "==", ">", "<")


class FeatureExpression:
    """A checked ExprFeature expression.

    Attributes:
      source: the text.
      tree: nested tuples: ("num", float), ("col", name), ("neg", t), (op, left, right)
        with op one of + - * / >= <= == > < & |.
      names: the input columns it reads, in order of first use.
    """

    def __init__(self, source: str, tree: tuple, names: list[str]):
        self.source = source
        self.tree = tree
        self.names = names

    def __repr__(self) -> str:
        return f"FeatureExpression({self.source!r})"


def parse_feature_expression(source: str, input_names, where: str) -> FeatureExpression:
    """Parses an ExprFeature expression over `input_names`; ConfigError on anything else."""
    import re

    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ConfigError(f"{where}: expression of {len(source)} characters; at most "
                          f"{MAX_EXPRESSION_LENGTH} are accepted")
    tokens, pos = [], 0
    pattern = re.compile(_EXPR_TOKEN_RE)
    text = source.rstrip()
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"{where}: cannot parse expression {source!r} at "
                              f"{text[pos:].strip()[:10]!r}")
        number, name, op = m.groups()
        tokens.append(("num", float(number)) if number else ("name", name) if name
                      else ("op", op))
        pos = m.end()
    names: list[str] = []
    state = {"i": 0}

    def peek():
        return tokens[state["i"]] if state["i"] < len(tokens) else ("end", "")

    def take():
        tok = peek()
        state["i"] += 1
        return tok

    def expect_type(node, boolean: bool, what: str):
        if _is_bool(node) != boolean:
            kind = "a comparison" if boolean else "a number"
            raise ConfigError(f"{where}: expression {source!r}: {what} needs {kind} on each "
                              "side (use parentheses)")

    def binary(sub, ops, boolean_operands):
        left = sub()
        while peek()[0] == "op" and peek()[1] in ops:
            op = take()[1]
            right = sub()
            expect_type(left, boolean_operands, repr(op))
            expect_type(right, boolean_operands, repr(op))
            left = (op, left, right)
        return left

    def factor():
        kind, value = take()
        if kind == "num":
            return ("num", value)
        if kind == "name":
            if value not in input_names:
                raise ConfigError(f"{where}: expression {source!r} names {value!r}, which is "
                                  f"not one of the feature's input_names"
                                  f"{suggest(value, input_names)}")
            if value not in names:
                names.append(value)
            return ("col", value)
        if (kind, value) == ("op", "-"):
            node = factor()
            expect_type(node, False, "'-'")
            return ("neg", node)
        if (kind, value) == ("op", "("):
            node = disjunction()
            if take() != ("op", ")"):
                raise ConfigError(f"{where}: expression {source!r}: missing ')'")
            return node
        raise ConfigError(f"{where}: expression {source!r}: unexpected "
                          f"{value or 'end of expression'!r}")

    def term():
        return binary(factor, ("*", "/"), False)

    def arith():
        return binary(term, ("+", "-"), False)

    def comparison():
        left = arith()
        if peek()[0] == "op" and peek()[1] in _COMPARISONS:
            op = take()[1]
            right = arith()
            expect_type(left, False, repr(op))
            expect_type(right, False, repr(op))
            left = (op, left, right)
            if peek()[0] == "op" and peek()[1] in _COMPARISONS:
                raise ConfigError(f"{where}: expression {source!r}: chained comparison; use "
                                  "parentheses and &")
        return left

    def conjunction():
        return binary(comparison, ("&",), True)

    def disjunction():
        return binary(conjunction, ("|",), True)

    if not tokens:
        raise ConfigError(f"{where}: empty expression")
    tree = disjunction()
    if peek()[0] != "end":
        raise ConfigError(f"{where}: expression {source!r}: unexpected {peek()[1]!r}")
    return FeatureExpression(source, tree, names)


def _is_bool(node: tuple) -> bool:
    return node[0] in _COMPARISONS or node[0] in ("&", "|")
