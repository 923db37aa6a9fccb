"""Evaluation during training: intervals, the held-out split, the best checkpoint and early
stopping, on tiny generated data that a small MLP overfits within a few epochs."""

from __future__ import annotations

import glob
import json
import logging
import os
import random
import re

import pytest
import tensorflow as tf
from conftest import tiny_config

from easyblocks import api
from easyblocks.config.loader import parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError

MLP = ('backbone { blocks { name: "m" inputs { feature_group_name: "all" } '
       'keras_layer { class_name: "MLP" mlp { hidden_units: [32, 16] use_bn: false '
       'use_final_bn: false use_bias: true use_final_bias: true } } } concat_blocks: "m" }')


def rows(n: int, seed: int, first_user: int = 0) -> str:
    """TINY_DATA rows: clk is 1 with probability 0.8 when price > 0.5, else 0.2; every row
    has its own user id (something to memorise), so a few epochs overfit."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        price = r.random()
        clk = int(r.random() < (0.8 if price > 0.5 else 0.2))
        out.append(f"{clk},0,u{first_user + i},t{r.randrange(5)},{price:.4f}")
    return "\n".join(out) + "\n"


def write_run(tmp_path, extra: str, num_epochs: int, train_rows: int = 64,
              eval_rows: int | None = 200, batch_size: int = 8) -> str:
    """Writes train.csv (and eval.csv) and a config; returns the config's path."""
    (tmp_path / "train.csv").write_text(rows(train_rows, 1))
    paths = f'train_input_path: "{tmp_path}/train.csv" model_dir: "{tmp_path}/m"\n'
    if eval_rows:
        (tmp_path / "eval.csv").write_text(rows(eval_rows, 2, first_user=10000))
        paths += f'eval_input_path: "{tmp_path}/eval.csv"\n'
    text = tiny_config(MLP, paths + extra).replace(
        "batch_size: 4\n  num_epochs: 1", f"batch_size: {batch_size} num_epochs: {num_epochs}")
    path = tmp_path / "run.config"
    path.write_text(text)
    return str(path)


ADAM = ("optimizer_config { adam_optimizer { learning_rate { constant_learning_rate { "
        "learning_rate: 0.01 } } } }")


def eval_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("eval at step")]


def eval_event_steps(model_dir: str, tag: str) -> list[int]:
    steps = []
    for path in sorted(glob.glob(os.path.join(model_dir, "eval", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epoch_and_reports_it(tmp_path, caplog):
    """Training stops `patience` evaluations after the best one; the final report is that
    checkpoint's, equal to a fresh evaluation of it; rotation (keep 1) never deletes it."""
    patience, epochs, steps_per_epoch = 3, 40, 8  # 64 rows / batch 8
    config = write_run(tmp_path, f"train_config {{ {ADAM} save_checkpoints_steps: 4 "
                       "keep_checkpoint_max: 1 log_step_count_steps: 1000 }\n"
                       'export_config { best_exporter_metric: "logloss" '
                       f"early_stop_patience: {patience} }}\n", num_epochs=epochs)
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        results = api.train(config)
    history = json.loads((tmp_path / "m" / "best" / "history.json").read_text())
    values = [e["value"] for e in history["evaluations"]]
    best = min(range(len(values)), key=values.__getitem__)
    # one evaluation per epoch, at its last step; none after the stop
    assert [e["step"] for e in history["evaluations"]] == \
        [steps_per_epoch * (i + 1) for i in range(len(values))]
    assert len(eval_lines(caplog)) == len(values)
    # stopped exactly `patience` evaluations after the best, long before the 40 epochs
    assert len(values) == best + 1 + patience < epochs
    stopped = results["selection"]["stopped_early"]
    assert stopped["step"] == history["evaluations"][-1]["step"]
    assert tf.train.latest_checkpoint(str(tmp_path / "m")).endswith(f"-{stopped['step']}")
    # the final metrics are the best checkpoint's, and a fresh evaluation agrees
    best_step = history["evaluations"][best]["step"]
    assert results["step"] == best_step
    assert results["checkpoint"] == str(tmp_path / "m" / "best" / f"ckpt-{best_step}")
    assert results["towers"]["clk"]["overall"]["logloss"] == pytest.approx(values[best],
                                                                           rel=1e-9)
    fresh = api.evaluate(config, checkpoint="best")
    assert fresh["checkpoint"] == results["checkpoint"]
    for name in ("auc", "logloss"):
        assert fresh["towers"]["clk"]["overall"][name] == pytest.approx(
            results["towers"]["clk"]["overall"][name], rel=1e-6)
    assert api.evaluate(config)["step"] == best_step  # the default: the best checkpoint
    assert api.evaluate(config, checkpoint="latest")["step"] == stopped["step"]
    # the best one survived the rotation of the training checkpoints (keep_checkpoint_max 1)
    assert tf.train.get_checkpoint_state(str(tmp_path / "m")).all_model_checkpoint_paths == [
        str(tmp_path / "m" / f"ckpt-{stopped['step']}")]
    # training again does not go on past the stop
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        again = api.train(config)
    assert "early stopping ended this training" in caplog.text
    assert again["step"] == best_step and eval_lines(caplog) == []


@pytest.mark.slow
def test_best_checkpoints_survive_rotation(tmp_path):
    """exporter_type "best" without early stopping: model_dir/best keeps the last
    exports_to_keep improvements while keep_checkpoint_max 1 rotates the others away."""
    config = write_run(tmp_path, f"train_config {{ {ADAM} save_checkpoints_steps: 2 "
                       "keep_checkpoint_max: 1 log_step_count_steps: 1000 }\n"
                       'export_config { exporter_type: "best" best_exporter_metric: "logloss" '
                       "exports_to_keep: 2 }\n", num_epochs=8)
    results = api.train(config)
    history = json.loads((tmp_path / "m" / "best" / "history.json").read_text())
    evaluations = history["evaluations"]
    assert [e["step"] for e in evaluations] == [8 * (i + 1) for i in range(8)]
    improvements, best_so_far = [], float("inf")
    for e in evaluations:
        if e["value"] < best_so_far:
            improvements.append(e["step"])
            best_so_far = e["value"]
    assert improvements[-1] < 64, "the data must overfit before the last epoch"
    kept = tf.train.get_checkpoint_state(str(tmp_path / "m" / "best"))
    assert [os.path.basename(p) for p in kept.all_model_checkpoint_paths] == [
        f"ckpt-{s}" for s in improvements[-2:]]
    assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(
        str(tmp_path / "m")).all_model_checkpoint_paths] == ["ckpt-64"]
    assert results["step"] == improvements[-1] and results["selection"]["stopped_early"] is None
    assert results["towers"]["clk"]["overall"]["logloss"] == pytest.approx(best_so_far)


@pytest.mark.slow
def test_evaluation_every_n_steps(tmp_path, caplog):
    """eval_interval_steps 3: one line and one TensorBoard point per evaluation at steps
    3, 6, 9, ... across the epoch boundary (8 steps per epoch), and none in between."""
    config = write_run(tmp_path, f"train_config {{ {ADAM} num_steps: 14 "
                       "log_step_count_steps: 1000 }\n"
                       "eval_config { eval_interval_steps: 3 }\n", num_epochs=2)
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        results = api.train(config)
    lines = eval_lines(caplog)
    assert [int(re.match(r"eval at step (\d+)", x).group(1)) for x in lines] == [3, 6, 9, 12]
    assert [re.search(r"\(epoch (\d)\)", x).group(1) for x in lines] == ["1", "1", "2", "2"]
    assert all(re.search(r"clk/auc 0\.\d{5} \| clk/logloss \d\.\d{5}$", x) for x in lines)
    model_dir = str(tmp_path / "m")
    # the evaluations during training, then the final one (at step 14)
    assert eval_event_steps(model_dir, "clk/auc") == [3, 6, 9, 12, 14]
    assert results["step"] == 14 and "selection" not in results


@pytest.mark.slow
def test_evaluation_every_epoch_and_at_the_end(tmp_path, caplog):
    config = write_run(tmp_path, f"train_config {{ {ADAM} log_step_count_steps: 1000 }}\n"
                       "eval_config { eval_interval_epochs: 2 }\n", num_epochs=5,
                       train_rows=20, batch_size=8)  # 3 steps per epoch, the last one partial
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        results = api.train(config)
    steps = [int(re.match(r"eval at step (\d+)", x).group(1)) for x in eval_lines(caplog)]
    assert steps == [6, 12]  # after epochs 2 and 4; epoch 5 ends training
    assert results["step"] == 15


def heldout_users(tmp_path, fraction: float) -> tuple[list[str], list[str]]:
    """The user column of the training rows and of the held-out rows, as the training and
    the evaluation read them."""
    from easyblocks.data.csv_input import CSVInput
    from easyblocks.models.build import build_and_initialize

    config = write_run(tmp_path, f"eval_config {{ holdout_fraction: {fraction} }}\n",
                       num_epochs=1, train_rows=400, eval_rows=None)
    spec = resolve(parse_config_text(open(config).read(), config))
    _, pre = build_and_initialize(spec)
    reader = CSVInput(spec.data, pre, spec.labels, ["user"])
    files = [str(tmp_path / "train.csv")]
    train = [u.decode() for _, _, cols, _ in reader.dataset(
        files, 7, training=True, num_epochs=2, seed=3, holdout_fraction=fraction)
        for u in cols["user"].numpy()]
    held = [u.decode() for _, _, cols in reader.dataset(
        files, 7, training=False, holdout_fraction=fraction, heldout=True)
        for u in cols["user"].numpy()]
    return train, held


def test_heldout_rows_never_overlap_training_rows(tmp_path):
    train, held = heldout_users(tmp_path, 0.25)
    everyone = {f"u{i}" for i in range(400)}
    assert len(train) == 2 * len(set(train))  # two epochs of the same rows
    assert set(train).isdisjoint(held) and set(train) | set(held) == everyone
    assert len(held) == len(set(held)) and 60 <= len(held) <= 140  # about a quarter
    # deterministic: the same split again
    assert heldout_users(tmp_path, 0.25)[1] == held


@pytest.mark.slow
def test_training_evaluates_on_the_heldout_rows(tmp_path):
    config = write_run(tmp_path, f"train_config {{ {ADAM} log_step_count_steps: 1000 }}\n"
                       "eval_config { holdout_fraction: 0.25 }\n"
                       'export_config { exporter_type: "best" }\n', num_epochs=2,
                       train_rows=400, eval_rows=None)
    results = api.train(config)
    assert results["eval_input_path"].startswith("the 25% of ")
    # the count of held-out rows: what the split gives (rows hashed as the input reads them)
    from easyblocks.data.csv_input import HOLDOUT_BUCKETS

    lines = tf.constant((tmp_path / "train.csv").read_text().splitlines())
    expected = int(tf.reduce_sum(tf.cast(tf.strings.to_hash_bucket_fast(
        lines, HOLDOUT_BUCKETS) < int(0.25 * HOLDOUT_BUCKETS), tf.int32)))
    assert results["towers"]["clk"]["overall"]["count"] == expected
    # 400 rows minus the held-out ones, batch 8, two epochs (each ends with its own batch)
    per_epoch = -(-(400 - expected) // 8)
    assert results["selection"]["evaluations"] == 2
    assert tf.train.latest_checkpoint(str(tmp_path / "m")).endswith(f"-{2 * per_epoch}")


# ---- config -----------------------------------------------------------------------------

def spec_of(extra: str, model: str = MLP, epochs: int = 1, eval_path: bool = True):
    paths = 'train_input_path: "t.csv"\n' + ('eval_input_path: "e.csv"\n' if eval_path else "")
    text = tiny_config(model, paths + extra).replace("batch_size: 4\n  num_epochs: 1",
                                                     f"batch_size: 4 num_epochs: {epochs}")
    if "task_towers" in model:
        text = text.replace('"RankModel"', '"MultiTaskModel"')
    return resolve(parse_config_text(text, "x.config"))


def test_selection_defaults_and_metric_names():
    assert spec_of("").train.selection is None
    s = spec_of('export_config { exporter_type: "best" }')
    assert (s.train.selection.metric, s.train.selection.bigger) == ("clk/auc", True)
    assert not s.train.selection.early_stop
    # one epoch: evaluate at every checkpoint save; several: every epoch
    assert (s.eval.interval_steps, s.eval.interval_epochs) == (1000, 0)
    s = spec_of("export_config { enable_early_stop: true }", epochs=5)
    assert (s.eval.interval_steps, s.eval.interval_epochs) == (0, 1)
    assert s.train.selection.early_stop and s.train.selection.max_check_steps == 10000
    s = spec_of('export_config { best_exporter_metric: "logloss" early_stop_patience: 2 }')
    assert (s.train.selection.metric, s.train.selection.bigger) == ("clk/logloss", False)
    assert s.train.selection.early_stop and s.train.selection.patience == 2
    s = spec_of('export_config { exporter_type: "best" best_exporter_metric: "auc_clk" '
                "metric_bigger: false }")  # EasyRec's name form; an explicit direction wins
    assert (s.train.selection.metric, s.train.selection.bigger) == ("clk/auc", False)
    s = spec_of('eval_config { eval_interval_steps: 7 } export_config { exporter_type: "best" }')
    assert (s.eval.interval_steps, s.eval.interval_epochs) == (7, 0)


TWO_TOWERS = """
backbone { blocks { name: "m" inputs { feature_group_name: "all" }
  keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } } concat_blocks: "m" }
model_params {
  task_towers { tower_name: "ctr" label_name: "clk" }
  task_towers { tower_name: "cvr" label_name: "buy" }
}
"""


@pytest.mark.parametrize("extra, eval_path, message", [
    ('export_config { exporter_type: "bset" }', True, "'bset' is not one of final, latest, "
     "best, none (did you mean: best?)"),
    ('export_config { exporter_type: "best" best_exporter_metric: "acu" }', True,
     "'acu' is not a metric of this config (did you mean: clk/auc?)"),
    ("export_config { enable_early_stop: true }", False,
     "early stopping needs rows the model does not train on: set eval_input_path or "
     "eval_config.holdout_fraction"),
    ("eval_config { holdout_fraction: 0.2 }", True, "keep one of the two"),
    ("eval_config { holdout_fraction: 1.0 }", False, "must be at least 0 and below 1"),
    ("export_config { enable_early_stop: true max_check_steps: 0 }", True,
     "max_check_steps must be positive"),
    ("export_config { exporter_type: 'best' exports_to_keep: 0 }", True,
     "exports_to_keep must be at least 1"),
])
def test_selection_errors(extra, eval_path, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        spec_of(extra, eval_path=eval_path)


def test_metric_of_several_towers_must_name_the_tower():
    with pytest.raises(ConfigError, match=re.escape(
            "'auc' is ambiguous with towers ctr, cvr; name one of: ctr/auc, ctr/logloss, "
            "cvr/auc, cvr/logloss")):
        spec_of('export_config { exporter_type: "best" }', model=TWO_TOWERS)
    s = spec_of('export_config { exporter_type: "best" best_exporter_metric: "cvr/logloss" }',
                model=TWO_TOWERS)
    assert (s.train.selection.metric, s.train.selection.bigger) == ("cvr/logloss", False)


@pytest.mark.slow
def test_resume_mid_epoch_evaluates_like_an_uninterrupted_run(tmp_path):
    """Stopped at step 12 (mid-epoch 2) and resumed: the same batches follow (skipped, each
    epoch reshuffled alike), so the evaluations at the ends of epochs 2 and 3 and the best
    checkpoint equal those of a run that was never stopped."""
    extra = (f"train_config {{ {ADAM} log_step_count_steps: 1000 save_checkpoints_steps: 4 }}\n"
             'export_config { exporter_type: "best" best_exporter_metric: "logloss" }\n')
    (tmp_path / "whole").mkdir()
    (tmp_path / "parts").mkdir()
    whole = write_run(tmp_path / "whole", extra, num_epochs=3)
    parts = write_run(tmp_path / "parts", extra, num_epochs=3)
    expected = api.train(whole)
    first = api.train(parts, num_steps=12)
    assert first["step"] in (8, 12)  # the better of the evaluations at steps 8 and 12
    resumed = api.train(parts)
    histories = [json.loads((tmp_path / d / "m" / "best" / "history.json").read_text())
                 for d in ("whole", "parts")]
    assert [e["step"] for e in histories[0]["evaluations"]] == [8, 16, 24]
    # the stopped run also evaluated its last step (12), a candidate like any other
    assert [e["step"] for e in histories[1]["evaluations"]] == [8, 12, 16, 24]
    whole_values = {e["step"]: e["value"] for e in histories[0]["evaluations"]}
    for e in histories[1]["evaluations"]:
        if e["step"] in whole_values:
            assert e["value"] == pytest.approx(whole_values[e["step"]], rel=1e-5), e
    assert resumed["step"] == expected["step"]
    assert resumed["towers"]["clk"]["overall"]["logloss"] == pytest.approx(
        expected["towers"]["clk"]["overall"]["logloss"], rel=1e-5)


def test_early_stopping_rules(tmp_path):
    """EasyRec's max_check_steps (steps since the best) and patience (evaluations since the
    best); NaN never counts as an improvement; the record survives a new process."""
    from easyblocks.config.specs import SelectionSpec
    from easyblocks.train.selection import BestCheckpoint, EarlyStopping

    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)

    def results(value):
        return {"towers": {"clk": {"overall": {"auc": value}}}}

    def run(spec, values, model_dir):
        best = BestCheckpoint(spec, checkpoint, str(model_dir))
        stopping = EarlyStopping(spec, best)
        decisions = []
        for s, v in values:
            step.assign(s)
            best.update(s, 1, results(v))
            decisions.append(stopping.should_stop() is not None)
        return best, decisions

    by_steps = SelectionSpec("clk/auc", early_stop=True, max_check_steps=10)
    best, stops = run(by_steps, [(5, 0.6), (10, 0.7), (15, 0.65), (20, 0.69)], tmp_path / "a")
    assert stops == [False, False, False, True] and best.best["step"] == 10
    assert os.path.basename(best.best["checkpoint"]) == "ckpt-10"
    by_evals = SelectionSpec("clk/auc", early_stop=True, patience=2)
    best, stops = run(by_evals, [(1, 0.6), (2, float("nan")), (3, 0.61), (4, 0.61), (5, 0.5)],
                      tmp_path / "b")
    assert stops == [False, False, False, False, True] and best.best["step"] == 3
    smaller = SelectionSpec("clk/auc", bigger=False, early_stop=True, patience=1)
    best, stops = run(smaller, [(1, 0.6), (2, 0.5), (3, 0.55)], tmp_path / "c")
    assert stops == [False, False, True] and best.best["step"] == 2
    again = BestCheckpoint(smaller, checkpoint, str(tmp_path / "c"))  # a resumed run
    assert again.best == best.best and len(again.history) == 3
    assert EarlyStopping(smaller, again).should_stop() is not None


def test_checkpoint_choice_without_a_best_one(tmp_path):
    from easyblocks.models.state import ModelState

    state = ModelState(spec_of('export_config { exporter_type: "best" }'), str(tmp_path))
    tf.train.CheckpointManager(state.checkpoint(), str(tmp_path), 1).save(checkpoint_number=3)
    with pytest.raises(ConfigError, match="no best checkpoint in .*best: training keeps one"):
        state.find_checkpoint("best")
    # the default falls back to the latest (None: the newest readable one, found on restore)
    # until training has written a best one
    assert state.find_checkpoint(None) is None and state.find_checkpoint("latest") is None
    assert state.restore() == str(tmp_path / "ckpt-3")


def test_selection_by_easyrec_metrics_of_regression_and_eval_config():
    # a regression tower's errors (EasyRec's names) are smaller-is-better; EasyRec's
    # "<metric>_<tower>" works with metric names that have "_" too; eval_config's other
    # metrics (max_f1) can be monitored
    regression = MLP + "\nloss_type: L2_LOSS"
    s = spec_of('export_config { exporter_type: "best" '
                'best_exporter_metric: "mean_squared_error" }', model=regression)
    assert (s.train.selection.metric, s.train.selection.bigger) == (
        "clk/mean_squared_error", False)
    s = spec_of('export_config { exporter_type: "best" '
                'best_exporter_metric: "mean_absolute_error_clk" }', model=regression)
    assert (s.train.selection.metric, s.train.selection.bigger) == (
        "clk/mean_absolute_error", False)
    s = spec_of('eval_config { metrics_set { max_f1 {} } } '
                'export_config { exporter_type: "best" best_exporter_metric: "max_f1" }')
    assert (s.train.selection.metric, s.train.selection.bigger) == ("clk/max_f1", True)
    with pytest.raises(ConfigError, match=re.escape("'auc' is not a metric of this config")):
        spec_of('export_config { exporter_type: "best" best_exporter_metric: "auc" }',
                model=regression)
