"""The one definition of training throughput (train/throughput.py), on a fake clock."""

import pytest

from easyblocks.train.throughput import Throughput


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def test_phase_counts_tracing_and_saves_but_not_evaluation():
    clock = FakeClock()
    meter = Throughput(clock)
    assert meter.train_examples_per_sec is None and meter.train_phase_seconds is None
    # step 1: 3 s of tracing; then 3 steps of 0.5 s; 10 rows each
    meter.step_started()
    clock.advance(3.0)
    meter.step_done(10)
    for _ in range(3):
        meter.step_started()
        clock.advance(0.5)
        meter.step_done(10)
    # first window: 40 rows in 4.5 s
    assert meter.window() == pytest.approx(40 / 4.5)
    clock.advance(1.0)  # a checkpoint save
    meter.work_done()
    meter.pause()
    clock.advance(20.0)  # evaluation: not counted
    meter.resume()
    for _ in range(2):
        meter.step_started()
        clock.advance(0.5)
        meter.step_done(10)
    # second window: 20 rows in 1 s save + 1 s steps (the 20 s of evaluation left out)
    assert meter.window() == pytest.approx(20 / 2.0)
    assert meter.first_step_seconds == pytest.approx(3.0)
    assert meter.train_phase_seconds == pytest.approx(3.0 + 1.5 + 1.0 + 1.0)
    assert meter.train_examples_per_sec == pytest.approx(60 / 6.5)
    assert meter.steady_examples_per_sec == pytest.approx(20 / 2.0)
    assert meter.eval_seconds == pytest.approx(20.0)
    results = meter.results()
    assert results["train_examples"] == 60
    assert results["train_examples_per_sec"] == meter.train_examples_per_sec
    assert "60 examples in 6.5 s" in meter.summary_line()


def test_a_final_save_after_the_last_step_is_in_the_phase():
    clock = FakeClock()
    meter = Throughput(clock)
    meter.step_started()
    clock.advance(2.0)
    meter.step_done(8)
    clock.advance(0.5)  # idle between the step and the save (the loop's bookkeeping)
    meter.work_done()
    assert meter.train_phase_seconds == pytest.approx(2.5)
    # training ended within the first window: no steady rate
    assert meter.steady_examples_per_sec is None
    assert meter.train_examples_per_sec == pytest.approx(8 / 2.5)


def test_no_steps_no_rates():
    meter = Throughput(FakeClock())
    meter.work_done()
    meter.pause()
    meter.resume()
    assert meter.results()["train_examples_per_sec"] is None
    assert meter.results()["first_step_seconds"] is None
    assert "n/a" in meter.summary_line()


def test_train_phase_benchmark_smoke(tmp_path):
    import os
    import sys

    from conftest import ROOT

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import train_phase
    finally:
        sys.path.pop(0)

    out = train_phase.main(["train_phase.py", "--smoke", "--out", str(tmp_path / "r.md")])
    text = open(out).read()
    assert "| steps / saves / evaluations | 12 / 1 / 1 |" in text
    assert "| first step (tracing unless done before) |" in text


@pytest.mark.parametrize("rows, steps, waited_for_the_end", [(10, 3, False), (8, 2, True)])
def test_the_last_partial_batch_ends_training_without_waiting_for_the_inputs_end(
        tmp_path, rows, steps, waited_for_the_end):
    from reliability_helpers import make_run

    from easyblocks import api
    from easyblocks.train import loop

    run = make_run(tmp_path, train_rows=rows, num_steps=0, save_every=100, log_every=1)
    asked_past_the_end = []
    make_input = loop.Trainer._input

    def watched_input(self, files, start):
        elements, step, examples = make_input(self, files, start)

        def watched():
            yield from elements
            asked_past_the_end.append(True)  # the input reported its end

        return watched(), step, examples

    loop.Trainer._input = watched_input
    try:
        results = api.train(run["config"], model_dir=run["model_dir"])
    finally:
        loop.Trainer._input = make_input
    # batches of 4: 10 rows end with a partial batch of 2 (the data's last: no wait);
    # 8 rows end with a full batch, so the loop learns the end from the input
    assert results["step"] == steps
    assert results["train_examples"] == rows
    assert bool(asked_past_the_end) == waited_for_the_end
