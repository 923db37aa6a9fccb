"""Tiny runs for the reliability tests: a small CSV and a config around it, in tmp_path."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

from conftest import ROOT, tiny_config

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")

MLP = """backbone {
  blocks { name: "mlp" inputs { feature_group_name: "all" }
           keras_layer { class_name: "MLP" mlp { hidden_units: [8, 4] dropout_ratio: 0.1 } } }
  concat_blocks: "mlp"
}"""


def rows(n: int, seed: int = 0, label=None) -> list[str]:
    """n rows of the tiny schema: clk, buy, user, tags, price."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        user = rnd.randint(0, 9)
        clk = label if label is not None else int(rnd.random() < (0.8 if user < 5 else 0.2))
        out.append(f"{clk},{rnd.randint(0, 1)},u{user},t{rnd.randint(0, 5)}|t{rnd.randint(0, 5)},"
                   f"{rnd.random() * 3:.3f}")
    return out


def write_rows(path, lines: list[str], header: str | None = None) -> str:
    text = "\n".join(([header] if header else []) + list(lines)) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def make_run(tmp_path, model: str = MLP, extra: str = "", train_rows: int = 64,
             train: str = "", num_steps: int = 10, save_every: int = 5, keep: int = 5,
             log_every: int = 5, name: str = "c.config", data_extra: str = "") -> dict:
    """Writes train.csv (unless `train` names a file) and a config; returns their paths and
    the model_dir."""
    data = train or write_rows(tmp_path / "train.csv", rows(train_rows))
    model_dir = str(tmp_path / "m")
    text = (f'train_input_path: "{data}"\nmodel_dir: "{model_dir}"\n'
            f"train_config {{ num_steps: {num_steps} save_checkpoints_steps: {save_every} "
            f"log_step_count_steps: {log_every} keep_checkpoint_max: {keep} }}\n"
            + extra + tiny_config(textwrap.dedent(model)))
    if data_extra:
        text = text.replace("  batch_size: 4\n", "  batch_size: 4\n" + data_extra + "\n")
    config = tmp_path / name
    config.write_text(text)
    return {"config": str(config), "data": data, "model_dir": model_dir}


def cli(*args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "-m", "easyblocks.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def checkpoint_files(model_dir: str) -> dict[str, bytes]:
    """Every ckpt-* file of model_dir with its bytes."""
    out = {}
    for name in sorted(os.listdir(model_dir)):
        if name.startswith("ckpt-"):
            with open(os.path.join(model_dir, name), "rb") as f:
                out[name] = f.read()
    return out
