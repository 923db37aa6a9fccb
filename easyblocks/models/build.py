"""Builds a CTRModel from a validated config and creates its weights."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from easyblocks.config.validate import ResolvedConfig
from easyblocks.features.preprocess import Preprocessor
from easyblocks.models.model import CTRModel
from easyblocks.protos import data_pb2

T = data_pb2.DatasetConfig.FieldType


def build_model(resolved: ResolvedConfig) -> CTRModel:
    """The model (not yet called); every layer and DAG check is done here."""
    model_config = resolved.proto.model_config
    return CTRModel(
        resolved.specs, resolved.groups, model_config.backbone, resolved.towers,
        l2_regularization=model_config.model_params.l2_regularization,
        embedding_regularization=model_config.embedding_regularization,
        locate=resolved.loaded.locate_name, wide_groups=resolved.wide_groups, name="model",
    )


def dummy_columns(resolved: ResolvedConfig, batch: int = 4) -> dict[str, tf.Tensor]:
    """A small synthetic batch of raw columns (for creating weights and `validate`)."""
    cols = {}
    raw_dims = {s.column: s.raw_dim for s in resolved.specs.values() if s.kind == "raw"}
    for f in resolved.proto.data_config.input_fields:
        if f.input_type == T.STRING and f.input_name in raw_dims:
            value = "|".join(["0.5"] * raw_dims[f.input_name])
            cols[f.input_name] = tf.constant([value] * batch)
        elif f.input_type == T.STRING:
            cols[f.input_name] = tf.constant([f"v{i}|w{i}" for i in range(batch)])
        elif f.input_type in (T.FLOAT, T.DOUBLE):
            cols[f.input_name] = tf.constant(np.linspace(0, 1, batch), tf.float32)
        else:
            cols[f.input_name] = tf.constant(np.arange(batch), tf.int64)
    return cols


def build_and_initialize(resolved: ResolvedConfig) -> tuple[CTRModel, Preprocessor]:
    """Builds the model and calls it once on a synthetic batch so all weights exist."""
    model = build_model(resolved)
    pre = Preprocessor(resolved.specs)
    model(pre(dummy_columns(resolved)), training=False)
    return model, pre
