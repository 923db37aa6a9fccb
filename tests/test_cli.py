"""The `easyblocks` command through a subprocess, as a user runs it."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "easyblocks.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=ENV, timeout=600)


@pytest.mark.slow
def test_train_then_evaluate(tmp_path):
    config = os.path.join(SAMPLES, "configs", "mlp_on_taobao.config")
    r = run("train", "--config", config, "--model_dir", str(tmp_path), "--num_steps", "60")
    assert r.returncode == 0, r.stderr
    assert "step 50 | " in r.stdout and "examples/s | loss/clk/classification" in r.stdout
    assert "evaluation at step 60" in r.stdout and "clk [430548_1007]" in r.stdout
    assert r.stderr.strip() == ""
    r = run("evaluate", "--config", config, "--model_dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "evaluation at step 60" in r.stdout


def test_broken_config_is_one_readable_line(tmp_path):
    config = tmp_path / "bad.config"
    text = open(os.path.join(SAMPLES, "configs", "mlp_on_taobao.config")).read()
    config.write_text(text.replace('class_name: "MLP"', 'class_name: "MLPP"'))
    r = run("train", "--config", str(config), "--model_dir", str(tmp_path / "m"))
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"easyblocks: error: {config}:")
    assert "block 'mlp'" in lines[0] and "did you mean: MLP" in lines[0]
    assert "Traceback" not in r.stderr


def test_syntax_error_and_debug_traceback(tmp_path):
    config = tmp_path / "bad.config"
    config.write_text("model_dir: 'x'\nmodel_config {\n  model_clas: 'RankModel'\n}\n")
    r = run("train", "--config", str(config))
    assert r.returncode == 2
    assert r.stderr.strip().startswith(
        f"easyblocks: error: {config}:3:3: Message type \"easyblocks.protos.EasyRecModel\" has "
        "no field named \"model_clas\". (did you mean: model_class")
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("train", "--config", str(config), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_missing_evaluate_checkpoint(tmp_path):
    config = os.path.join(SAMPLES, "configs", "mlp_on_taobao.config")
    r = run("evaluate", "--config", config, "--model_dir", str(tmp_path / "empty"))
    assert r.returncode == 2
    assert "no checkpoint in" in r.stderr


def test_blocks_lists_builtins():
    r = run("blocks")
    assert r.returncode == 0
    assert "MLP" in r.stdout and "built-in" in r.stdout
