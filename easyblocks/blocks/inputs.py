"""Checks shared by blocks that take a list of inputs (`merge_inputs_into_list: true`)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from easyblocks.errors import ConfigError


def expect_list(inputs: Any, n: int, what: str, expected: str) -> list:
    """Returns inputs as a list of n items; ConfigError naming what was expected and received."""
    if isinstance(inputs, (list, tuple)) and len(inputs) == n:
        return list(inputs)
    if isinstance(inputs, (list, tuple)):
        got = f"a list of {len(inputs)} inputs"
    else:
        got = f"one tensor of shape {tuple(tf.convert_to_tensor(inputs).shape)}"
    raise ConfigError(f"{what}: expected {expected} (set `merge_inputs_into_list: true`), "
                      f"received: {got}")
