"""The Trainer: one custom training loop (strategy.run inside a tf.function) for every
distribution strategy, checkpoints with automatic resume, progress lines and
TensorBoard summaries, evaluation during training (every eval_interval_steps steps and
every eval_interval_epochs epochs) with the best checkpoint and early stopping
(`selection.py`); it ends with the Evaluator, on the best checkpoint when it keeps one.

`model.fit` is not used: under MultiWorkerMirroredStrategy it fails inside Keras 3
on this TensorFlow (DESIGN section 4), while a custom loop trains.

Synchronous replicas (MirroredStrategy, MultiWorkerMirroredStrategy): each replica takes a
full batch of batch_size rows; its loss is divided by the number of replicas and the
gradients (dense and sparse) are summed over replicas once, so the step's gradient is that
of the mean loss over the global batch, as one process training batch_size x replicas rows
would compute it. Under PSStrategy (train/distribute.py) the chief runs this loop alone
and schedules each step, with its batch, on one worker.

Under MultiWorkerMirroredStrategy every worker runs this loop and they stay in step (every
collective is called by all of them in the same order): they take the same number of
steps per epoch (`_input`), check the non-finite guard on the same all-reduced loss, save
at the same steps (the chief into model_dir, the others into a temporary directory), and at
each evaluation point learn from the chief whether to stop: the chief alone evaluates,
keeps the best checkpoint and decides early stopping, while the others wait for its
decision (`_evaluate_during_training`). A stop signal (SIGTERM, SIGINT) received by any
worker travels in the next step's all-reduce and stops every worker after that step; so
does train_config.dead_line, which each worker checks before the step (one process checks it
after each step, as EasyRec's DeadlineStopHook). The
model_dir lock, summaries, model_dir/best and eval_results.json are the chief's alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import tensorflow as tf

from easyblocks.config.specs import PipelineSpec
from easyblocks.data import make_input
from easyblocks.data.csv_input import expand_paths, warn_out_of_range_ids
from easyblocks.errors import ConfigError, DataError
from easyblocks.eval.evaluator import Evaluator
from easyblocks.eval.summaries import write_scalar
from easyblocks.models import checkpoints
from easyblocks.models.state import ModelState, frozen_variables
from easyblocks.train import distribute, xla
from easyblocks.train.guards import NonFiniteGuard, StopSignals, TrainingStopped, model_dir_lock
from easyblocks.train.optimizers import (
    DenseOptimizerState,
    SparseTableOptimizer,
    dense_optimizer,
    prepare_gradients,
    table_parts,
)
from easyblocks.train.selection import BestCheckpoint, EarlyStopping
from easyblocks.train.throughput import Throughput

log = logging.getLogger("easyblocks")

# the step's output that counts the replicas whose process was asked to stop, and those whose
# process saw train_config.dead_line pass
STOP_VOTES = "stop_votes"

# the wall clock train_config.dead_line is compared with (a test replaces it)
wall_clock = time.time


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
        if spec.train.jit_compile and spec.train.strategy != "NoStrategy":
            raise ConfigError(f"train_config.jit_compile: true is supported with NoStrategy "
                              f"(one process) only, not with {spec.train.strategy}; set "
                              "jit_compile: false")
        self.dist = distribute.Distribution(spec.train.strategy)
        self.strategy = self.dist.strategy
        with self.dist.scope():
            self.state = ModelState(spec, model_dir)
            # train_config.freeze_gradient: those variables get no update (EasyRec leaves
            # them out of the optimizer's variables, and of the gradient norm)
            frozen = frozen_variables(self.model, spec, self.state.keyed_variables)
            if frozen:
                log.info("train_config.freeze_gradient: not training %d variable(s): %s",
                         len(frozen), ", ".join(k for k, _ in frozen))
            frozen_ids = {id(v) for _, v in frozen}
            self.tables = [t for t in self.model.feature_groups.table_variables
                           if id(t) not in frozen_ids]
            table_ids = {id(t) for t in self.model.feature_groups.table_variables}
            self.dense_vars = [v for v in self.model.trainable_variables
                               if id(v) not in table_ids and id(v) not in frozen_ids]
            self.dense_opt = dense_optimizer(spec.train.optimizer)
            self.dense_opt.build(self.dense_vars)
            # EasyRec's two optimizer_config: the first updates the embedding tables
            self.table_opt = SparseTableOptimizer(
                spec.train.table_optimizer or spec.train.optimizer, self.tables,
                [self.state.key_of(t) for t in self.tables])
            self.guard = NonFiniteGuard()
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
        # optimizer state keyed by the variables' stable names, like the model's
        dense_state = DenseOptimizerState(self.dense_opt, self.state.keyed_variables)
        self.checkpoint = self.state.checkpoint(optimizer=dense_state,
                                                table_optimizer=self.table_opt)
        if self.dist.is_chief:
            checkpoints.repair_state(self.model_dir)  # a garbage state file: not from step 0
        self.last_saved_step: int | None = None
        # only the chief writes to model_dir (distribute.Distribution.checkpoint_dir)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.dist.checkpoint_dir(self.model_dir),
            max_to_keep=spec.train.keep_checkpoint_max or None,
        )
        # examples/s of this run's training phase (its one definition: train/throughput.py)
        self.throughput = Throughput()
        # the input of data_config.input_type (CSV, TFRecord, Parquet)
        self.input = make_input(spec.data, self.state.preprocessor, spec.labels)
        self.evaluator = Evaluator(self.state)
        selection = spec.train.selection
        self.keeps_best = selection is not None
        # the chief keeps the best checkpoint and decides early stopping; the other workers
        # of a synchronous cluster follow its decisions (`_evaluate_during_training`)
        self.best = (BestCheckpoint(selection, self.state.checkpoint(), self.model_dir)
                     if selection and self.dist.is_chief else None)
        self.early_stopping = (EarlyStopping(selection, self.best)
                               if self.best is not None and selection.early_stop else None)
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
        one in model_dir (the chief's, for every worker); returns its path (None if none)."""
        path = self.state.restore_into(self.checkpoint, checkpoint, required, partial=False)
        if path is not None:
            self.last_saved_step = int(self.step.numpy())
        return path

    def _join(self) -> None:
        """Under PSStrategy: returns once every scheduled step has been applied."""
        if self.dist.coordinator is not None:
            self.dist.coordinator.join()

    def _last_good_checkpoint(self) -> str | None:
        """The chief's latest checkpoint (a non-chief worker's own go to a temporary dir)."""
        if self.dist.is_chief:
            return self.manager.latest_checkpoint
        return tf.train.latest_checkpoint(self.model_dir)

    def save(self, step: int) -> str:
        """Writes the checkpoint of `step`, unless a non-finite loss was seen (then
        TrainingStopped, and the last good checkpoints stay)."""
        self._join()  # every scheduled step applied, none in flight
        self.guard.check(self._last_good_checkpoint())
        path = self.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        self.throughput.work_done()  # a save is part of the training phase
        return path

    def _save_at(self, step: int) -> None:
        """A training checkpoint at `step`, unless it was saved already."""
        if self.last_saved_step != step:
            self.save(step)

    # ---- training ----------------------------------------------------------------------------
    def _train_step_fn(self, element_spec=None):
        model, dense_vars = self.model, self.dense_vars
        parts = table_parts(self.tables)  # a sharded table's shards, else the table
        n = len(dense_vars)
        replicas = self.dist.num_replicas
        optimizer_spec = self.spec.train.optimizer

        def step_fn(features, labels, stop):
            with tf.GradientTape() as tape:
                outputs, emb_l2 = model.forward(features, training=True)
                terms = model.compute_losses(labels, outputs, emb_l2)
                # this replica's share of the mean loss over the step's equal batches
                loss = terms["loss/total"] / replicas
            grads = distribute.sum_over_replicas(tape.gradient(loss, dense_vars + parts))
            # EasyRec's multiplier of the tables' gradients, then clipping by the global norm
            # of the step's gradient (summed over replicas: the norm one process would clip by)
            grads = prepare_gradients(grads, n, optimizer_spec)
            # the gradients are already summed over replicas; Keras' TF backend sums what it
            # is given over replicas once more, so it gets each replica's equal share
            pairs = [(_scaled(g, 1.0 / replicas) if replicas > 1 else g, v)
                     for g, v in zip(grads[:n], dense_vars) if g is not None]
            self.dense_opt.apply_gradients(pairs)
            self.table_opt.apply(grads[n:], self.tables)
            distribute.average_over_replicas(self.replica_state)
            out = {k: v / replicas for k, v in terms.items()}
            out[STOP_VOTES] = tf.cast(stop, tf.float32)
            return out

        def train_step(features, labels, stop):
            terms = self.strategy.run(step_fn, args=(features, labels, stop))
            self.step.assign_add(1)
            terms = {k: self.strategy.reduce("SUM", v, axis=None) for k, v in terms.items()}
            votes = terms.pop(STOP_VOTES)
            # the step's loss over every replica: every worker records the same
            self.guard.record(terms, self.step)
            return terms, votes

        # (no autograph: the step has no tensor-dependent Python control flow, and an error
        # raised while tracing a block then reaches the user as it was raised)
        if element_spec is None:  # one batch per local replica (distributed values)
            return tf.function(train_step, autograph=False, reduce_retracing=True)
        # traced once for the dataset's shapes (batch size unknown), so the last, partial
        # batch (or a sequence feature's new length) does not trigger a second trace
        signature = [*element_spec[:2], tf.TensorSpec([2], tf.int32)]
        if self.spec.train.jit_compile:  # XLA: refused with one line where it cannot compile
            return xla.compiled(train_step, input_signature=signature, autograph=False)
        return tf.function(train_step, input_signature=signature, autograph=False)

    def train(self) -> dict:
        """Trains to num_steps (or the end of num_epochs, or early stopping), then evaluates
        the best checkpoint when training keeps one, else the last; returns the metrics
        (on a cluster: the chief's; {} on the other workers)."""
        tc = self.train_spec
        files = expand_paths(self.spec.train_input_path, "train_input_path")
        self.input.check_files(files, max_lines=1000, what="train_input_path")
        if self.spec.data.input_type == "CSVInput" and self.dist.is_chief:
            warn_out_of_range_ids(files, self.spec.data, list(self.spec.features.values()))
        # one training per model_dir: the chief's lock (the other workers write nothing there)
        lock = model_dir_lock(self.model_dir) if self.dist.is_chief else contextlib.nullcontext()
        try:
            with lock:
                restored = self.restore()
                start = int(self.step.numpy())
                if restored:
                    log.info("resumed from %s at step %d", restored, start)
                # the chief's model_dir/best knows; the other workers follow
                if self.dist.chief_decides(self.best is not None and
                                           self.best.stopped is not None):
                    if self.best is not None:
                        log.info("early stopping ended this training at step %d (%s); train in "
                                 "a new model_dir to start again", self.best.stopped["step"],
                                 self.best.stopped["reason"])
                    else:
                        log.info("early stopping ended this training (the chief's record)")
                elif tc.num_steps and start >= tc.num_steps:
                    log.info("already trained to step %d (num_steps %d)", start, tc.num_steps)
                else:
                    self._train_loop(files, start)
                return self._final_evaluation()
        finally:
            self.dist.cleanup()

    def _input(self, files: list[str], start: int):
        """(elements, step function, examples per step (None: the batch's)) for this process
        and strategy; elements are (features, labels, columns, position) per step."""
        tc, data, dist = self.train_spec, self.spec.data, self.dist
        fraction = self.spec.eval.holdout_fraction if not self.spec.eval_input_path else 0.0
        if dist.num_replicas == 1:  # one process, or the chief feeding parameter servers
            ds = self.input.dataset(files, data.batch_size, training=True,
                                    num_epochs=tc.num_epochs, skip_batches=start, seed=tc.seed,
                                    holdout_fraction=fraction)
            train_step = self._train_step_fn(ds.element_spec)
            if not dist.parameter_servers:
                ds = self.strategy.experimental_distribute_dataset(ds)
            return self.input.batches(ds, files), train_step, None
        # synchronous replicas: every replica takes full batches from this process's part of
        # the input; when epochs matter (num_epochs, evaluation at epoch ends), every epoch
        # is the same number of steps on every process (the processes agree on it)
        own_files, row_shard = dist.shard(files)
        local = dist.num_replicas // dist.num_input_pipelines
        where = ("this process's part of the training input" if dist.num_input_pipelines > 1
                 else "the training input")
        per_epoch = None
        if tc.num_epochs or self.spec.eval.interval_epochs:
            rows = self.input.count_rows(own_files, fraction, row_shard)
            per_epoch = dist.agree_on_min(distribute.steps_per_epoch(rows, data.batch_size,
                                                                     local))
            log.info("%d rows here: epochs of %d steps of %d x %d rows", rows, per_epoch,
                     data.batch_size, dist.num_replicas)
            if per_epoch == 0:
                raise DataError(f"{where} (or another process's) has fewer rows than one step "
                                f"needs ({local} x batch_size {data.batch_size} on each "
                                "process): use a smaller batch_size or fewer processes")
        else:  # an endless input: it must give every local replica a full batch
            probe = self.input.lines(own_files, fraction, row_shard=row_shard)
            if sum(1 for _ in probe.batch(data.batch_size, drop_remainder=True)
                   .take(local)) < local:
                raise DataError(f"{where} has fewer rows than one step needs ({local} x "
                                f"batch_size {data.batch_size}): use a smaller batch_size or "
                                "fewer processes")
        if dist.num_input_pipelines > 1:
            log.info("input part %d of %d: %s", dist.input_pipeline_id + 1,
                     dist.num_input_pipelines,
                     f"one row in {row_shard[0]}, from row {row_shard[1] + 1}" if row_shard
                     else f"{len(own_files)} of {len(files)} files")
        ds = self.input.dataset(own_files, data.batch_size, training=True,
                                num_epochs=tc.num_epochs, skip_batches=start * local,
                                seed=tc.seed, holdout_fraction=fraction, row_shard=row_shard,
                                drop_remainder=True,
                                batches_per_epoch=per_epoch * local if per_epoch else None)
        elements = self.input.batches(ds.with_options(distribute.input_options()), own_files)
        return (dist.replica_batches(elements, local),
                self._train_step_fn(ds.element_spec if local == 1 else None),
                data.batch_size * dist.num_replicas)

    def _train_loop(self, files: list[str], start: int) -> None:
        elements, train_step, step_examples = self._input(files, start)
        coordinator = self.dist.coordinator
        if coordinator is not None:  # the step runs on a worker; its losses are fetched
            def run(features, labels, stop):
                return coordinator.schedule(train_step, args=(features, labels, stop))

            def fetch(result):
                return {k: float(v) for k, v in result.fetch()[0].items()}
        else:
            run = train_step

            def fetch(result):
                return {k: float(v) for k, v in result[0].items()}
        writer = self.dist.summary_writer(os.path.join(self.model_dir, "train"))
        log.info("training %s from step %d%s", self.spec.path, start,
                 f" to {self.train_spec.num_steps}" if self.train_spec.num_steps
                 else f" for {self.train_spec.num_epochs} epoch(s)")
        self._log_evaluation_plan()
        signals = StopSignals()
        with signals:
            step, stopped = self._run_steps(elements, files, run, fetch, writer, start, signals,
                                            step_examples)
        # the input pipeline stops before the final save
        elements.close()
        del elements
        if stopped:
            self._save_at(step)
            writer.flush()
            # the chief's checkpoint of this step (every worker stopped after it)
            saved = self.manager.latest_checkpoint if self.dist.is_chief else \
                f"{os.path.join(self.model_dir, f'ckpt-{step}')} (the chief's)"
            if signals.received is not None:
                raise signals.stopped(step, saved)
            raise TrainingStopped(
                f"training stopped at step {step}: another worker of the cluster was asked to "
                f"stop; checkpoint {saved} saved: run the same job again to resume from it")
        writer.flush()
        log.info(self.throughput.summary_line())
        if self.dist.is_chief:
            log.info("training done at step %d; checkpoint %s", step,
                     self._last_good_checkpoint())
        else:  # its own save went to a temporary dir (removed); the chief's may still be
            # being written, so the path it has by now, not tf.train.latest_checkpoint's
            log.info("training done at step %d; checkpoint %s (the chief's)", step,
                     os.path.join(self.model_dir, f"ckpt-{step}"))
        self.dist.log_checksum(self.model.variables)

    def _stop_asked(self, result, signals) -> bool:
        """Whether to stop after this step for a signal: on a synchronous cluster, when any
        worker's process was asked to (its vote went into this step's all-reduce), so that
        all stop after the same step; elsewhere when this process was."""
        if self.dist.synchronous_cluster:
            return float(result[1][0]) > 0
        return signals.received is not None

    def _past_dead_line(self) -> bool:
        tc = self.train_spec
        return tc.dead_line is not None and wall_clock() > tc.dead_line

    def _dead_line_passed(self, result) -> bool:
        """Whether train_config.dead_line ends training after this step: on a synchronous
        cluster, when any worker saw it pass before the step (its vote went into the step's
        all-reduce, as a stop signal's), so that all stop after the same step; elsewhere
        when it has passed at the end of the step (EasyRec's DeadlineStopHook)."""
        if self.dist.synchronous_cluster:
            return float(result[1][1]) > 0
        return self._past_dead_line()

    def _run_steps(self, elements, files, run, fetch, writer, start: int, signals,
                   step_examples: int | None) -> tuple[int, bool]:
        """The steps from `start` until num_steps, the end of the data, early stopping, a
        stop signal or train_config.dead_line, with the evaluations due on the way; returns
        the step reached and whether a stop signal ended it."""
        tc = self.train_spec
        every = tc.log_step_count_steps
        save_every = tc.save_checkpoints_steps
        meter = self.throughput
        step, epoch = start, 0
        stop = signalled = False
        data_ended = False
        meter.start()  # the phase starts: the first batch is asked for
        for features, labels, _, position in elements:
            batch_epoch, index = int(position[0]), int(position[1])
            if index == 0 and batch_epoch > 0 and self._end_of_epoch(step, batch_epoch - 1):
                stop = True
                break
            if tc.num_steps and step >= tc.num_steps:
                break
            # this process's votes: [asked to stop, past train_config.dead_line]
            past = self.dist.synchronous_cluster and self._past_dead_line()
            meter.step_started()
            result = run(features, labels,
                         tf.constant([int(signals.received is not None), int(past)]))
            step, epoch = step + 1, batch_epoch  # epoch: of the last batch trained
            batch = step_examples or int(next(iter(labels.values())).shape[0])
            meter.step_done(batch)
            if step % every == 0:
                self.guard.check(self._last_good_checkpoint())
                values = fetch(result)  # waits for the step: the window ends after it
                rate = meter.window()
                lr = float(self.table_opt.current_lr())
                parts = " | ".join(f"{k} {_fmt(v)}" for k, v in values.items())
                log.info("step %d | %.0f examples/s | %s", step, rate, parts)
                with writer.as_default():
                    for k, v in values.items():
                        write_scalar(k, v, step)
                    write_scalar("learning_rate", lr, step)
                    write_scalar("examples_per_sec", rate, step)
            if save_every and step % save_every == 0:
                self.save(step)
            if self._stop_asked(result, signals):
                signalled = True
                break
            interval = self.spec.eval.interval_steps
            if interval and step % interval == 0 and self._evaluate_during_training(step, epoch):
                stop = True
                break
            if tc.dead_line is not None and self._dead_line_passed(result):
                # EasyRec's DeadlineStopHook: checked after each step; then a checkpoint
                # and the evaluation as at the end of training
                log.info("train_config.dead_line %s passed: training stops at step %d",
                         tc.dead_line_text, step)
                break
            if (not step_examples and tc.num_epochs and epoch == tc.num_epochs - 1
                    and batch < self.spec.data.batch_size):
                # the last epoch's partial batch is the data's last: training does not wait
                # for the input pipeline to report its end (seconds, at times)
                data_ended = True
                break
        else:  # the data ran out: the last epoch ended
            data_ended = True
        if data_ended and step > start:
            stop = self._end_of_epoch(step, epoch)
        if signalled:
            return step, True
        self._save_at(step)
        if not stop and self.keeps_best:
            self._evaluate_during_training(step, epoch)  # the last step is a candidate too
        return step, False

    # ---- evaluation during training ----------------------------------------------------------
    def _log_evaluation_plan(self) -> None:
        ec, selection = self.spec.eval, self.train_spec.selection
        when = [f"every {ec.interval_steps} steps"] if ec.interval_steps else []
        if ec.interval_epochs:
            when.append("every epoch" if ec.interval_epochs == 1
                        else f"every {ec.interval_epochs} epochs")
        if not when:
            return
        if not self.dist.is_chief:
            log.info("%s: the chief evaluates %s; this worker waits for it then",
                     self.dist.cluster.name, " and ".join(when))
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
        """The model as it is at `step` is saved (so that a resumed run starts from an
        evaluated step) and evaluated; returns whether to stop.

        On a synchronous cluster every worker calls this at the same steps: each saves (the
        chief into model_dir), the chief alone evaluates, keeps the best checkpoint and
        decides early stopping, and every worker learns its decision (`chief_decides`, a
        collective the others wait in while the chief evaluates). The workers do not
        evaluate a part each: the evaluation is the one-process evaluation of the chief's
        model, exactly what `easyblocks evaluate` of the saved checkpoint gives."""
        self._save_at(step)
        self.throughput.pause()  # evaluation is not part of the training phase
        try:
            stop = self._chief_evaluation(step, epoch) if self.dist.is_chief else False
            return self.dist.chief_decides(stop)
        finally:
            self.throughput.resume()

    def _chief_evaluation(self, step: int, epoch: int) -> bool:
        """Evaluates the model as it is at `step`, logs one line and writes TensorBoard
        scalars; updates the best checkpoint and early stopping. Returns whether to stop."""
        if self._evaluated_step == step:
            return False
        self._join()  # under PSStrategy: the model of `step`, no step in flight
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
        (restored unless the model is at that step already), else the last. Only the chief
        evaluates; the other workers of a cluster wait for it (then return {})."""
        if not self.dist.is_chief:
            log.info("%s: training done at step %d; the chief evaluates",
                     self.dist.cluster.name, int(self.step.numpy()))
            self.dist.barrier()
            return {}
        try:
            return self._chief_final_evaluation()
        finally:
            self.dist.barrier()

    def _chief_final_evaluation(self) -> dict:
        self._join()
        extra: dict = self.throughput.results()
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
