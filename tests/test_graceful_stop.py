"""Issue 11, item 5: SIGTERM (what schedulers send) and SIGINT finish the current step, save a
checkpoint at it and exit non-zero with a message; the same command resumes from it."""

import os
import re
import signal
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import ROOT
from reliability_helpers import ENV, make_run

pytestmark = pytest.mark.slow
SAVE_EVERY = 100000  # no periodic checkpoint: the one found was written for the signal


def start(run, num_steps):
    return subprocess.Popen(
        [sys.executable, "-m", "easyblocks.cli", "train", "--config", run["config"],
         "--num_steps", str(num_steps)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_at_the_current_step_and_resume(tmp_path, sig):
    run = make_run(tmp_path, num_steps=10**6, save_every=SAVE_EVERY, log_every=3,
                   data_extra="  num_epochs: 0")
    proc = start(run, 10**6)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "step 9 |" in line:
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=300)
    out = "".join(seen) + out
    assert proc.returncode == 128 + sig, (out, err)
    stopped = re.search(rf"training stopped by {signal.Signals(sig).name} at step (\d+); "
                        r"checkpoint (\S+) saved: run the same command to resume from it", err)
    assert stopped, err
    step = int(stopped.group(1))
    assert step >= 9 and stopped.group(2) == os.path.join(run["model_dir"], f"ckpt-{step}")
    assert len(err.strip().splitlines()) == 1, err
    assert tf.train.latest_checkpoint(run["model_dir"]).endswith(f"ckpt-{step}")
    reader = tf.train.load_checkpoint(os.path.join(run["model_dir"], f"ckpt-{step}"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == step
    assert "evaluation at step" not in out  # stopped: no evaluation
    # the same command resumes from it
    proc = start(run, step + 2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"resumed from {run['model_dir']}/ckpt-{step} at step {step}" in out
    assert f"training done at step {step + 2}" in out
