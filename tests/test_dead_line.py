"""EasyRec's train_config.dead_line: training stops after the first step that ends past it,
saves a checkpoint there and evaluates as at the end of training."""

import datetime
import logging
import os

import pytest
import tensorflow as tf
from conftest import tiny_config
from reliability_helpers import make_run

from easyblocks.config.loader import load_config, parse_config_text
from easyblocks.config.resolve import resolve
from easyblocks.errors import ConfigError
from easyblocks.train import distribute, loop


def spec_with(dead_line: str):
    text = f"train_config {{\n  num_steps: 5\n  dead_line: '{dead_line}'\n}}\n" + tiny_config(
        'backbone { blocks { name: "b" inputs { feature_group_name: "all" } } }')
    return resolve(parse_config_text(text, "t.config"))


def test_both_of_easyrecs_forms_and_a_bad_one_is_one_line():
    local = datetime.datetime(2030, 1, 2, 3, 4, 5).timestamp()  # local time, as EasyRec
    spec = spec_with("20300102 03:04:05")
    assert (spec.train.dead_line, spec.train.dead_line_text) == (local, "20300102 03:04:05")
    assert spec_with("1893456000").train.dead_line == 1893456000.0
    for bad in ("2030-01-02 03:04", "20301302 03:04:05", "tomorrow"):
        with pytest.raises(ConfigError) as e:
            spec_with(bad)
        assert str(e.value) == (
            "t.config:3: train_config.dead_line: expected 'YYYYmmdd HH:MM:SS' (local time) or "
            f"10-digit Unix seconds, got {bad!r}")


def train(tmp_path, dead_line: str):
    run = make_run(tmp_path, num_steps=10, save_every=100, log_every=1,
                   extra=f"train_config {{ dead_line: '{dead_line}' }}\n")
    spec = resolve(load_config(run["config"]))
    trainer = loop.Trainer(spec)
    metrics = trainer.train()
    return run, trainer, metrics


def test_training_stops_after_the_step_that_ends_past_the_dead_line(tmp_path, monkeypatch,
                                                                        caplog):
    calls = []

    def clock():  # before the dead line for two steps, past it after the third
        calls.append(1)
        return 1893456000.0 + (1 if len(calls) >= 3 else -1)

    monkeypatch.setattr(loop, "wall_clock", clock)
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        run, trainer, metrics = train(tmp_path, "1893456000")
    assert int(trainer.step.numpy()) == 3 and len(calls) == 3
    assert "train_config.dead_line 1893456000 passed: training stops at step 3" in caplog.text
    assert tf.train.latest_checkpoint(run["model_dir"]) == os.path.join(run["model_dir"],
                                                                        "ckpt-3")
    assert metrics["checkpoint"].endswith("ckpt-3")  # evaluated there


def test_a_dead_line_already_past_trains_one_step_as_easyrec(tmp_path):
    _, trainer, _ = train(tmp_path, "20220516 23:59:59")
    assert int(trainer.step.numpy()) == 1


def test_on_a_synchronous_cluster_another_workers_dead_line_vote_stops_this_one(
        tmp_path, monkeypatch, caplog):
    """MultiWorkerMirroredStrategy: each worker votes whether the dead line has passed in the
    step's all-reduce (with the stop signal's vote), and every worker stops after the step
    in which any voted, although its own clock says not yet. Here one process plays a
    cluster: its step's votes get another worker's vote added at step 2."""
    monkeypatch.setattr(distribute.Distribution, "synchronous_cluster", property(lambda s: True))
    clock_calls = []

    def clock():  # this worker's clock: never past the dead line
        clock_calls.append(1)
        return 1893456000.0 - 1

    monkeypatch.setattr(loop, "wall_clock", clock)
    make_step = loop.Trainer._train_step_fn

    def with_another_workers_vote(self, element_spec=None):
        step = make_step(self, element_spec)

        def wrapped(features, labels, stop):
            assert stop.shape == (2,)  # [asked to stop, past the dead line] of this worker
            terms, votes = step(features, labels, stop)
            other = tf.constant([0.0, 1.0]) if int(self.step.numpy()) == 2 else tf.zeros(2)
            return terms, votes + other

        return wrapped

    monkeypatch.setattr(loop.Trainer, "_train_step_fn", with_another_workers_vote)
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        run, trainer, metrics = train(tmp_path, "1893456000")
    assert int(trainer.step.numpy()) == 2
    assert len(clock_calls) == 2  # checked before each step, for the vote
    assert "train_config.dead_line 1893456000 passed: training stops at step 2" in caplog.text
    assert tf.train.latest_checkpoint(run["model_dir"]) == os.path.join(run["model_dir"],
                                                                        "ckpt-2")
    assert metrics["checkpoint"].endswith("ckpt-2")
