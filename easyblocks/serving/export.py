"""Export: a SavedModel whose serving signature takes the raw input columns.

The signature takes one tensor per input field (the strings and numbers of the
CSV, labels not required), runs the same `Preprocessor` as training, and returns
`probs_<tower>` and `logits_<tower>` for every tower. Over-parameterised blocks
(APG's U = U_l U_r, V = V_l V_r) are replaced by their merged form first, so
serving costs the same as an APG without over-parameterisation.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import tensorflow as tf

from easyblocks.config.specs import PipelineSpec
from easyblocks.data.csv_input import TF_TYPES
from easyblocks.errors import ConfigError
from easyblocks.features.preprocess import Preprocessor
from easyblocks.models.model import CTRModel
from easyblocks.models.state import ModelState

log = logging.getLogger("easyblocks")


def merge_for_serving(model: CTRModel) -> int:
    """Replaces blocks that have a cheaper equivalent for serving (APG with P > K) in place;
    returns how many were replaced."""
    replaced = 0
    for _, dag in model.backbone.dags():
        for _, step, i, layer in list(dag.block_layers()):
            if getattr(layer, "overparam_p", 0) and hasattr(layer, "merged_layer"):
                dag.replace_layer(step, i, layer.merged_layer())
                replaced += 1
    return replaced


class ServingModule(tf.Module):
    """What is saved: the preprocessing tables, the variables and the serving function."""

    def __init__(self, model: CTRModel, preprocessor, fields: list):
        super().__init__(name="easyblocks_serving")
        self.preprocessor = preprocessor
        specs = {f.name: tf.TensorSpec([None], TF_TYPES[f.type], f.name) for f in fields}
        keras_model = model  # not an attribute: only its variables are saved

        def serve(columns):
            outputs = keras_model(self.preprocessor(columns), training=False)
            return dict(outputs)

        self.serve = tf.function(serve, input_signature=[specs])
        concrete = self.serve.get_concrete_function()
        # every variable the function reads, tracked so that SavedModel stores it
        self.model_variables = list(concrete.variables)


class BlockServingModule(tf.Module):
    """Serves the outputs of chosen backbone blocks from only the columns they need:
    e.g. DSSM's user tower and item tower exported separately for retrieval."""

    def __init__(self, model: CTRModel, spec: PipelineSpec, blocks: list[str]):
        super().__init__(name="easyblocks_block_serving")
        dag = model.backbone.dag
        unknown = [b for b in blocks if b not in dag.blocks]
        if unknown:
            raise ConfigError(f"--block: {', '.join(unknown)} is not a backbone block; blocks: "
                              f"{', '.join(dag.order)}")
        order, groups = dag.upstream(blocks)
        features = {f for g in groups for f in spec.groups[g].all_features}
        specs = {k: v for k, v in spec.features.items() if k in features}
        self.preprocessor = Preprocessor(specs)
        columns = {c for s in specs.values() for c in s.input_columns}
        self.fields = [f for f in spec.data.fields if f.name in columns]
        tensor_specs = {f.name: tf.TensorSpec([None], TF_TYPES[f.type], f.name)
                        for f in self.fields}
        feature_groups = model.feature_groups

        def serve(cols):
            fg = feature_groups(self.preprocessor(cols), groups=groups)
            values = dag.block_values(fg, training=False, only=order)
            return {b: values[b] for b in blocks}

        self.serve = tf.function(serve, input_signature=[tensor_specs])
        self.model_variables = list(self.serve.get_concrete_function().variables)


def _save(module: tf.Module, export_dir: str) -> None:
    """tf.saved_model.save into a temp dir next to export_dir, then renamed into place."""
    parent = os.path.dirname(os.path.abspath(export_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export_", dir=parent)
    try:
        tf.saved_model.save(module, tmp, signatures={
            "serving_default": module.serve.get_concrete_function()})
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        os.replace(tmp, export_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def export_blocks(state: ModelState, blocks: list[str], export_dir: str) -> str:
    """Writes a SavedModel that returns the named blocks' outputs from their inputs alone."""
    merge_for_serving(state.model)
    module = BlockServingModule(state.model, state.spec, blocks)
    _save(module, export_dir)
    log.info("exported blocks %s to %s (serving_default: %s)", ", ".join(blocks), export_dir,
             ", ".join(f.name for f in module.fields))
    return export_dir


def export_saved_model(state: ModelState, export_dir: str) -> str:
    """Writes the SavedModel to export_dir (atomically: a temp dir, then renamed)."""
    merged = merge_for_serving(state.model)
    if merged:
        log.info("export: merged %d over-parameterised block(s) for serving", merged)
    fields = state.spec.serving_fields()
    module = ServingModule(state.model, state.preprocessor, fields)
    _save(module, export_dir)
    log.info("exported SavedModel to %s (serving_default: %s -> %s)", export_dir,
             ", ".join(f.name for f in fields),
             ", ".join(f"probs_{t.name}, logits_{t.name}" for t in state.spec.towers))
    return export_dir



