"""The Trainer: one custom training loop (strategy.run inside a tf.function) for every
distribution strategy, checkpoints with automatic resume, progress lines and
TensorBoard summaries, evaluation during training (every eval_interval_steps steps and
every eval_interval_epochs epochs) with the best checkpoint and early stopping
(`selection.py`); it ends with the Evaluator, on the best checkpoint when it keeps one.

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
from easyblocks.data.csv_input import expand_paths, warn_out_of_range_ids
from easyblocks.errors import ConfigError
from easyblocks.eval.evaluator import Evaluator
from easyblocks.eval.summaries import write_scalar
from easyblocks.models import checkpoints
from easyblocks.models.state import ModelState
from easyblocks.train.guards import NonFiniteGuard, StopSignals, model_dir_lock
from easyblocks.train.optimizers import (
    DenseOptimizerState,
    SparseTableOptimizer,
    dense_optimizer,
    prepare_gradients,
)
from easyblocks.train.selection import BestCheckpoint, EarlyStopping

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
            # EasyRec's two optimizer_config: the first updates the embedding tables
            self.table_opt = SparseTableOptimizer(
                spec.train.table_optimizer or spec.train.optimizer, self.tables,
                [self.state.key_of(t) for t in self.tables])
            self.guard = NonFiniteGuard()
        # optimizer state keyed by the variables' stable names, like the model's
        dense_state = DenseOptimizerState(self.dense_opt, self.state.keyed_variables)
        self.checkpoint = self.state.checkpoint(optimizer=dense_state,
                                                table_optimizer=self.table_opt)
        checkpoints.repair_state(self.model_dir)  # a garbage state file: not from step 0
        self.last_saved_step: int | None = None
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.model_dir,
            max_to_keep=spec.train.keep_checkpoint_max or None,
        )
        self.train_examples_per_sec: float | None = None
        # the input of data_config.input_type (CSV, TFRecord, Parquet)
        self.input = make_input(spec.data, self.state.preprocessor, spec.labels)
        self.evaluator = Evaluator(self.state)
        selection = spec.train.selection
        self.best = (BestCheckpoint(selection, self.state.checkpoint(), self.model_dir)
                     if selection else None)
        self.early_stopping = (EarlyStopping(selection, self.best)
                               if selection and selection.early_stop else None)
        self._last_eval: dict | None = None  # the latest evaluation during training
        # the step evaluated last (also by an earlier run, as the best's history says)
        self._evaluated_step = (self.best.history[-1]["step"]
                                if self.best is not None and self.best.history else None)

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
        """Restores the model and optimizers from the given checkpoint, or the newest readable
        one in model_dir; returns its path (None if none)."""
        path = self.state.restore_into(self.checkpoint, checkpoint, required, partial=False)
        if path is not None:
            self.last_saved_step = int(self.step.numpy())
        return path

    def save(self, step: int) -> str:
        """Writes the checkpoint of `step`, unless a non-finite loss was seen (then
        TrainingStopped, and the last good checkpoints stay)."""
        self.guard.check(self.manager.latest_checkpoint)
        path = self.manager.save(checkpoint_number=step)
        self.last_saved_step = step
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
            self.guard.record(terms, self.step)
            return terms

        def train_step(features, labels):
            terms = self.strategy.run(step_fn, args=(features, labels))
            return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in terms.items()}

        # traced once for the dataset's shapes (batch size unknown), so the last, partial
        # batch does not trigger a second trace
        # (no autograph: the step has no tensor-dependent Python control flow, and an error
        # raised while tracing a block then reaches the user as it was raised)
        return tf.function(train_step, input_signature=list(element_spec[:2]), autograph=False)

    def train(self) -> dict:
        """Trains to num_steps (or the end of num_epochs, or early stopping), then evaluates
        the best checkpoint when training keeps one, else the last; returns the metrics."""
        tc = self.train_spec
        files = expand_paths(self.spec.train_input_path, "train_input_path")
        self.input.check_files(files, max_lines=1000, what="train_input_path")
        if self.spec.data.input_type == "CSVInput":
            warn_out_of_range_ids(files, self.spec.data, list(self.spec.features.values()))
        with model_dir_lock(self.model_dir):
            restored = self.restore()
            start = int(self.step.numpy())
            if restored:
                log.info("resumed from %s at step %d", restored, start)
            if self.best is not None and self.best.stopped is not None:
                log.info("early stopping ended this training at step %d (%s); train in a new "
                         "model_dir to start again", self.best.stopped["step"],
                         self.best.stopped["reason"])
            elif tc.num_steps and start >= tc.num_steps:
                log.info("already trained to step %d (num_steps %d)", start, tc.num_steps)
            else:
                self._train_loop(files, start)
            return self._final_evaluation()

    def _train_loop(self, files: list[str], start: int) -> None:
        tc, data = self.train_spec, self.spec.data
        fraction = self.spec.eval.holdout_fraction if not self.spec.eval_input_path else 0.0
        ds = self.input.dataset(files, data.batch_size, training=True, num_epochs=tc.num_epochs,
                                skip_batches=start, seed=tc.seed, holdout_fraction=fraction)
        train_step = self._train_step_fn(ds.element_spec)
        ds = self.strategy.experimental_distribute_dataset(ds)
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
        log.info("training %s from step %d%s", self.spec.path, start,
                 f" to {tc.num_steps}" if tc.num_steps else f" for {tc.num_epochs} epoch(s)")
        self._log_evaluation_plan()
        signals = StopSignals()
        with signals:
            step = self._run_steps(ds, files, train_step, writer, start, signals)
        if signals.received:
            if self.last_saved_step != step:
                self.save(step)
            writer.flush()
            raise signals.stopped(step, self.manager.latest_checkpoint)
        writer.flush()
        log.info("training done at step %d; checkpoint %s", step, self.manager.latest_checkpoint)

    def _run_steps(self, ds, files, train_step, writer, start: int, signals) -> int:
        """The steps from `start` until num_steps, the end of the data, early stopping or a
        stop signal, with the evaluations due on the way; returns the step reached."""
        tc = self.train_spec
        every = tc.log_step_count_steps
        save_every = tc.save_checkpoints_steps
        t0, examples, step, epoch = time.perf_counter(), 0, start, 0
        # throughput after the first log window (which includes tracing the step)
        steady_t0, steady_examples = None, 0
        stop = False
        for features, labels, _, position in self.input.batches(ds, files):
            batch_epoch, index = int(position[0]), int(position[1])
            if index == 0 and batch_epoch > 0 and self._end_of_epoch(step, batch_epoch - 1):
                stop = True
                break
            if tc.num_steps and step >= tc.num_steps:
                break
            terms = train_step(features, labels)
            step, epoch = step + 1, batch_epoch  # epoch: of the last batch trained
            batch = int(next(iter(labels.values())).shape[0])
            examples += batch
            if steady_t0 is not None:
                steady_examples += batch
            if step % every == 0:
                self.guard.check(self.manager.latest_checkpoint)
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
                self.save(step)
            if signals.received:
                break
            interval = self.spec.eval.interval_steps
            if interval and step % interval == 0 and self._evaluate_during_training(step, epoch):
                stop = True
                break
        else:  # the data ran out: the last epoch ended
            if step > start:
                stop = self._end_of_epoch(step, epoch)
        if steady_t0 is not None and steady_examples:
            self.train_examples_per_sec = steady_examples / (time.perf_counter() - steady_t0)
        if signals.received:
            return step
        self._save_at(step)
        if not stop and self.best is not None:
            self._evaluate_during_training(step, epoch)  # the last step is a candidate too
        return step

    def _save_at(self, step: int) -> None:
        """A training checkpoint at `step`, unless it was saved already."""
        if self.last_saved_step != step:
            self.save(step)

    # ---- evaluation during training ----------------------------------------------------------
    def _log_evaluation_plan(self) -> None:
        ec, selection = self.spec.eval, self.train_spec.selection
        when = [f"every {ec.interval_steps} steps"] if ec.interval_steps else []
        if ec.interval_epochs:
            when.append("every epoch" if ec.interval_epochs == 1
                        else f"every {ec.interval_epochs} epochs")
        if not when:
            return
        line = f"evaluating {' and '.join(when)} on {self.evaluator.source()[2]}"
        if selection is not None:
            direction = "bigger" if selection.bigger else "smaller"
            line += f"; best checkpoint by {selection.metric} ({direction} is better)"
        if self.early_stopping is not None:
            line += "; early stopping after " + (
                f"{selection.patience} evaluations" if selection.patience
                else f"{selection.max_check_steps} steps") + " without improvement"
        log.info(line)

    def _end_of_epoch(self, step: int, epoch: int) -> bool:
        """Epoch `epoch` (from 0) ended at `step`: evaluates when eval_interval_epochs says
        so; returns whether training should stop."""
        interval = self.spec.eval.interval_epochs
        if interval and (epoch + 1) % interval == 0:
            return self._evaluate_during_training(step, epoch)
        return False

    def _evaluate_during_training(self, step: int, epoch: int) -> bool:
        """Evaluates the model as it is at `step` (saved first, so that a resumed run
        starts from an evaluated step), logs one line and writes TensorBoard scalars;
        updates the best checkpoint and early stopping. Returns whether to stop."""
        if self._evaluated_step == step:
            return False
        self._save_at(step)
        results = self.evaluator.compute()
        self.evaluator.write_summaries(results)
        self._last_eval, self._evaluated_step = results, step
        line = f"eval at step {step} (epoch {epoch + 1}) | {self.evaluator.summary_line(results)}"
        reason = None
        if self.best is not None:
            improved = self.best.update(step, epoch + 1, results)
            line += " | " + ("new best" if improved else self.best.describe())
            if self.early_stopping is not None:
                line += " | " + self.early_stopping.progress()
                reason = self.early_stopping.should_stop()
        log.info(line)
        if reason:
            log.info("early stopping at step %d: %s", step, reason)
            self.best.mark_stopped(step, reason)
        return reason is not None

    def _final_evaluation(self) -> dict:
        """The report of the checkpoint training hands over: the best one when it keeps one
        (restored unless the model is at that step already), else the last."""
        extra: dict = {"train_examples_per_sec": self.train_examples_per_sec}
        note = ""
        checkpoint = self.manager.latest_checkpoint
        if self.best is not None and self.best.best is not None:
            best = self.best.best
            checkpoint = best["checkpoint"]
            if int(self.step.numpy()) != best["step"]:
                self.state.restore(checkpoint)
            note = (f" (best checkpoint by {self.best.spec.metric} of "
                    f"{len(self.best.history)} evaluations: {checkpoint})")
            extra["selection"] = {"metric": self.best.spec.metric,
                                  "bigger": self.best.spec.bigger, "best": best,
                                  "evaluations": len(self.best.history),
                                  "stopped_early": self.best.stopped}
        extra["checkpoint"] = checkpoint
        last = self._last_eval
        if last is not None and last["step"] == int(self.step.numpy()):
            results = {**last, **extra, "towers": last["towers"]}  # that evaluation, again
            self.evaluator.report(results, note)
            return results
        return self.evaluator.evaluate(extra, note)
