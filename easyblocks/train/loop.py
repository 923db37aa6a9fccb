"""The Trainer: one custom training loop (strategy.run inside a tf.function) for every
distribution strategy, checkpoints with automatic resume, progress lines and
TensorBoard summaries; it ends with the Evaluator.

`model.fit` is not used: under MultiWorkerMirroredStrategy it fails inside Keras 3
on this TensorFlow (DESIGN section 4), while a custom loop trains.

Synchronous replicas (MirroredStrategy, MultiWorkerMirroredStrategy): each replica takes a
full batch of batch_size rows; its loss is divided by the number of replicas and the
gradients (dense and sparse) are summed over replicas once, so the step's gradient is that
of the mean loss over the global batch, as one process training batch_size x replicas rows
would compute it. Under PSStrategy (train/distribute.py) the chief schedules each step,
with its batch, on one worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import tensorflow as tf

from easyblocks.config.specs import PipelineSpec
from easyblocks.data.csv_input import CSVInput, batches, expand_paths, find_bad_line
from easyblocks.errors import ConfigError
from easyblocks.eval.evaluator import Evaluator
from easyblocks.eval.summaries import write_scalar
from easyblocks.models.state import ModelState, restore_checkpoint
from easyblocks.train import distribute
from easyblocks.train.optimizers import SparseTableOptimizer, dense_optimizer, table_parts

log = logging.getLogger("easyblocks")


def _scaled(grad, factor: float):
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * factor, grad.indices, grad.dense_shape)
    return grad * factor


def _fmt(value: float) -> str:
    return f"{value:.5f}" if abs(value) < 100 else f"{value:.1f}"


class Trainer:
    """Owns training: the model state plus its optimizers, checkpoints and training input."""

    def __init__(self, spec: PipelineSpec, model_dir: str | None = None):
        self.spec = spec
        self.train_spec = spec.train
        self.dist = distribute.Distribution(spec.train.strategy)
        self.strategy = self.dist.strategy
        # the step's gradient is clipped by its global norm here: Keras' global_clipnorm
        # would clip each replica's part before summing them
        self.clip_norm = spec.train.optimizer.clip_norm
        with self.dist.scope():
            self.state = ModelState(spec, model_dir)
            self.tables = self.model.feature_groups.table_variables
            table_ids = {id(t) for t in self.tables}
            self.dense_vars = [v for v in self.model.trainable_variables if id(v) not in table_ids]
            self.dense_opt = dense_optimizer(
                dataclasses.replace(spec.train.optimizer, clip_norm=0.0))
            self.dense_opt.build(self.dense_vars)
            self.table_opt = SparseTableOptimizer(spec.train.optimizer, self.tables)
        self.dist.log_placement(self.tables)
        # synchronous replicas: one step's math whatever the number of replicas
        self.replica_state = []
        if self.dist.num_replicas > 1:
            n_bn = distribute.synchronize_batch_norm(self.model)
            trainable = {id(v) for v in self.model.trainable_variables}
            self.replica_state = [v for v in self.model.variables if id(v) not in trainable and
                                  v.dtype in ("float16", "bfloat16", "float32", "float64")]
            log.info("%d replicas: batch norm over the global batch (%d layers), %d state "
                     "variables averaged over replicas each step", self.dist.num_replicas, n_bn,
                     len(self.replica_state))
        self.checkpoint = self.state.checkpoint(optimizer=self.dense_opt,
                                                table_optimizer=self.table_opt)
        # only the chief writes to model_dir (distribute.Distribution.checkpoint_dir)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.dist.checkpoint_dir(self.model_dir),
            max_to_keep=spec.train.keep_checkpoint_max or None,
        )
        self.train_examples_per_sec: float | None = None
        self.input = CSVInput(spec.data, self.state.preprocessor, spec.labels)

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
        """Restores the model and optimizers from the given or latest checkpoint (the chief's,
        in model_dir, for every worker); returns its path (None if none)."""
        path = checkpoint or tf.train.latest_checkpoint(self.model_dir)
        if path is None:
            if required:
                raise ConfigError(f"no checkpoint in {self.model_dir}: train first")
            return None
        restore_checkpoint(self.checkpoint, path, partial=False)
        return path

    # ---- training ----------------------------------------------------------------------------
    def _train_step_fn(self, element_spec=None):
        model, dense_vars = self.model, self.dense_vars
        parts = table_parts(self.tables)  # a sharded table's shards, else the table
        n = len(dense_vars)
        replicas = self.dist.num_replicas

        def step_fn(features, labels):
            with tf.GradientTape() as tape:
                outputs, emb_l2 = model.forward(features, training=True)
                terms = model.compute_losses(labels, outputs, emb_l2)
                # this replica's share of the mean loss over the step's equal batches
                loss = terms["loss/total"] / replicas
            grads = distribute.sum_over_replicas(tape.gradient(loss, dense_vars + parts))
            dense = grads[:n]
            if self.clip_norm:
                present = [g for g in dense if g is not None]
                clipped = iter(tf.clip_by_global_norm(present, self.clip_norm)[0])
                dense = [None if g is None else next(clipped) for g in dense]
            # the gradients are already summed over replicas; Keras' TF backend sums what it
            # is given over replicas once more, so it gets each replica's equal share
            pairs = [(_scaled(g, 1.0 / replicas) if replicas > 1 else g, v)
                     for g, v in zip(dense, dense_vars) if g is not None]
            self.dense_opt.apply_gradients(pairs)
            self.table_opt.apply(grads[n:], self.tables)
            distribute.average_over_replicas(self.replica_state)
            return {k: v / replicas for k, v in terms.items()}

        def train_step(features, labels):
            terms = self.strategy.run(step_fn, args=(features, labels))
            self.step.assign_add(1)
            return {k: self.strategy.reduce("SUM", v, axis=None) for k, v in terms.items()}

        if element_spec is None:  # full batches of a fixed size: traced once
            return tf.function(train_step)
        # traced once for the dataset's shapes (batch size unknown), so the last, partial
        # batch does not trigger a second trace
        return tf.function(train_step, input_signature=list(element_spec[:2]))

    def train(self) -> dict:
        """Trains to num_steps (or the end of num_epochs), then evaluates; returns the metrics."""
        tc = self.train_spec
        files = expand_paths(self.spec.train_input_path, "train_input_path")
        find_bad_line(files, self.spec.data, max_lines=1000)
        restored = self.restore()
        start = int(self.step.numpy())
        if restored:
            log.info("resumed from %s at step %d", restored, start)
        try:
            if tc.num_steps and start >= tc.num_steps:
                log.info("already trained to step %d (num_steps %d)", start, tc.num_steps)
            else:
                self._train_loop(files, start)
        finally:
            self.dist.cleanup()
        if not self.dist.is_chief:  # only the chief evaluates and writes the results
            log.info("%s: training done at step %d; the chief evaluates",
                     self.dist.cluster.name, int(self.step.numpy()))
            self.dist.barrier()
            return {}
        results = Evaluator(self.state).evaluate(
            {"train_examples_per_sec": self.train_examples_per_sec})
        self.dist.barrier()
        return results

    def _input(self, files: list[str], start: int):
        """(distributed batches, step function, last step (0: until the data ends),
        examples per step (None: the batch's)) for this process and strategy."""
        tc, data, dist = self.train_spec, self.spec.data, self.dist
        if dist.num_replicas == 1:  # one process, or the chief feeding parameter servers
            ds = self.input.dataset(files, data.batch_size, training=True,
                                    num_epochs=tc.num_epochs, skip_batches=start, seed=tc.seed)
            train_step = self._train_step_fn(ds.element_spec)
            if not dist.parameter_servers:
                ds = self.strategy.experimental_distribute_dataset(ds)
            return ds, train_step, tc.num_steps, None
        # synchronous replicas: every replica takes full batches from this process's part
        # of the input, repeated, for a number of steps all processes agree on
        own_files, row_shard = dist.shard(files)
        local = dist.num_replicas // dist.num_input_pipelines
        last = tc.num_steps
        if not last:
            rows = distribute.count_rows(own_files, data.with_header, row_shard)
            last = dist.agree_on_min(distribute.steps_for_epochs(
                rows, tc.num_epochs, data.batch_size, local))
            log.info("%d epoch(s) of %d rows here: %d steps of %d x %d rows", tc.num_epochs,
                     rows, last, data.batch_size, dist.num_replicas)
        if dist.num_input_pipelines > 1:
            log.info("input part %d of %d: %s", dist.input_pipeline_id + 1,
                     dist.num_input_pipelines,
                     f"one row in {row_shard[0]}, from row {row_shard[1] + 1}" if row_shard
                     else f"{len(own_files)} of {len(files)} files")

        ds = self.input.dataset(own_files, data.batch_size, training=True, num_epochs=0,
                                skip_batches=start * local, seed=tc.seed, row_shard=row_shard,
                                drop_remainder=True)
        ds = dist.replica_batches(ds.with_options(distribute.input_options()))
        return ds, self._train_step_fn(), last, data.batch_size * dist.num_replicas

    def _train_loop(self, files: list[str], start: int) -> None:
        tc, data = self.train_spec, self.spec.data
        ds, train_step, last_step, step_examples = self._input(files, start)
        coordinator = self.dist.coordinator
        if coordinator is not None:  # the step runs on a worker; its losses are fetched
            def run(features, labels):
                return coordinator.schedule(train_step, args=(features, labels))

            def fetch(terms):
                return {k: float(v) for k, v in terms.fetch().items()}
        else:
            run = train_step

            def fetch(terms):
                return {k: float(v) for k, v in terms.items()}
        writer = self.dist.summary_writer(os.path.join(self.model_dir, "train"))
        every = tc.log_step_count_steps
        save_every = tc.save_checkpoints_steps
        t0, examples, step = time.perf_counter(), 0, start
        # throughput after the first log window (which includes tracing the step)
        steady_t0, steady_examples = None, 0
        log.info("training %s from step %d%s", self.spec.path, start,
                 f" to {last_step}" if last_step else f" for {tc.num_epochs} epoch(s)")
        elements = batches(ds, files, data)
        # the step is checked before the next batch is read: the input may be endless
        while not (last_step and step >= last_step):
            element = next(elements, None)
            if element is None:
                break
            features, labels, _ = element
            terms = run(features, labels)
            step += 1
            batch = step_examples or int(next(iter(labels.values())).shape[0])
            examples += batch
            if steady_t0 is not None:
                steady_examples += batch
            if step % every == 0:
                values = fetch(terms)
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
                self._save(step)
        elements.close()  # the input pipeline stops before the final save
        del ds, elements
        if self.manager.latest_checkpoint is None or \
                not self.manager.latest_checkpoint.endswith(f"-{step}"):
            self._save(step)
        writer.flush()
        if steady_t0 is not None and steady_examples:
            self.train_examples_per_sec = steady_examples / (time.perf_counter() - steady_t0)
        log.info("training done at step %d; checkpoint %s", step, self.manager.latest_checkpoint)
        self.dist.log_checksum(self.model.variables)

    def _save(self, step: int) -> None:
        if self.dist.coordinator is not None:  # every scheduled step applied, none in flight
            self.dist.coordinator.join()
        self.manager.save(checkpoint_number=step)
