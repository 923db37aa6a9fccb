"""The model state: a config's model and preprocessor, and its checkpointed variables.

Evaluation, export and predict restore a checkpoint through this object alone, without
any optimizer (no Adam slots as large as every table); the Trainer adds the optimizers
to the same checkpoint layout.
"""

from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

from easyblocks.config.specs import PipelineSpec
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize

log = logging.getLogger("easyblocks")
# the best checkpoints by an evaluation metric (easyblocks.train.selection), apart from the
# rotating training checkpoints
BEST_DIR = "best"


class ModelVariables(tf.Module):
    """Every variable of a Keras 3 model, in the model's own order, for tf.train.Checkpoint.

    TensorFlow's checkpoint does not look inside the lists and dicts of layers that
    Keras 3 tracks (a block's sub-layers, the embedding tables), so the model itself
    would be saved only partly; the variables are listed here explicitly instead. They
    are keyed by position, not by path: Keras numbers auto-named objects per process
    (a Dropout's "seed_generator", then "seed_generator_1"), so paths differ between two
    builds of one config in one process, while the order is fixed by the config.
    """

    def __init__(self, model: keras.Model):
        super().__init__(name="model_variables")
        self.variables_in_order = list(model.variables)


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
        self.variables = ModelVariables(self.model)
        self.restored: str | None = None  # the checkpoint restored last

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        """A checkpoint of the model's variables and the step, plus `extra` objects (the
        Trainer's optimizers)."""
        return tf.train.Checkpoint(model=self.variables, step=self.step, **extra)

    def latest_checkpoint(self) -> str | None:
        return tf.train.latest_checkpoint(self.model_dir)

    def best_checkpoint(self) -> str | None:
        """The best checkpoint training kept by its evaluation metric (None if none)."""
        return tf.train.latest_checkpoint(os.path.join(self.model_dir, BEST_DIR))

    def find_checkpoint(self, which: str | None = None) -> str | None:
        """"latest", "best", a checkpoint path, or None: the best checkpoint when the
        config keeps one (export_config exporter_type "best" or early stopping) and training
        wrote it, else the latest. Returns the path (None if there is no such checkpoint)."""
        if which == "latest":
            return self.latest_checkpoint()
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
        return self.latest_checkpoint()

    def restore(self, checkpoint: str | None = None, required: bool = False) -> str | None:
        """Restores the model's variables and step from a checkpoint (see find_checkpoint;
        optimizer state in it is left alone); returns its path (None if none)."""
        path = self.find_checkpoint(checkpoint)
        if path is None:
            if required:
                raise ConfigError(f"no checkpoint in {self.model_dir}: train first")
            return None
        restore_checkpoint(self.checkpoint(), path, partial=True)
        self.restored = path
        return path


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str, partial: bool) -> None:
    """Restores `path` into `checkpoint`; every object of `checkpoint` must be in the file
    (ConfigError otherwise). partial: the file may hold more (e.g. optimizer slots)."""
    status = checkpoint.restore(path)
    if partial:
        status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ConfigError(f"checkpoint {path} does not fit this config's model (was it "
                          f"written by another config?): {str(e).splitlines()[0]}") from None
