"""What keeps a training run from losing work or writing wrong checkpoints: one training per
model_dir (a lock file), a stop on a non-finite loss before anything is saved, and a
checkpoint at the current step when the process is asked to stop (SIGTERM, SIGINT).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import tensorflow as tf

from easyblocks.errors import ConfigError, EasyblocksError

try:
    import fcntl
except ImportError:  # not POSIX: the lock falls back to the pid written in the file
    fcntl = None

log = logging.getLogger("easyblocks")

LOCK_FILE = ".easyblocks.lock"


class TrainingStopped(EasyblocksError):
    """Training stopped before its end (a non-finite loss, a signal); the message says why,
    where its last good checkpoint is and what to do. `exit_code`: the command's status."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


# ---- the model_dir lock -------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


@contextlib.contextmanager
def model_dir_lock(model_dir: str) -> Iterator[None]:
    """Holds `model_dir/.easyblocks.lock` while training: a second training into the same
    model_dir is refused with a line naming the holder's pid. The lock is an flock on the
    file, so the kernel releases it when its process dies (even by SIGKILL): the next
    training takes a stale lock over."""
    try:
        os.makedirs(model_dir, exist_ok=True)
        fd = os.open(os.path.join(model_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"model_dir {model_dir} is not writable: {e.strerror} (training "
                          "writes checkpoints there; pass another --model_dir)") from None
    path = os.path.join(model_dir, LOCK_FILE)
    previous = _holder(path)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = previous or "pid unknown"
                raise ConfigError(
                    f"model_dir {model_dir} is in use by another training ({holder}); wait "
                    "for it to end, or train into another model_dir") from None
        else:
            pid = int(previous.split()[1]) if previous.startswith("pid ") else 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise ConfigError(f"model_dir {model_dir} is in use by another training "
                                  f"({previous}); wait for it to end, or train into another "
                                  "model_dir")
        if previous:
            log.info("%s: took over the lock of a training that is no longer running (%s)",
                     model_dir, previous)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        os.fsync(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            if _holder(path).startswith(f"pid {os.getpid()} "):
                os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


# ---- non-finite losses --------------------------------------------------------------------

class NonFiniteGuard:
    """Records, inside the training step, the first step whose loss terms are not all
    finite, and the terms' values at that step. `check()` (on the host, before a checkpoint
    is written and at each progress line) raises TrainingStopped if one was recorded, so
    that no checkpoint is written after it: the last good checkpoints stay in place.
    """

    def __init__(self):
        self.term_names: list[str] = []  # set when the step function is traced
        self.first_bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                          name="first_non_finite_step")
        self.bad_values = tf.Variable(tf.zeros([0]), shape=tf.TensorShape([None]),
                                      trainable=False, name="non_finite_terms")

    def record(self, terms: dict, step: tf.Tensor) -> None:
        """In the step function: remembers `step` and the terms if they are not all finite
        and no earlier step was recorded."""
        self.term_names = list(terms)
        values = tf.stack([tf.cast(terms[k], tf.float32) for k in self.term_names])
        first = tf.logical_and(self.first_bad_step < 0,
                               tf.logical_not(tf.reduce_all(tf.math.is_finite(values))))
        self.first_bad_step.assign(tf.where(first, tf.cast(step, tf.int64),
                                            self.first_bad_step))
        self.bad_values.assign(tf.cond(first, lambda: values, lambda: self.bad_values))

    def check(self, last_checkpoint: str | None) -> None:
        step = int(self.first_bad_step.numpy())
        if step < 0:
            return
        values = self.bad_values.numpy()
        bad = [f"{k} {v}" for k, v in zip(self.term_names, values)
               if not math.isfinite(float(v))]
        kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint \
            else "no checkpoint was written"
        raise TrainingStopped(
            f"training stopped: a non-finite loss at step {step} ({', '.join(bad)}); nothing "
            f"was saved after it, {kept}. Check the learning rate, loss weights and inputs "
            "(a NaN or inf in the data, labels far from 0/1, a too large learning rate)")


# ---- stop signals -------------------------------------------------------------------------

class StopSignals:
    """While active, SIGTERM and SIGINT set `received` instead of ending the process, so the
    loop can finish its step, save a checkpoint and exit; a second signal ends the process
    at once (KeyboardInterrupt). Inactive outside the main thread (Python delivers signals
    there only)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        log.info("received %s: stopping after this step and saving a checkpoint (send it "
                 "again to stop at once)", signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def stopped(self, step: int, checkpoint: str | None) -> TrainingStopped:
        """The error that ends training after a signal, once its checkpoint is saved."""
        name = signal.Signals(self.received).name
        return TrainingStopped(
            f"training stopped by {name} at step {step}; checkpoint {checkpoint} saved: run "
            "the same command to resume from it", exit_code=128 + int(self.received))
