"""Builds a CTRModel from a PipelineSpec and creates its weights."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from easyblocks.config.specs import PipelineSpec
from easyblocks.features.preprocess import Preprocessor
from easyblocks.models.model import CTRModel


def build_model(spec: PipelineSpec) -> CTRModel:
    """The model (not yet called); every layer is created here."""
    return CTRModel(spec.features, spec.model, name="model")


def dummy_columns(spec: PipelineSpec, batch: int = 4) -> dict[str, tf.Tensor]:
    """A small synthetic batch of raw columns (for creating weights and `validate`)."""
    cols = {}
    raw_dims = {s.column: s.raw_dim for s in spec.features.values() if s.kind == "raw"}
    # string columns holding numbers: numeric sequences, integer tags, expression inputs
    number_lists = {s.column: s.separator for s in spec.features.values()
                    if s.kind == "seq_raw" or s.boundaries and s.kind == "seq"
                    or s.kind in ("tag", "seq") and s.num_buckets and not s.combo_columns}
    numbers = {c for s in spec.features.values() if s.expression is not None
               for c in s.input_columns}
    # weighted tags: "id<kv_separator>weight" joined by the separator
    weighted = {s.column: (s.separator, s.kv_separator, bool(s.num_buckets))
                for s in spec.features.values() if s.kv_separator}
    for f in spec.data.fields:
        if f.is_string and f.name in weighted:
            sep, kv, numeric = weighted[f.name]
            ids = [(str(i), str(i + 1)) if numeric else (f"v{i}", f"w{i}") for i in range(batch)]
            cols[f.name] = tf.constant([f"{a}{kv}1.0{sep}{b}{kv}0.5" for a, b in ids])
        elif f.is_string and f.name in raw_dims:
            value = "|".join(["0.5"] * raw_dims[f.name])
            cols[f.name] = tf.constant([value] * batch)
        elif f.is_string and f.name in number_lists:
            sep = number_lists[f.name]
            cols[f.name] = tf.constant([f"{i}{sep}{i + 1}" for i in range(batch)])
        elif f.is_string and f.name in numbers:
            cols[f.name] = tf.constant([str(i) for i in range(batch)])
        elif f.is_string:
            cols[f.name] = tf.constant([f"v{i}|w{i}" for i in range(batch)])
        elif f.is_float:
            cols[f.name] = tf.constant(np.linspace(0, 1, batch), tf.float32)
        else:
            cols[f.name] = tf.constant(np.arange(batch), tf.int64)
    return cols


def build_and_initialize(spec: PipelineSpec) -> tuple[CTRModel, Preprocessor]:
    """Builds the model and calls it once on a synthetic batch so all weights exist."""
    model = build_model(spec)
    pre = Preprocessor(spec.features)
    model(pre(dummy_columns(spec)), training=False)
    return model, pre
