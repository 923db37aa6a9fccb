"""Training throughput: the one definition of examples/s, used by the progress lines, the
TensorBoard scalar `examples_per_sec`, eval_results.json and `api.train`'s results.

The training phase's clock runs from the moment training asks for its first batch to the
end of the last step (or of the checkpoint save after it); it counts everything training
waits for on the way (the input pipeline's warm-up, tracing the step, checkpoint saves,
summaries) except evaluation, which stops the clock and is counted apart (`eval_seconds`).
So

    train_examples_per_sec  = examples trained / train_phase_seconds
    steady_examples_per_sec = the same, counting from the end of the first logging window
                              (which holds tracing and the input pipeline's warm-up)
    first_step_seconds      = up to the end of the first step (the first batch, tracing)

and a progress line's examples/s is its window's examples over its window's seconds by the
same clock (evaluation left out).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throughput:
    """Counts examples and the seconds of the training phase.

    Call `start()` before asking for the first batch, `step_started()` before each step and
    `step_done(examples)` after it, `work_done()` after a checkpoint save; `pause()` and
    `resume()` around anything that is not training (evaluation); `window()` at each progress line
    returns that window's examples/s and starts the next window.

    Args:
        clock: seconds (a test passes a fake one); default time.perf_counter.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._start: float | None = None  # the first step's start
        self._paused = 0.0  # seconds not training (evaluation) since _start
        self._pause_start: float | None = None
        self.examples = 0
        self.steps = 0
        self.first_step_seconds: float | None = None
        self._end: float | None = None  # the last step's end (or the latest save's)
        self._window = (None, 0, 0.0)  # (start, examples at start, paused at start)
        self._steady = None  # (time, examples, paused) at the end of the first window
        self.eval_seconds = 0.0

    def start(self) -> None:
        """Training asks for its first batch: the phase starts (input warm-up included)."""
        if self._start is None:
            self._start = self._clock()
            self._window = (self._start, 0, 0.0)

    def step_started(self) -> None:
        self.start()  # when start() was not called: at the first step

    def step_done(self, examples: int) -> None:
        now = self._clock()
        if self.first_step_seconds is None and self._start is not None:
            self.first_step_seconds = now - self._start
        self.examples += examples
        self.steps += 1
        self._end = now

    def work_done(self) -> None:
        """Training work after a step (a checkpoint save): the phase lasts until now."""
        if self._start is not None:
            self._end = self._clock()

    def pause(self) -> None:
        """Not training from now (evaluation) until `resume()`."""
        if self._start is not None and self._pause_start is None:
            self._pause_start = self._clock()

    def resume(self) -> None:
        if self._pause_start is not None:
            spent = self._clock() - self._pause_start
            self._paused += spent
            self.eval_seconds += spent
            self._pause_start = None

    def window(self) -> float:
        """The examples/s since the previous window (or the first step); starts the next."""
        now = self._clock()
        start, examples, paused = self._window
        seconds = now - start - (self._paused - paused) if start is not None else 0.0
        rate = (self.examples - examples) / seconds if seconds > 0 else 0.0
        self._window = (now, self.examples, self._paused)
        if self._steady is None:
            self._steady = self._window
        return rate

    @property
    def train_phase_seconds(self) -> float | None:
        if self._start is None or self._end is None:
            return None
        return self._end - self._start - self._paused

    @property
    def train_examples_per_sec(self) -> float | None:
        seconds = self.train_phase_seconds
        return self.examples / seconds if seconds else None

    @property
    def steady_examples_per_sec(self) -> float | None:
        """After the first window; None when training ended within it."""
        if self._steady is None or self._end is None:
            return None
        at, examples, paused = self._steady
        seconds = self._end - at - (self._paused - paused)
        return (self.examples - examples) / seconds if seconds > 0 and self.examples > examples \
            else None

    def summary_line(self) -> str:
        """One line: the phase's examples, seconds and rates."""
        def num(v, fmt):
            return "n/a" if v is None else format(v, fmt)
        return (f"training phase: {self.examples} examples in "
                f"{num(self.train_phase_seconds, '.1f')} s = "
                f"{num(self.train_examples_per_sec, ',.0f')} examples/s (after the first "
                f"window {num(self.steady_examples_per_sec, ',.0f')}; first step "
                f"{num(self.first_step_seconds, '.2f')} s; evaluation "
                f"{self.eval_seconds:.1f} s not counted)")

    def results(self) -> dict:
        """The entries of eval_results.json and api.train's results."""
        return {"train_examples_per_sec": self.train_examples_per_sec,
                "steady_examples_per_sec": self.steady_examples_per_sec,
                "train_phase_seconds": self.train_phase_seconds,
                "first_step_seconds": self.first_step_seconds,
                "train_examples": self.examples,
                "eval_seconds_during_training": self.eval_seconds}
