"""What the benchmark scripts share: the machine line, statistics, a run in a fresh Python
process, the report file, and the tiny data and settings of their `--smoke` mode.

    python benchmarks/common.py --smoke_all OUT_DIR [SCRIPT ...]

runs `SCRIPT --smoke --out OUT_DIR/SCRIPT.md` for each script (all of SMOKE_SCRIPTS by default)
and `SCRIPT --help`, in this one process (a TensorFlow start costs seconds on a small
machine); it writes OUT_DIR/status.json: per script the exit status, seconds, the end of its
output and whether `--help` printed a usage. tests/test_benchmarks_smoke.py runs it in CI.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import platform
import subprocess
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
CONFIGS = os.path.join(ROOT, "samples", "configs")
DATA = os.path.join(ROOT, "samples", "data")

# every benchmark script with a --smoke mode (each has main(argv))
SMOKE_SCRIPTS = ["classic", "distributed_tables", "easyrec_compat", "keras_reference",
                 "multidomain", "multitask", "quality", "samples", "table_updates", "zoo"]
# the smoke data: the first rows of the shipped files (2 steps of the samples' batch 1024)
SMOKE_TRAIN_ROWS, SMOKE_TEST_ROWS = 2048, 1000


# ---- the machine and statistics -----------------------------------------------------------------
def machine() -> str:
    """CPU, cores this process may use, GPUs, Python, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = tf.config.list_physical_devices("GPU")
    return (f"nproc {nproc} ({cpu}), {'GPUs: ' + str(len(gpus)) if gpus else 'no GPU'}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}")


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of the finite values; nan, nan for none."""
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def median(values) -> float:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return float(np.median(a)) if a.size else float("nan")


# the throughput figures of easyblocks/train/throughput.py that api.train / Trainer.train return
SPEED_KEYS = ("train_examples_per_sec", "steady_examples_per_sec", "first_step_seconds",
              "train_phase_seconds", "eval_seconds_during_training")


# ---- a run in a fresh process ----------------------------------------------------------------
def run_worker(script: str, args: list[str], marker: str, what: str) -> dict:
    """Runs `python script args` from the repository root (quiet TensorFlow, the repository on
    PYTHONPATH) and returns the JSON of its last line starting with marker; a failed run
    prints the end of its output and exits."""
    cmd = [sys.executable, os.path.abspath(script), *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(marker)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(marker):])


def run_sample_worker(script: str, marker: str, name: str, seed: int, overrides=()) -> dict:
    """One (sample, seed) trained by `script` in a fresh process (its main() starts with
    `serve_sample_worker`); the run's result dict."""
    return run_worker(script, ["--_worker", name, str(seed), json.dumps(list(overrides))],
                      marker, f"{name} seed {seed}")


def serve_sample_worker(argv: list[str], train_one, marker: str) -> bool:
    """In the process `run_sample_worker` started: trains argv's (name, seed, overrides) with
    train_one, prints the result after marker and returns True; False for other argv."""
    if len(argv) == 5 and argv[1] == "--_worker":
        r = train_one(argv[2], int(argv[3]), json.loads(argv[4]))
        print(marker + json.dumps(r), flush=True)
        return True
    return False


def train_sample(config: str, seed: int, towers: dict[str, str] | None, overrides=(),
                 cvr_prediction: str | None = None) -> dict:
    """Trains a sample config (one pass, as configured) with this seed in this process; its
    steps, wall seconds, train examples/s (and under "speed" every throughput figure of
    easyblocks/train/throughput.py the run reports), test AUC per tower in towers (every tower
    when towers is None), parameter counts
    (total / dense = not in embedding tables), the learned scale of a block named `fm_term`
    (DeepFM), and with cvr_prediction the AUC of that prediction against buy on the clicked
    test rows."""
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    os.chdir(ROOT)  # the sample configs use paths relative to the repository root
    from easyblocks import api
    from easyblocks.eval.evaluator import Evaluator
    from easyblocks.eval.metrics import auc
    from easyblocks.train.loop import Trainer

    with tempfile.TemporaryDirectory(prefix="benchmark_") as model_dir:
        resolved = api.resolve(config, overrides=[f"train_config {{ seed: {seed} }}",
                                                  *overrides])
        trainer = Trainer(resolved, model_dir=model_dir)
        t0 = time.perf_counter()
        results = trainer.train()
        wall_s = time.perf_counter() - t0
        model = trainer.model
        tables = {id(v) for v in model.feature_groups.table_variables}
        total = sum(int(np.prod(v.shape)) for v in model.weights)
        embedding = sum(int(np.prod(v.shape)) for v in model.weights if id(v) in tables)
        cvr_auc = None
        if cvr_prediction:
            eval_file = os.path.join(ROOT, resolved.eval_input_path)
            arrays = Evaluator(trainer.state).predict_arrays([eval_file])
            clicked = arrays["clk"] == 1
            cvr_auc = auc(arrays["buy"][clicked], arrays[cvr_prediction][clicked])
        alpha = [float(np.ravel(v.numpy())[0]) for v in model.weights
                 if "fm_term" in v.path and v.path.endswith("kernel")]
    return {"seed": seed, "steps": results["step"], "wall_s": wall_s,
            "examples_per_sec": results["train_examples_per_sec"],
            "speed": {k: results.get(k) for k in SPEED_KEYS},
            "auc": {t: results["towers"][t]["overall"]["auc"]
                    for t in (results["towers"] if towers is None else towers)},
            "params_total": total, "params_dense": total - embedding,
            "alpha": alpha[0] if alpha else None, "cvr_on_clicks_auc": cvr_auc,
            "expanded_from": resolved.model.expanded_from}


def model_run_args(parser, models, models_help: str, out: str, smoke_help: str) -> None:
    """The options of the scripts that train sample models per seed: --seeds, --models,
    --out (default docs/benchmarks/<out>) and --smoke."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", choices=list(models), default=list(models),
                        help=models_help)
    parser.add_argument("--out", default=None, help=f"default: docs/benchmarks/{out}")
    parser.add_argument("--smoke", action="store_true", help=smoke_help)


def seed_major(names: list[str], seeds: list[int], run) -> dict[str, list[dict]]:
    """{name: [run(name, seed) per seed]}, every name for seed 1, then for seed 2, ...; prints
    each run's AUCs (and examples/s and wall seconds where it has them)."""
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for seed in seeds:
        for name in names:
            r = run(name, seed)
            runs[name].append(r)
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            print(f"{name} seed {seed}: {aucs}; {r.get('examples_per_sec') or 0:,.0f} "
                  f"examples/s; {r.get('wall_s', 0):.1f} s", flush=True)
    return runs


def command_block(argv: list[str]) -> list[str]:
    """A report's "Command:" lines: argv as a shell command in a code block."""
    import shlex

    return ["Command:", "", "```", "python " + " ".join(shlex.quote(a) for a in argv), "```",
            ""]


def write_report(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---- --smoke ----------------------------------------------------------------------------------
def smoke_data(folder: str, train_rows: int = SMOKE_TRAIN_ROWS,
               test_rows: int = SMOKE_TEST_ROWS) -> str:
    """Writes the first rows of the shipped train / test / test-oracle files into folder (the
    Taobao layout the samples read); returns folder."""
    os.makedirs(folder, exist_ok=True)
    for name, rows in (("taobao_train.csv", train_rows), ("taobao_test.csv", test_rows),
                       ("taobao_test.oracle.csv", test_rows)):
        with open(os.path.join(DATA, name), encoding="utf-8") as src, \
                open(os.path.join(folder, name), "w", encoding="utf-8") as dst:
            for i, line in enumerate(src):
                if i == rows:
                    break
                dst.write(line)
    return folder


def smoke_overrides(folder: str) -> list[str]:
    """Config text merged into a Taobao-layout sample for --smoke: the smoke data, and
    examples/s logged from the first step (a smoke run has too few steps for the samples'
    logging window of 50)."""
    return [f'train_input_path: "{os.path.join(folder, "taobao_train.csv")}"',
            f'eval_input_path: "{os.path.join(folder, "taobao_test.csv")}"',
            "train_config { log_step_count_steps: 1 }"]


def smoke_note(folder: str, where: str = "in one process") -> str:
    return (f"--smoke: the first rows of samples/data ({folder}), one seed, {where}; the "
            "numbers mean nothing.")


def smoke_out(out: str | None, folder: str, script: str) -> str:
    """Where a --smoke report goes: --out if given, else a file in the smoke's folder."""
    return out or os.path.join(folder, f"{script}.md")


def _run_main(module, argv: list[str]) -> tuple[int, str]:
    """(exit status, output) of module.main(argv) in this process."""
    buf = io.StringIO()
    rc = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            module.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code not in (None, 0) and not isinstance(e.code, int):
                buf.write(f"{e.code}\n")
        except Exception:  # a broken script: its traceback is the output
            rc = 1
            buf.write(traceback.format_exc())
    return rc, buf.getvalue()


def smoke_all(out_dir: str, scripts: list[str]) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    sys.path[:0] = [ROOT, BENCHMARKS]
    os.makedirs(out_dir, exist_ok=True)
    status = {}
    for script in scripts:
        module = importlib.import_module(script)
        help_rc, help_text = _run_main(module, [f"{script}.py", "--help"])
        t0 = time.perf_counter()
        rc, text = _run_main(module, [f"{script}.py", "--smoke", "--out",
                                      os.path.join(out_dir, f"{script}.md")])
        status[script] = {"rc": rc, "seconds": round(time.perf_counter() - t0, 1),
                          "output_tail": text[-6000:],
                          "help_ok": help_rc == 0 and "usage:" in help_text}
        os.chdir(ROOT)
        keras.backend.clear_session()
        print(f"{script}: exit {rc}, {status[script]['seconds']} s", flush=True)
    with open(os.path.join(out_dir, "status.json"), "w", encoding="utf-8") as f:
        json.dump(status, f, indent=1)
    return status


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--smoke_all":
        raise SystemExit("usage: python benchmarks/common.py --smoke_all OUT_DIR [SCRIPT ...]")
    smoke_all(sys.argv[2], sys.argv[3:] or SMOKE_SCRIPTS)
