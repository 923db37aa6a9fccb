"""The training loop: one custom loop (strategy.run inside a tf.function) for every
distribution strategy, checkpoints with automatic resume, progress lines,
TensorBoard summaries, and the final evaluation.

`model.fit` is not used: under MultiWorkerMirroredStrategy it fails inside Keras 3
on this TensorFlow (DESIGN section 4), while a custom loop trains.
"""

from __future__ import annotations

import json
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from easyblocks.config.validate import ResolvedConfig
from easyblocks.data.csv_input import CSVInput, batches, expand_paths, find_bad_line
from easyblocks.errors import ConfigError
from easyblocks.models.build import build_and_initialize
from easyblocks.train.metrics import compute_metrics, metrics_by_domain
from easyblocks.train.optimizers import SparseTableOptimizer, dense_optimizer
from easyblocks.train.summaries import write_scalar

log = logging.getLogger("easyblocks")


def make_strategy(train_config) -> tf.distribute.Strategy:
    from easyblocks.protos import train_pb2

    name = train_pb2.DistributionStrategy.Name(train_config.train_distribute)
    if name == "NoStrategy":
        return tf.distribute.get_strategy()
    raise ConfigError(f"train_config.train_distribute: {name} is not supported yet; "
                      "use NoStrategy")


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


def _fmt(value: float) -> str:
    return f"{value:.5f}" if abs(value) < 100 else f"{value:.1f}"


class Trainer:
    """Builds the model, optimizers, checkpoint and inputs of a validated config."""

    def __init__(self, resolved: ResolvedConfig, model_dir: str | None = None):
        self.resolved = resolved
        config = resolved.proto
        self.config = config
        self.model_dir = model_dir or config.model_dir
        if not self.model_dir:
            raise ConfigError(f"{resolved.path}: no model_dir (set it in the config or pass "
                              "--model_dir)")
        self.train_config = config.train_config
        keras.utils.set_random_seed(self.train_config.seed)
        self.strategy = make_strategy(self.train_config)
        with self.strategy.scope():
            self.model, self.preprocessor = build_and_initialize(resolved)
            self.tables = self.model.feature_groups.table_variables
            table_ids = {id(t) for t in self.tables}
            self.dense_vars = [v for v in self.model.trainable_variables if id(v) not in table_ids]
            self.dense_opt = dense_optimizer(self.train_config)
            self.dense_opt.build(self.dense_vars)
            self.table_opt = SparseTableOptimizer(self.train_config, self.tables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.checkpoint = tf.train.Checkpoint(model=ModelVariables(self.model),
                                              optimizer=self.dense_opt,
                                              table_optimizer=self.table_opt, step=self.step)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.model_dir,
            max_to_keep=self.train_config.keep_checkpoint_max or None,
        )
        labels = sorted({t.label for t in resolved.towers})
        keep = [config.eval_config.domain_field] if config.eval_config.domain_field else []
        keep += [m.gauc.uid_field for m in config.eval_config.metrics_set
                 if m.WhichOneof("metric") == "gauc"]
        self.train_examples_per_sec: float | None = None
        self.input = CSVInput(config.data_config, self.preprocessor, labels, sorted(set(keep)))

    # ---- checkpoints -------------------------------------------------------------------------
    def restore(self, checkpoint: str | None = None, required: bool = False) -> str | None:
        """Restores the given or latest checkpoint; returns its path (None if none)."""
        path = checkpoint or self.manager.latest_checkpoint
        if path is None:
            if required:
                raise ConfigError(f"no checkpoint in {self.model_dir}: train first")
            return None
        status = self.checkpoint.restore(path)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise ConfigError(f"checkpoint {path} does not fit this config's model (was it "
                              f"written by another config?): {str(e).splitlines()[0]}") from None
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
        tc, data = self.train_config, self.config.data_config
        files = expand_paths(self.config.train_input_path, "train_input_path")
        find_bad_line(files, data, max_lines=1000)
        restored = self.restore()
        start = int(self.step.numpy())
        if restored:
            log.info("resumed from %s at step %d", restored, start)
        if tc.num_steps and start >= tc.num_steps:
            log.info("already trained to step %d (num_steps %d)", start, tc.num_steps)
        else:
            self._train_loop(files, start)
        return self.evaluate()

    def _train_loop(self, files: list[str], start: int) -> None:
        tc, data = self.train_config, self.config.data_config
        num_epochs = data.num_epochs if data.num_epochs or not tc.num_steps else 0
        ds = self.input.dataset(files, data.batch_size, training=True, num_epochs=num_epochs,
                                skip_batches=start, seed=tc.seed)
        train_step = self._train_step_fn(ds.element_spec)
        ds = self.strategy.experimental_distribute_dataset(ds)
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
        every = max(tc.log_step_count_steps, 1)
        save_every = tc.save_checkpoints_steps
        t0, examples, step = time.perf_counter(), 0, start
        # throughput after the first log window (which includes tracing the step)
        steady_t0, steady_examples = None, 0
        log.info("training %s from step %d%s", self.resolved.path, start,
                 f" to {tc.num_steps}" if tc.num_steps else f" for {num_epochs} epoch(s)")
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

    # ---- evaluation --------------------------------------------------------------------------
    def predict_arrays(self, files: list[str], max_examples: int = 0):
        """Runs the model over files; returns (outputs, labels, columns) as numpy arrays."""
        data = self.config.data_config
        batch = data.eval_batch_size or max(data.batch_size, 1024)
        ds = self.input.dataset(files, batch, training=False)
        model = self.model

        def predict(features):
            return model(features, training=False)

        predict = tf.function(predict, input_signature=[ds.element_spec[0]])

        chunks: dict[str, list] = {}
        seen = 0
        for features, labels, cols in batches(ds, files, data):
            outputs = predict(features)
            for group in (outputs, labels, cols):
                for k, v in group.items():
                    chunks.setdefault(k, []).append(v.numpy())
            seen += len(next(iter(labels.values())).numpy()) if labels else batch
            if max_examples and seen >= max_examples:
                break
        return {k: np.concatenate(v)[: max_examples or None] for k, v in chunks.items()}

    def evaluate(self) -> dict:
        """AUC / logloss (/ GAUC) per tower, overall and per domain; printed and saved."""
        ec = self.config.eval_config
        path = self.config.eval_input_path or self.config.train_input_path
        files = expand_paths(path, "eval_input_path")
        find_bad_line(files, self.config.data_config, max_lines=1000)
        arrays = self.predict_arrays(files, ec.num_examples)
        first_gauc = next((m.gauc for m in ec.metrics_set if m.WhichOneof("metric") == "gauc"),
                          None)
        uid_field = first_gauc.uid_field if first_gauc else None
        reduction = first_gauc.reduction if first_gauc else "mean"
        results: dict = {"step": int(self.step.numpy()), "eval_input_path": path,
                         "train_examples_per_sec": self.train_examples_per_sec, "towers": {}}
        for tower in self.resolved.towers:
            names = list(tower.metrics) + (["gauc"] if uid_field else [])
            labels, probs = arrays[tower.label], arrays[f"probs_{tower.name}"]
            uids = arrays.get(uid_field)
            entry = {"label": tower.label,
                     "overall": compute_metrics(labels, probs, names, uids, reduction)}
            if ec.domain_field:
                entry["domains"] = metrics_by_domain(labels, probs, arrays[ec.domain_field],
                                                     names, uids, reduction)
            results["towers"][tower.name] = entry
        self._report(results)
        return results

    def _report(self, results: dict) -> None:
        lines = [f"evaluation at step {results['step']} on {results['eval_input_path']}:"]
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "eval"))
        with writer.as_default():
            for name, entry in results["towers"].items():
                rows = [("overall", entry["overall"])] + sorted(entry.get("domains", {}).items())
                for domain, m in rows:
                    metrics = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "count")
                    label = name if domain == "overall" else f"{name} [{domain}]"
                    lines.append(f"  {label:<28} {metrics}  (n={int(m['count'])})")
                    for k, v in m.items():
                        if k != "count":
                            suffix = "" if domain == "overall" else f"/{domain}"
                            write_scalar(f"{name}/{k}{suffix}", v, results["step"])
        writer.flush()
        log.info("\n".join(lines))
        os.makedirs(self.model_dir, exist_ok=True)
        with open(os.path.join(self.model_dir, "eval_results.json"), "w") as f:
            json.dump(results, f, indent=2)
