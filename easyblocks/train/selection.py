"""Model selection during training: the best checkpoint by an evaluation metric, and early
stopping when that metric stops improving.

The best checkpoints live in model_dir/best, a directory of their own with its own
`tf.train.CheckpointManager`, so the rotation of the training checkpoints
(keep_checkpoint_max) never deletes them. They hold the model's variables and the step,
not the optimizer slots: they are for evaluation, export and predict. Every evaluation's
value is recorded in model_dir/best/history.json, so that a resumed run continues the
comparison (and knows when it had already stopped early).
"""

from __future__ import annotations

import json
import math
import os

import tensorflow as tf

from easyblocks.config.specs import SelectionSpec
from easyblocks.models.state import BEST_DIR

HISTORY = "history.json"


def metric_value(results: dict, metric: str) -> float:
    """The "tower/metric" value of an evaluation's results (NaN when not computable)."""
    tower, name = metric.split("/")
    return float(results["towers"][tower]["overall"].get(name, math.nan))


class BestCheckpoint:
    """Keeps the `spec.keep` best checkpoints by `spec.metric` in model_dir/best.

    Args:
        spec: which metric, which direction, how many to keep.
        checkpoint: a checkpoint of the model's variables and step (no optimizer).
        model_dir: the training's model_dir.
    """

    def __init__(self, spec: SelectionSpec, checkpoint: tf.train.Checkpoint, model_dir: str):
        self.spec = spec
        self.directory = os.path.join(model_dir, BEST_DIR)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory,
                                                  max_to_keep=spec.keep)
        self.history: list[dict] = []  # {"step", "epoch", "value"} per evaluation
        self.best: dict | None = None  # {"step", "epoch", "value", "checkpoint"}
        self.stopped: dict | None = None  # {"step", "reason"} once early stopping ended it
        self._load()

    def _load(self) -> None:
        path = os.path.join(self.directory, HISTORY)
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if record.get("metric") != self.spec.metric or record.get("bigger") != self.spec.bigger:
            return  # another metric now: start the comparison afresh
        self.history = record["evaluations"]
        self.best = record["best"]
        self.stopped = record.get("stopped")

    def _save(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        record = {"metric": self.spec.metric, "bigger": self.spec.bigger,
                  "evaluations": self.history, "best": self.best, "stopped": self.stopped}
        path = os.path.join(self.directory, HISTORY)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.replace(path + ".tmp", path)  # a kill never leaves half a record

    def is_better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best["value"] if self.spec.bigger else value < self.best["value"]

    def update(self, step: int, epoch: int, results: dict) -> bool:
        """Records an evaluation of the model as it is now (at `step`); when it is the best
        so far, saves the model into model_dir/best. Returns whether it improved."""
        value = metric_value(results, self.spec.metric)
        improved = self.is_better(value)
        self.history.append({"step": step, "epoch": epoch, "value": value})
        if improved:
            path = self.manager.save(checkpoint_number=step)
            self.best = {"step": step, "epoch": epoch, "value": value, "checkpoint": path}
        self._save()
        return improved

    def mark_stopped(self, step: int, reason: str) -> None:
        self.stopped = {"step": step, "reason": reason}
        self._save()

    def describe(self) -> str:
        """'best clk/auc 0.71234 at step 40', or that none is known yet."""
        if self.best is None:
            return f"no {self.spec.metric} yet"
        return f"best {self.spec.metric} {self.best['value']:.5f} at step {self.best['step']}"


class EarlyStopping:
    """Stops training when the best checkpoint has not improved for `patience` evaluations
    (spec.patience > 0), else for max_check_steps steps (EasyRec's rule: stop once the
    evaluated step is max_check_steps or more past the best one)."""

    def __init__(self, spec: SelectionSpec, best: BestCheckpoint):
        self.spec = spec
        self.best = best

    def evaluations_since_best(self) -> int:
        if self.best.best is None:
            return len(self.best.history)
        best_step = self.best.best["step"]
        # the evaluations after the best one (a resumed run may evaluate a step again)
        index = max(i for i, e in enumerate(self.best.history) if e["step"] == best_step)
        return len(self.best.history) - 1 - index

    def progress(self) -> str:
        """'no improvement for 2/3 evaluations' (or steps)."""
        if self.spec.patience:
            return f"no improvement for {self.evaluations_since_best()}/{self.spec.patience} " \
                   "evaluations"
        return f"no improvement for {self.steps_since_best()}/{self.spec.max_check_steps} steps"

    def steps_since_best(self) -> int:
        if not self.best.history:
            return 0
        last = self.best.history[-1]["step"]
        first = self.best.best["step"] if self.best.best else self.best.history[0]["step"]
        return last - first

    def should_stop(self) -> str | None:
        """Why training should stop now (None: go on)."""
        if self.spec.patience:
            if self.evaluations_since_best() >= self.spec.patience:
                return (f"{self.spec.metric} has not improved for {self.spec.patience} "
                        f"evaluations ({self.best.describe()})")
            return None
        if self.best.best is not None and self.steps_since_best() >= self.spec.max_check_steps:
            return (f"{self.spec.metric} has not improved for {self.steps_since_best()} steps, "
                    f"max_check_steps {self.spec.max_check_steps} ({self.best.describe()})")
        return None
