"""Activation names from configs (EasyRec spells them 'relu' or 'tf.nn.relu'); never eval'ed."""

from __future__ import annotations

from collections.abc import Callable

import keras

from easyblocks.errors import ConfigError, suggest

_NONE = {"", "linear", "none", "None", "identity"}
_KNOWN = [
    "relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "sigmoid", "tanh", "softplus",
    "softsign", "leaky_relu", "hard_sigmoid", "mish", "exponential", "softmax", "linear",
]


def get_activation(name: str | None) -> Callable | None:
    """Returns the activation function for name, None for linear; ConfigError if unknown."""
    if name is None or name in _NONE:
        return None
    short = name
    for prefix in ("tf.nn.", "tf.keras.activations.", "keras.activations.", "tf."):
        if short.startswith(prefix):
            short = short[len(prefix):]
            break
    if short not in _KNOWN:
        raise ConfigError(f"unknown activation {name!r}{suggest(short, _KNOWN)}")
    return keras.activations.get(short)
