"""The model state: a config's model and preprocessor, and its checkpointed variables.

Evaluation, export and predict restore a checkpoint through this object alone, without
any optimizer (no Adam slots as large as every table); the Trainer adds the optimizers
to the same checkpoint layout.
"""

from __future__ import annotations

import json
import logging
import os
import re

import keras
import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

from easyblocks.config.specs import PipelineSpec
from easyblocks.errors import ConfigError, DataError
from easyblocks.features.embedding import table_shards
from easyblocks.models import checkpoints
from easyblocks.models.build import build_and_initialize
from easyblocks.models.model import CTRModel

LAYOUT_KEY = "layout/.ATTRIBUTES/VARIABLE_VALUE"
log = logging.getLogger("easyblocks")
# the best checkpoints by an evaluation metric (easyblocks.train.selection), apart from the
# rotating training checkpoints
BEST_DIR = "best"


class ModelVariables(tf.Module):
    """Every variable of a Keras 3 model, keyed by its stable name, for tf.train.Checkpoint.

    TensorFlow's checkpoint does not look inside the lists and dicts of layers that
    Keras 3 tracks (a block's sub-layers, the embedding tables), so the model itself
    would be saved only partly; the variables are listed here explicitly instead, under
    names derived from the config (`easyblocks.models.checkpoints.variable_keys`), so that
    a checkpoint loads into the same variables however the model was built, and a
    checkpoint of another config does not load at all.
    """

    def __init__(self, keyed: list[tuple[str, tf.Variable]]):
        super().__init__(name="model_variables")
        # a table sharded across parameter servers is saved through its ShardedVariable
        # (one full tensor, written in slices by the ps): the Keras variable around it
        # cannot be saved, and the file then restores into an unsharded table too
        self.by_name = {key: v.value if table_shards(v) is not None else v
                        for key, v in keyed}


def config_named_layers(model: CTRModel) -> set[int]:
    """Ids of the layers whose names come from the config (blocks, packages, towers) or
    from easyblocks itself: the stable names use them as they are."""
    named = [model.feature_groups, model.backbone, *model.towers]
    for _, dag in model.backbone.dags():
        named.append(dag)
        named.extend(layer for _, _, _, layer in dag.block_layers())
    return {id(layer) for layer in named}


def frozen_variables(model: CTRModel, spec: PipelineSpec,
                     keyed: list[tuple[str, object]] | None = None) -> list[tuple[str, object]]:
    """The trainable variables train_config.freeze_gradient freezes, as (stable name,
    variable): those whose stable name (their checkpoint key, e.g. "features/embedding_user",
    "backbone/dag/<block>/...", "tower_<name>/logits/kernel") a pattern finds with
    re.search, as EasyRec searches its variable names. A pattern that finds none is an
    error: EasyRec's TF1 variable names do not exist here."""
    patterns = spec.train.freeze_gradient
    if not patterns:
        return []
    if keyed is None:
        keyed = checkpoints.variable_keys(model, config_named_layers(model))
    trainable = [(k, v) for k, v in keyed if v.trainable]
    for p in patterns:
        if not any(re.search(p, k) for k, _ in trainable):
            examples = ", ".join(k for k, _ in trainable[:4])
            raise ConfigError(
                f"{spec.train.freeze_where}: train_config.freeze_gradient: {p!r} finds none of "
                f"the model's trainable variables, which are named by their checkpoint keys "
                f"(e.g. {examples}; EasyRec's TF1 names such as input_layer/.../"
                "embedding_weights do not exist here)")
    return [(k, v) for k, v in trainable if any(re.search(p, k) for p in patterns)]


class ModelState:
    """Builds a config's model (under the current distribution strategy's scope, if any)
    and restores its variables from checkpoints in model_dir."""

    def __init__(self, spec: PipelineSpec, model_dir: str | None = None):
        self.spec = spec
        self.model_dir = model_dir or spec.model_dir
        if not self.model_dir:
            raise ConfigError(f"{spec.path}: no model_dir (set it in the config or pass "
                              "--model_dir)")
        keras.utils.set_random_seed(spec.train.seed)
        self.model, self.preprocessor = build_and_initialize(spec)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.restored_from: str | None = None  # the checkpoint last restored
        self.keyed_variables = checkpoints.variable_keys(self.model,
                                                         config_named_layers(self.model))
        self.keys = {id(v): k for k, v in self.keyed_variables}
        self.variables = ModelVariables(self.keyed_variables)
        self.layout = checkpoints.model_layout(spec, self.keyed_variables)
        self.layout_text = json.dumps(self.layout, sort_keys=True)
        # a string: never on an accelerator; and a plain variable of this process, also
        # under a distribution strategy's scope (whose creator would mirror it: the initial
        # value broadcast of MultiWorkerMirroredStrategy cannot carry a string)
        with tf.device("CPU:0"):
            self.layout_variable = resource_variable_ops.ResourceVariable(
                self.layout_text, dtype=tf.string, trainable=False, name="layout")

    def key_of(self, variable) -> str:
        """The stable name of one of the model's variables."""
        return self.keys[id(variable)]

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """A checkpoint of the model's variables, its layout and the step, plus `extra`
        objects (the Trainer's optimizers)."""
        return tf.train.Checkpoint(model=self.variables, layout=self.layout_variable,
                                   step=self.step, **extra)

    def latest_checkpoint(self) -> str | None:
        found = checkpoints.checkpoints_on_disk(self.model_dir)
        return tf.train.latest_checkpoint(self.model_dir) or (found[-1][1] if found else None)

    @property
    def restored(self) -> str | None:
        """The checkpoint last restored (None if none)."""
        return self.restored_from

    def best_checkpoint(self) -> str | None:
        """The best checkpoint training kept by its evaluation metric (None if none)."""
        return tf.train.latest_checkpoint(os.path.join(self.model_dir, BEST_DIR))

    def find_checkpoint(self, which: str | None = None) -> str | None:
        """"latest", "best", a checkpoint path, or None: the best checkpoint when the
        config keeps one (export_config exporter_type "best" or early stopping) and training
        wrote it, else the latest. Returns the path, or None for the newest readable one in
        model_dir."""
        if which == "latest":
            return None
        if which == "best":
            path = self.best_checkpoint()
            if path is None:
                raise ConfigError(f"no best checkpoint in {os.path.join(self.model_dir, BEST_DIR)}"
                                  ": training keeps one with export_config { exporter_type: "
                                  '"best" } or early stopping')
            return path
        if which:
            return which
        if self.spec.train.selection is not None:
            path = self.best_checkpoint()
            if path is not None:
                log.info("using the best checkpoint by %s: %s (--checkpoint latest for the "
                         "latest)", self.spec.train.selection.metric, path)
                return path
            log.info("no best checkpoint in %s yet: using the latest", self.model_dir)
        return None

    def restore(self, checkpoint: str | None = None, required: bool = False) -> str | None:
        """Restores the model's variables and step from a checkpoint (see find_checkpoint:
        "latest", "best", a path, or by default the best one the config keeps, else the
        newest readable one in model_dir); optimizer state in it is left alone. Returns its
        path (None if none)."""
        return self.restore_into(self.checkpoint(), self.find_checkpoint(checkpoint), required,
                                 partial=True)

    def restore_into(self, ckpt: tf.train.Checkpoint, checkpoint: str | None, required: bool,
                     partial: bool) -> str | None:
        """Restores `ckpt` (this state's checkpoint, with or without optimizers) from the
        given checkpoint or the newest readable one; see `restore_checkpoint`."""

        def restore(path: str) -> None:
            restore_checkpoint(ckpt, path, partial, self.layout)
            self.layout_variable.assign(self.layout_text)
            self.restored_from = path

        if checkpoint:
            if not tf.io.gfile.exists(checkpoint + ".index"):
                raise DataError(f"--checkpoint {checkpoint}: no such checkpoint (expected "
                                f"{checkpoint}.index)")
            try:
                restore(checkpoint)
            except ConfigError:
                raise
            except tf.errors.OpError as e:
                raise DataError(f"cannot read checkpoint {checkpoint}: {e.message}") from e
            return checkpoint
        path = checkpoints.restore_newest_readable(self.model_dir, restore)
        if path is None and required:
            raise ConfigError(f"no checkpoint in {self.model_dir}: train first")
        return path


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str, partial: bool,
                       layout: dict | None = None) -> None:
    """Restores `path` into `checkpoint`. With `layout`, the checkpoint's stored layout must
    equal it (ConfigError naming the first difference); every object of `checkpoint` must be
    in the file (ConfigError otherwise). partial: the file may hold more (e.g. optimizer
    slots)."""
    if layout is not None:
        reader = tf.train.load_checkpoint(path)
        saved = reader.get_tensor(LAYOUT_KEY).decode() \
            if LAYOUT_KEY in reader.get_variable_to_shape_map() else None
        checkpoints.check_layout(path, saved, layout)
    status = checkpoint.restore(path)
    if partial:
        status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ConfigError(f"checkpoint {path} does not fit this config (was it written with "
                          f"another optimizer?): {str(e).splitlines()[0]}") from None
