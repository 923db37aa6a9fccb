"""The evaluator: runs a model over the eval input and computes every tower's metrics,
overall and per domain; prints them, writes TensorBoard scalars and eval_results.json."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import tensorflow as tf

from easyblocks.data import make_input
from easyblocks.data.csv_input import batches, expand_paths
from easyblocks.eval.metrics import compute_metrics, metrics_by_domain
from easyblocks.eval.summaries import write_scalar
from easyblocks.models.state import ModelState

log = logging.getLogger("easyblocks")


class Evaluator:
    """Evaluates a ModelState on `eval_input_path` (or the training input when unset)."""

    def __init__(self, state: ModelState):
        self.state = state
        self.spec = state.spec
        self.input = make_input(self.spec.data, state.preprocessor, self.spec.labels,
                                self.spec.eval.keep_columns)

    def predict_arrays(self, files: list[str], max_examples: int = 0) -> dict[str, np.ndarray]:
        """Runs the model over files; returns outputs, labels and kept columns as arrays."""
        data = self.spec.data
        ds = self.input.dataset(files, data.eval_batch_size, training=False)
        model = self.state.model

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
            seen += len(next(iter(labels.values())).numpy()) if labels else data.eval_batch_size
            if max_examples and seen >= max_examples:
                break
        return {k: np.concatenate(v)[: max_examples or None] for k, v in chunks.items()}

    def evaluate(self, extra: dict | None = None) -> dict:
        """AUC / logloss (/ GAUC) per tower, overall and per domain; printed and saved.

        `extra` entries (e.g. the training throughput) are added to the results.
        """
        spec, ec = self.spec, self.spec.eval
        path = spec.eval_input_path or spec.train_input_path
        files = expand_paths(path, "eval_input_path")
        self.input.check_files(files, max_lines=1000)
        arrays = self.predict_arrays(files, ec.num_examples)
        results: dict = {"step": int(self.state.step.numpy()), "eval_input_path": path,
                         **(extra or {}), "towers": {}}
        uids = arrays.get(ec.uid_field) if ec.uid_field else None
        more = {"sessions": arrays.get(ec.session_field) if ec.session_field else None,
                "session_reduction": ec.session_reduction, "topk": ec.recall_topk}
        for tower in spec.towers:
            names = list(dict.fromkeys(list(tower.metrics) + (["gauc"] if ec.uid_field else [])
                                       + list(ec.metrics)))
            labels, probs = arrays[tower.label], arrays[f"probs_{tower.name}"]
            values = arrays[f"{tower.prediction_key}_{tower.name}"]
            entry = {"label": tower.label,
                     "overall": compute_metrics(labels, probs, names, uids, ec.gauc_reduction,
                                                predictions=values, **more)}
            if ec.domain_field:
                entry["domains"] = metrics_by_domain(labels, probs, arrays[ec.domain_field],
                                                     names, uids, ec.gauc_reduction,
                                                     predictions=values, **more)
            results["towers"][tower.name] = entry
        self._report(results)
        return results

    def _report(self, results: dict) -> None:
        model_dir = self.state.model_dir
        lines = [f"evaluation at step {results['step']} on {results['eval_input_path']}:"]
        writer = tf.summary.create_file_writer(os.path.join(model_dir, "eval"))
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
        os.makedirs(model_dir, exist_ok=True)
        with open(os.path.join(model_dir, "eval_results.json"), "w") as f:
            json.dump(results, f, indent=2)
