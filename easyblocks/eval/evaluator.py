"""The evaluator: runs a model over the eval input and computes every tower's metrics,
overall and per domain; prints them, writes TensorBoard scalars and eval_results.json.

The eval input is `eval_input_path`; without it, the rows of the training input that
`eval_config.holdout_fraction` holds out (see CSVInput.lines), or else the training input.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import tensorflow as tf

from easyblocks.data import make_input
from easyblocks.data.csv_input import expand_paths
from easyblocks.errors import ConfigError
from easyblocks.eval.metrics import metric_values, strict_json
from easyblocks.eval.streaming import EXACT_ROWS, RowsMetrics
from easyblocks.eval.summaries import write_scalar
from easyblocks.files import atomic_file
from easyblocks.models.state import ModelState

log = logging.getLogger("easyblocks")


class Evaluator:
    """Evaluates a ModelState on its config's eval input; can be called repeatedly (during
    training): the input pipeline's prediction function is traced once."""

    def __init__(self, state: ModelState):
        self.state = state
        self.spec = state.spec
        self.input = make_input(self.spec.data, state.preprocessor, self.spec.labels,
                                self.spec.eval.keep_columns)
        self._predict = None
        self._writer = None
        self._checked: set[str] = set()
        self.exact_rows = EXACT_ROWS  # rows per tower and domain kept for exact metrics
        self.state_bytes = 0  # the metrics' state after the latest compute()

    def source(self) -> tuple[list[str], bool, str]:
        """(files, held out, description) of the eval input."""
        spec = self.spec
        if spec.eval_input_path:
            return expand_paths(spec.eval_input_path, "eval_input_path"), False, \
                spec.eval_input_path
        files = expand_paths(spec.train_input_path, "train_input_path")
        fraction = spec.eval.holdout_fraction
        if fraction:
            return files, True, f"the {fraction:.0%} of {spec.train_input_path} held out"
        return files, False, spec.train_input_path

    def predicted_batches(self, files: list[str], max_examples: int = 0,
                          heldout: bool = False):
        """Runs the model over files (their held-out rows when heldout); yields each batch's
        outputs, labels and kept columns as one dict of numpy arrays (up to max_examples
        rows in all when given)."""
        data = self.spec.data
        fraction = self.spec.eval.holdout_fraction if heldout else 0.0
        ds = self.input.dataset(files, data.eval_batch_size, training=False,
                                holdout_fraction=fraction, heldout=heldout)
        if self._predict is None:
            model = self.state.model

            def predict(features):
                return model(features, training=False)

            self._predict = tf.function(predict, input_signature=[ds.element_spec[0]])
        seen = 0
        for features, labels, cols in self.input.batches(ds, files):
            outputs = self._predict(features)
            batch = {k: v.numpy() for group in (outputs, labels, cols) for k, v in group.items()}
            rows = len(next(iter(labels.values()))) if labels else data.eval_batch_size
            if max_examples and seen + rows > max_examples:
                batch = {k: v[: max_examples - seen] for k, v in batch.items()}
            seen += rows
            yield batch
            if max_examples and seen >= max_examples:
                break

    def predict_arrays(self, files: list[str], max_examples: int = 0,
                       heldout: bool = False) -> dict[str, np.ndarray]:
        """predicted_batches' arrays concatenated (every row in memory: for small inputs)."""
        chunks: dict[str, list] = {}
        for batch in self.predicted_batches(files, max_examples, heldout):
            for k, v in batch.items():
                chunks.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in chunks.items()}

    def compute(self, extra: dict | None = None) -> dict:
        """AUC / logloss (/ GAUC) per tower, overall and per domain, of the model as it is
        now; `extra` entries (e.g. the training throughput) are added to the results.

        Batch by batch in bounded memory (eval/streaming.py): exact up to EXACT_ROWS rows
        per tower and domain, then from fixed-size summaries (AUC from a histogram, with its
        error bound); GAUC and session AUC keep label, score and group of every row."""
        spec, ec = self.spec, self.spec.eval
        files, heldout, where = self.source()
        if where not in self._checked:  # the first rows, once per input
            self.input.check_files(files, max_lines=1000, what="eval_input_path")
            self._checked.add(where)
        settings = {"gauc_reduction": ec.gauc_reduction,
                    "session_reduction": ec.session_reduction, "topk": ec.recall_topk,
                    "exact_rows": self.exact_rows}
        overall = {t.name: RowsMetrics(ec.tower_metrics(t), **settings) for t in spec.towers}
        domains: dict[str, dict] = {t.name: {} for t in spec.towers}
        for batch in self.predicted_batches(files, ec.num_examples, heldout):
            uids = batch.get(ec.uid_field) if ec.uid_field else None
            sessions = batch.get(ec.session_field) if ec.session_field else None
            for tower in spec.towers:
                values = batch[tower.prediction_key]
                # a regression tower has no probability: its metrics compare its value
                labels = batch[tower.label]
                probs = batch.get(f"probs_{tower.name}", values)
                overall[tower.name].update(labels, probs, values, uids, sessions)
                if not ec.domain_field:
                    continue
                column = np.asarray(batch[ec.domain_field]).reshape(-1)
                for value in np.unique(column):
                    mask = column == value
                    key = value.decode() if isinstance(value, bytes) else str(value)
                    rows = domains[tower.name].get(key)
                    if rows is None:
                        rows = domains[tower.name][key] = RowsMetrics(
                            ec.tower_metrics(tower), **settings)
                    rows.update(labels[mask], probs[mask], values[mask],
                                None if uids is None else np.asarray(uids).reshape(-1)[mask],
                                None if sessions is None
                                else np.asarray(sessions).reshape(-1)[mask])
        self.state_bytes = sum(r.state_bytes() for r in overall.values()) + sum(
            r.state_bytes() for d in domains.values() for r in d.values())
        results: dict = {"step": int(self.state.step.numpy()), "eval_input_path": where,
                         **(extra or {}), "towers": {}}
        for tower in spec.towers:
            entry = {"label": tower.label, "overall": overall[tower.name].result()}
            if ec.domain_field:
                entry["domains"] = {k: r.result() for k, r in sorted(domains[tower.name].items())}
            results["towers"][tower.name] = entry
        return results

    def evaluate(self, extra: dict | None = None, note: str = "") -> dict:
        """compute(), then the full report: printed, TensorBoard, eval_results.json."""
        results = self.compute(extra)
        self.report(results, note)
        return results

    def write_summaries(self, results: dict) -> None:
        """Every metric as a TensorBoard scalar in model_dir/eval at the results' step:
        "<tower>/<metric>" overall, "<tower>/<metric>/<domain>" per domain."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.state.model_dir, "eval"))
        with self._writer.as_default():
            for name, entry in results["towers"].items():
                rows = [("overall", entry["overall"])] + sorted(entry.get("domains", {}).items())
                for domain, m in rows:
                    suffix = "" if domain == "overall" else f"/{domain}"
                    for k, v in metric_values(m).items():
                        write_scalar(f"{name}/{k}{suffix}", v, results["step"])
        self._writer.flush()

    @staticmethod
    def summary_line(results: dict) -> str:
        """'ctr/auc 0.71234 | ctr/logloss 0.41234': the overall metrics on one line."""
        return " | ".join(f"{name}/{k} {v:.5f}" for name, entry in results["towers"].items()
                          for k, v in metric_values(entry["overall"]).items())

    def report(self, results: dict, note: str = "") -> None:
        """Logs the metrics per tower and domain, writes TensorBoard scalars and
        model_dir/eval_results.json. `note` follows the header (e.g. which checkpoint)."""
        model_dir = self.state.model_dir
        lines = [f"evaluation at step {results['step']} on {results['eval_input_path']}"
                 f"{note}:"]
        for name, entry in results["towers"].items():
            rows = [("overall", entry["overall"])] + sorted(entry.get("domains", {}).items())
            for domain, m in rows:
                undefined = m.get("undefined", {})
                metrics = "  ".join(
                    f"{k} n/a ({undefined[k]})" if k in undefined else f"{k} {v:.4f}"
                    for k, v in m.items() if k not in ("count", "undefined"))
                label = name if domain == "overall" else f"{name} [{domain}]"
                lines.append(f"  {label:<28} {metrics}  (n={int(m['count'])})")
        self.write_summaries(results)
        log.info("\n".join(lines))
        write_json(os.path.join(model_dir, "eval_results.json"), results)


def write_json(path: str, results: dict) -> None:
    """Writes results as strict JSON (an undefined metric is null; its reason is under
    "undefined"), through a temporary file renamed into place."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with atomic_file(path) as f:
            json.dump(strict_json(results), f, indent=2, allow_nan=False)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror} (is the model_dir writable?)") \
            from None
