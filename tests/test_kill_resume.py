"""Safe resume: training killed with SIGKILL at any moment continues from the last complete
checkpoint, the step counter goes on, and the final checkpoint is loadable."""

import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import ROOT, SAMPLES

pytestmark = pytest.mark.slow
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
CONFIG = os.path.join(SAMPLES, "configs", "mlp_on_taobao.config")
NUM_STEPS = 120


def start(model_dir):
    return subprocess.Popen(
        [sys.executable, "-m", "easyblocks.cli", "train", "--config", CONFIG, "--model_dir",
         model_dir, "--num_steps", str(NUM_STEPS),
         "--set", "train_config { save_checkpoints_steps: 7 log_step_count_steps: 5 }"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when(proc, marker: str, extra_delay: float) -> str:
    """Waits for a line containing marker, sleeps extra_delay, then SIGKILLs; returns output."""
    out = []
    for line in proc.stdout:
        out.append(line)
        if marker in line:
            time.sleep(extra_delay)
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return "".join(out)


def test_sigkill_at_several_points_then_resume(tmp_path):
    model_dir = str(tmp_path / "m")
    # kill points: during the first steps, just after a log line (around checkpoint writes),
    # and later in training at an arbitrary moment
    for marker, delay in [("training ", 1.5), ("step 20 |", 0.05), ("step 60 |", 0.3)]:
        kill_when(start(model_dir), marker, delay)
        latest = tf.train.latest_checkpoint(model_dir)
        if latest is not None:  # whatever was written last must be readable
            tf.train.load_checkpoint(latest).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")
    proc = start(model_dir)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "resumed from" in out
    resumed_at = int(out.split("resumed from")[1].split(" at step ")[1].split()[0])
    assert resumed_at > 0 and resumed_at % 7 == 0  # a complete checkpoint
    assert f"training done at step {NUM_STEPS}" in out
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    assert final.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == NUM_STEPS
    assert "evaluation at step 120" in out
