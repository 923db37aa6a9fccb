"""The Trainer: one custom training loop (strategy.run inside a tf.function) for every
distribution strategy, checkpoints with automatic resume, progress lines and
TensorBoard summaries; it ends with the Evaluator.

`model.fit` is not used: under MultiWorkerMirroredStrategy it fails inside Keras 3
on this TensorFlow (DESIGN section 4), while a custom loop trains.
"""

from __future__ import annotations

import logging
import os
import time

import tensorflow as tf

from easyblocks.config.specs import PipelineSpec, TrainSpec
from easyblocks.data import make_input
from easyblocks.data.csv_input import batches, expand_paths
from easyblocks.errors import ConfigError
from easyblocks.eval.evaluator import Evaluator
from easyblocks.eval.summaries import write_scalar
from easyblocks.models.state import ModelState, restore_checkpoint
from easyblocks.train.optimizers import (
    SparseTableOptimizer,
    dense_optimizer,
    prepare_gradients,
)

log = logging.getLogger("easyblocks")


def make_strategy(spec: TrainSpec) -> tf.distribute.Strategy:
    if spec.strategy == "NoStrategy":
        return tf.distribute.get_strategy()
    raise ConfigError(f"train_config.train_distribute: {spec.strategy} is not supported yet; "
                      "use NoStrategy")


def _fmt(value: float) -> str:
    return f"{value:.5f}" if abs(value) < 100 else f"{value:.1f}"


class Trainer:
    """Owns training: the model state plus its optimizers, checkpoints and training input."""

    def __init__(self, spec: PipelineSpec, model_dir: str | None = None):
        self.spec = spec
        self.train_spec = spec.train
        self.strategy = make_strategy(spec.train)
        with self.strategy.scope():
            self.state = ModelState(spec, model_dir)
            self.tables = self.model.feature_groups.table_variables
            table_ids = {id(t) for t in self.tables}
            self.dense_vars = [v for v in self.model.trainable_variables if id(v) not in table_ids]
            self.dense_opt = dense_optimizer(spec.train.optimizer)
            self.dense_opt.build(self.dense_vars)
            self.table_opt = SparseTableOptimizer(
                spec.train.table_optimizer or spec.train.optimizer, self.tables)
        self.checkpoint = self.state.checkpoint(optimizer=self.dense_opt,
                                                table_optimizer=self.table_opt)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.model_dir,
            max_to_keep=spec.train.keep_checkpoint_max or None,
        )
        self.train_examples_per_sec: float | None = None
        self.input = make_input(spec.data, self.state.preprocessor, spec.labels)

    @property
    def model(self):
        return self.state.model

    @property
    def model_dir(self) -> str:
        return self.state.model_dir

    @property
    def step(self) -> tf.Variable:
        return self.state.step

    # ---- checkpoints -------------------------------------------------------------------------
    def restore(self, checkpoint: str | None = None, required: bool = False) -> str | None:
        """Restores the model and optimizers from the given or latest checkpoint; returns
        its path (None if none)."""
        path = checkpoint or self.manager.latest_checkpoint
        if path is None:
            if required:
                raise ConfigError(f"no checkpoint in {self.model_dir}: train first")
            return None
        restore_checkpoint(self.checkpoint, path, partial=False)
        return path

    # ---- training ----------------------------------------------------------------------------
    def _train_step_fn(self, element_spec):
        model, dense_vars, tables = self.model, self.dense_vars, self.tables
        n = len(dense_vars)

        def step_fn(features, labels):
            with tf.GradientTape() as tape:
                outputs, emb_l2 = model.forward(features, training=True)
                terms = model.compute_losses(labels, outputs, emb_l2)
            grads = tape.gradient(terms["loss/total"], dense_vars + tables)
            grads = prepare_gradients(grads, n, self.spec.train.optimizer)
            pairs = [(g, v) for g, v in zip(grads[:n], dense_vars) if g is not None]
            self.dense_opt.apply_gradients(pairs)
            self.table_opt.apply(grads[n:], tables)
            self.step.assign_add(1)
            return terms

        def train_step(features, labels):
            terms = self.strategy.run(step_fn, args=(features, labels))
            return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in terms.items()}

        # traced once for the dataset's shapes (batch size unknown), so the last, partial
        # batch does not trigger a second trace
        return tf.function(train_step, input_signature=list(element_spec[:2]))

    def train(self) -> dict:
        """Trains to num_steps (or the end of num_epochs), then evaluates; returns the metrics."""
        tc = self.train_spec
        files = expand_paths(self.spec.train_input_path, "train_input_path")
        self.input.check_files(files, max_lines=1000)
        restored = self.restore()
        start = int(self.step.numpy())
        if restored:
            log.info("resumed from %s at step %d", restored, start)
        if tc.num_steps and start >= tc.num_steps:
            log.info("already trained to step %d (num_steps %d)", start, tc.num_steps)
        else:
            self._train_loop(files, start)
        return Evaluator(self.state).evaluate(
            {"train_examples_per_sec": self.train_examples_per_sec})

    def _train_loop(self, files: list[str], start: int) -> None:
        tc, data = self.train_spec, self.spec.data
        ds = self.input.dataset(files, data.batch_size, training=True, num_epochs=tc.num_epochs,
                                skip_batches=start, seed=tc.seed)
        train_step = self._train_step_fn(ds.element_spec)
        ds = self.strategy.experimental_distribute_dataset(ds)
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
        every = tc.log_step_count_steps
        save_every = tc.save_checkpoints_steps
        t0, examples, step = time.perf_counter(), 0, start
        # throughput after the first log window (which includes tracing the step)
        steady_t0, steady_examples = None, 0
        log.info("training %s from step %d%s", self.spec.path, start,
                 f" to {tc.num_steps}" if tc.num_steps else f" for {tc.num_epochs} epoch(s)")
        for features, labels, _ in batches(ds, files, data):
            if tc.num_steps and step >= tc.num_steps:
                break
            terms = train_step(features, labels)
            step += 1
            batch = int(next(iter(labels.values())).shape[0])
            examples += batch
            if steady_t0 is not None:
                steady_examples += batch
            if step % every == 0:
                values = {k: float(v) for k, v in terms.items()}
                elapsed = time.perf_counter() - t0
                rate = examples / elapsed if elapsed else 0.0
                lr = float(self.table_opt.current_lr())
                parts = " | ".join(f"{k} {_fmt(v)}" for k, v in values.items())
                log.info("step %d | %.0f examples/s | %s", step, rate, parts)
                with writer.as_default():
                    for k, v in values.items():
                        write_scalar(k, v, step)
                    write_scalar("learning_rate", lr, step)
                    write_scalar("examples_per_sec", rate, step)
                t0, examples = time.perf_counter(), 0
                if steady_t0 is None:
                    steady_t0 = t0
            if save_every and step % save_every == 0:
                self.manager.save(checkpoint_number=step)
        if self.manager.latest_checkpoint is None or \
                not self.manager.latest_checkpoint.endswith(f"-{step}"):
            self.manager.save(checkpoint_number=step)
        writer.flush()
        if steady_t0 is not None and steady_examples:
            self.train_examples_per_sec = steady_examples / (time.perf_counter() - steady_t0)
        log.info("training done at step %d; checkpoint %s", step, self.manager.latest_checkpoint)
