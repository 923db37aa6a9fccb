"""Export: a SavedModel whose serving signature takes the raw input columns.

The signature takes one tensor per input field (the strings and numbers of the
CSV, labels not required), runs the same `Preprocessor` as training, and returns
`probs_<tower>` (`y_<tower>` for a regression tower; both for a ZILN tower) and
`logits_<tower>` for every tower. Over-parameterised blocks (APG's U = U_l U_r,
V = V_l V_r) are replaced by their merged form first, so serving costs the same as an APG
without over-parameterisation.

An export never deletes what easyblocks did not write: it goes into a new or empty folder,
or replaces an earlier easyblocks export (recognised by its marker file and contents) only
when asked to (`overwrite`); never the model_dir or a folder of the input data.
"""

from __future__ import annotations

import json
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


# what a SavedModel folder written by `_save` holds: anything else in a folder means it is
# not (only) an easyblocks export, and it is never replaced
MARKER = "easyblocks_export.json"
_EXPORT_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", MARKER}


def is_easyblocks_export(path: str) -> bool:
    """Whether `path` is a folder written by easyblocks export, with nothing added to it."""
    if not os.path.isdir(path):
        return False
    entries = set(os.listdir(path))
    return MARKER in entries and "saved_model.pb" in entries and entries <= _EXPORT_ENTRIES


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_export_dir(export_dir: str, overwrite: bool, protected: dict[str, str]) -> None:
    """Refuses an export_dir whose replacement would lose anything easyblocks did not write:
    the model_dir or a data folder (`protected`: path -> what it is) or a folder holding
    them, a file, or a non-empty folder that is not an easyblocks export. An existing
    easyblocks export is replaced only with `overwrite`."""
    target = os.path.realpath(export_dir)
    for path, what in protected.items():
        if path and _inside(os.path.realpath(path), target):
            relation = "is" if os.path.realpath(path) == target else "holds"
            raise ConfigError(f"export_dir {export_dir} {relation} {what} {path}, which an "
                              "export never replaces; export into a new folder (default: "
                              "model_dir/export)")
    if not os.path.lexists(export_dir):
        return
    if not os.path.isdir(export_dir) or os.path.islink(export_dir):
        raise ConfigError(f"export_dir {export_dir} exists and is not a folder; export into a "
                          "new folder")
    entries = sorted(os.listdir(export_dir))
    if not entries:
        return
    if not is_easyblocks_export(export_dir):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ConfigError(f"export_dir {export_dir} is not empty ({shown}) and is not an "
                          "easyblocks export; it is never replaced: export into a new or "
                          "empty folder")
    if not overwrite:
        raise ConfigError(f"export_dir {export_dir} already holds an easyblocks export; pass "
                          "--overwrite to replace it, or export into a new folder")


def _save(module: tf.Module, export_dir: str, about: dict) -> None:
    """tf.saved_model.save into a temp dir next to export_dir, then renamed into place; an
    existing export (checked by `check_export_dir`) is moved aside and deleted only once
    the new one is in place."""
    parent = os.path.dirname(os.path.abspath(export_dir)) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".export_", dir=parent)
    except OSError as e:
        raise ConfigError(f"export_dir {export_dir}: cannot write into {parent}: "
                          f"{e.strerror}") from None
    old = None
    try:
        tf.saved_model.save(module, tmp, signatures={
            "serving_default": module.serve.get_concrete_function()})
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump({"written_by": "easyblocks export", **about}, f, indent=2)
        if os.path.isdir(export_dir) and os.listdir(export_dir):
            old = tempfile.mkdtemp(prefix=".export_old_", dir=parent)
            os.rmdir(old)
            os.replace(export_dir, old)
        try:
            os.replace(tmp, export_dir)
        except OSError:
            if old is not None:
                os.replace(old, export_dir)
                old = None
            raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        if old is not None:
            if is_easyblocks_export(old):  # only what an earlier export wrote is deleted
                shutil.rmtree(old)
            else:  # export_dir changed after it was checked: keep what it held
                log.warning("export_dir %s held more than an easyblocks export when it was "
                            "replaced; what it held is kept in %s", export_dir, old)


def export_blocks(state: ModelState, blocks: list[str], export_dir: str,
                  about: dict | None = None) -> str:
    """Writes a SavedModel that returns the named blocks' outputs from their inputs alone."""
    merge_for_serving(state.model)
    module = BlockServingModule(state.model, state.spec, blocks)
    _save(module, export_dir, {**(about or {}), "blocks": list(blocks)})
    log.info("exported blocks %s to %s (serving_default: %s)", ", ".join(blocks), export_dir,
             ", ".join(f.name for f in module.fields))
    return export_dir


def export_saved_model(state: ModelState, export_dir: str, about: dict | None = None) -> str:
    """Writes the SavedModel to export_dir (atomically: a temp dir, then renamed)."""
    merged = merge_for_serving(state.model)
    if merged:
        log.info("export: merged %d over-parameterised block(s) for serving", merged)
    fields = state.spec.serving_fields()
    module = ServingModule(state.model, state.preprocessor, fields)
    outputs = [k for t in state.spec.towers
               for k in ([f"probs_{t.name}"] if t.ziln else []) + [t.prediction_key,
                                                                  f"logits_{t.name}"]]
    _save(module, export_dir, {**(about or {}), "outputs": outputs})
    log.info("exported SavedModel to %s (serving_default: %s -> %s)", export_dir,
             ", ".join(f.name for f in fields), ", ".join(outputs))
    return export_dir
