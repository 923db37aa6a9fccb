"""train_config.jit_compile: the whole train step (forward, losses, gradients, optimizer
updates) compiled with XLA (`tf.function(jit_compile=True)`), in one process (NoStrategy).

XLA needs every shape-like argument known when it compiles; ops whose output size depends
on the data do not compile, e.g. the pooling of a multi-value (ragged) feature's embeddings
(`RaggedReduceSum` needs a `Range` of a data-dependent length). The step is compiled on its
first call, before any update is applied; a failure there becomes one ConfigError line that
names the block and the op (`refusal`). XLA compiles again for each new batch size (the
epoch's last, partial batch).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import tensorflow as tf

from easyblocks.errors import ConfigError

_NODE = re.compile(r"node `?([^\s`]+?)`?(?: with op (\w+))?[\s}:]")
_FRAME = re.compile(r'File "(?:[^"]*/)?(easyblocks/[^"]+)", line (\d+), in (\w+)')
_XLA_HINTS = ("XLA", "tf2xla", "compile-time constant", "_XlaMustCompile")


def _layer_path(node: str) -> list[str]:
    """'model_1/backbone_1/dag/top_mlp/...' -> ['model', 'backbone', 'dag', 'top_mlp', ...]."""
    return [re.sub(r"_\d+$", "", part) for part in node.split("/")]


def _where(node: str) -> str:
    parts = _layer_path(node)
    if parts and parts[0] == "model":
        parts = parts[1:]
    if not parts:
        return "the train step"
    if parts[0] == "features":
        return "block 'features' (the feature groups' embedding lookups and pooling)"
    if parts[0] == "backbone":
        names = [p for p in parts[1:] if p not in ("dag",)]
        return f"backbone block {names[0]!r}" if names else "the backbone"
    if parts[0].startswith("tower_"):
        return f"tower {parts[0][len('tower_'):]!r}"
    return f"{parts[0]!r}"


def is_xla_error(error: Exception) -> bool:
    text = str(error)
    return any(hint in text for hint in _XLA_HINTS)


def refusal(error: Exception) -> ConfigError:
    """One line out of XLA's compile error: the block, the op and where the code made it."""
    text = str(error)
    node = _NODE.search(text)
    op = node.group(2) if node and node.group(2) else None
    where = _where(node.group(1)) if node else "the train step"
    frames = _FRAME.findall(text)
    made = f", made at {frames[-1][0]}:{frames[-1][1]} ({frames[-1][2]})" if frames else ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    reason = re.sub(r"^Input \d+ to node `?[^\s`]+`? with op \w+ ", "", first)
    reason = re.sub(r"\s*\[Op:.*$", "", reason)
    return ConfigError(
        f"train_config.jit_compile: {where} cannot be compiled with XLA"
        f"{f' (op {op}{made})' if op else made}: {reason}; set jit_compile: false")


def compiled(step: Callable, **function_args) -> Callable:
    """`step` as a tf.function compiled with XLA; an XLA compile error (on the first call,
    or a new batch size's) is raised as `refusal`'s ConfigError."""
    function = tf.function(step, jit_compile=True, **function_args)

    def run(*args):
        try:
            return function(*args)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.InternalError) as e:
            if not is_xla_error(e):
                raise
            raise refusal(e) from None

    run.function = function  # the tf.function (for tests and tracing counts)
    return run
