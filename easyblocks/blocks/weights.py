"""Which weights the model-level `l2_regularization` applies to.

A block declares them with a method `l2_weights(self) -> list` (e.g. STAR: its
shared kernels W, not the domain kernels W_p that start at ones and multiply W).
A layer without that method contributes its own weights named "kernel" (Dense,
EinsumDense, convolutions, ...) and, recursively, those of its sub-layers.
Embedding tables are never included (`embedding_regularization` is their term).
"""

from __future__ import annotations

import keras


def l2_weights(layer: keras.layers.Layer) -> list:
    """The weights of `layer` (and its sub-layers) that l2_regularization applies to."""
    declared = getattr(layer, "l2_weights", None)
    if callable(declared):
        return list(declared())
    out = [w for w in layer._trainable_variables if w.name == "kernel"]
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        out.extend(l2_weights(sub))
    return out
