"""Where the whole training phase of `easyblocks train` goes: first step (tracing), the
steps after it, checkpoint saves, evaluation, and the process around them.

    flock /tmp/bench.lock python benchmarks/train_phase.py --runs 3 \
        --out docs/benchmarks/train_phase.md
    python benchmarks/train_phase.py --smoke        # seconds: 12 steps on 4,096 rows

Each run is a fresh Python process (`--child`) training the config into a new model_dir
(`api.train`, as the CLI does). The child times, with its own clock and independently of
easyblocks' own throughput accounting: the start of the steps' loop (`Trainer._run_steps`,
which then asks for the first batch), every call of the train step (the step function
`Trainer._train_step_fn` returns, wrapped), every checkpoint save (`Trainer.save`), every
evaluation (`Evaluator.compute`), the model and input build (Trainer()), and the whole
`api.train`. With `--before DIR` (a checkout of another commit, e.g. `git worktree add
/tmp/before main`) each run pair is interleaved A B A B in one command, so that the ratio
before / after is measured under the same load; absolute seconds are only comparable within
one report. easyblocks' own numbers (train_phase_seconds, steady_examples_per_sec) are
listed when the code under test reports them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "samples", "configs", "mlp_on_taobao.config")


# ---- the child: one training run, timed -----------------------------------------------------
def child(config: str, model_dir: str, out: str, num_steps: int | None,
          overrides: list[str]) -> None:
    t_start = time.perf_counter()
    from easyblocks import api
    from easyblocks.eval.evaluator import Evaluator
    from easyblocks.train.loop import Trainer

    steps: list[tuple[float, float]] = []  # (start, end) of each train step call
    saves: list[float] = []
    evals: list[float] = []
    build: list[float] = []

    make_step = Trainer._train_step_fn

    def timed_step_fn(self, element_spec=None):
        step = make_step(self, element_spec)

        def run(*args):
            t = time.perf_counter()
            result = step(*args)
            # the step's loss: waits for the step (a dispatched step is not a finished one)
            next(iter(result[0].values())).numpy()
            steps.append((t, time.perf_counter()))
            return result
        return run

    save = Trainer.save

    def timed_save(self, step):
        t = time.perf_counter()
        try:
            return save(self, step)
        finally:
            saves.append(time.perf_counter() - t)

    compute = Evaluator.compute

    def timed_compute(self, extra=None):
        t = time.perf_counter()
        try:
            return compute(self, extra)
        finally:
            evals.append(time.perf_counter() - t)

    started: list[float] = []
    run_steps = Trainer._run_steps

    def timed_run_steps(self, *a, **k):
        started.append(time.perf_counter())  # training asks for its first batch next
        return run_steps(self, *a, **k)

    init = Trainer.__init__

    def timed_init(self, *a, **k):
        t = time.perf_counter()
        init(self, *a, **k)
        build.append(time.perf_counter() - t)

    Trainer._train_step_fn, Trainer.save = timed_step_fn, timed_save
    Trainer._run_steps = timed_run_steps
    Evaluator.compute, Trainer.__init__ = timed_compute, timed_init
    t_import = time.perf_counter()
    results = api.train(config, model_dir=model_dir, num_steps=num_steps, overrides=overrides)
    t_end = time.perf_counter()
    durations = [e - s for s, e in steps]
    # the phase by this clock: asking for the first batch to the last step's end,
    # evaluations during training out
    phase = steps[-1][1] - started[0] - sum(evals[:-1]) if steps else None
    report = {
        "steps": len(steps), "first_step_s": durations[0] if durations else None,
        "first_batch_s": steps[0][0] - started[0] if steps else None,
        "median_step_s": statistics.median(durations[1:]) if len(durations) > 1 else None,
        "max_later_step_s": max(durations[1:]) if len(durations) > 1 else None,
        "later_steps_s": sum(durations[1:]),
        "between_steps_s": (steps[-1][1] - steps[0][0]) - sum(durations) if steps else None,
        "saves": len(saves), "saves_s": sum(saves), "evals": len(evals),
        "evals_s": sum(evals), "build_s": sum(build), "import_s": t_import - t_start,
        "api_train_s": t_end - t_import, "phase_s": phase,
        "examples": int(results.get("train_examples") or 0),
        "reported": {k: results.get(k) for k in (
            "train_examples_per_sec", "steady_examples_per_sec", "train_phase_seconds",
            "first_step_seconds")},
        "auc": results["towers"][next(iter(results["towers"]))]["overall"].get("auc"),
        "load": os.getloadavg()[0],
    }
    with open(out, "w") as f:
        json.dump(report, f)


# ---- the parent: runs, interleaved, and the report --------------------------------------
def run_child(code_root: str, config: str, num_steps: int | None, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--config", config,
               "--model_dir", os.path.join(tmp, "model"), "--json", out]
        if num_steps:
            cmd += ["--num_steps", str(num_steps)]
        for o in overrides:
            cmd += ["--set", o]
        env = dict(os.environ, PYTHONPATH=code_root, TF_CPP_MIN_LOG_LEVEL="2")
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def _spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    fmt = ".3f" if max(abs(v) for v in values) < 0.1 else ".2f"
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


ROWS = [("whole api.train (build, train, final evaluation)", "api_train_s"),
        ("build (model, input, Trainer)", "build_s"),
        ("training phase (first batch asked to last step end, evaluations out)", "phase_s"),
        ("before the first step (the first batch: input warm-up)", "first_batch_s"),
        ("first step (tracing unless done before)", "first_step_s"),
        ("later steps, sum", "later_steps_s"),
        ("median later step", "median_step_s"),
        ("slowest later step", "max_later_step_s"),
        ("between steps (saves, logging, input waits outside the step)", "between_steps_s"),
        ("checkpoint saves (count in the next row)", "saves_s"),
        ("evaluations (during training and final)", "evals_s")]


def report(runs: dict[str, list[dict]], command: str, config: str) -> str:
    names = list(runs)
    lines = [f"# Training phase: where the seconds go ({os.path.relpath(config, ROOT)})", "",
             f"Command: `{command}`", "",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
             f"{os.cpu_count()} CPU cores, shared; load average (1 min) at each run's end: "
             + ", ".join(f"{n} " + " ".join(f"{r['load']:.1f}" for r in runs[n])
                         for n in names), "",
             "Seconds, median (min-max) over the runs; runs interleaved "
             + " ".join(names) + " ...; each a fresh process.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in ROWS:
        lines.append(f"| {label} | " + " | ".join(_spread([r[key] for r in runs[n]])
                                               for n in names) + " |")
    lines.append("| steps / saves / evaluations | " + " | ".join(
        f"{runs[n][0]['steps']} / {runs[n][0]['saves']} / {runs[n][0]['evals']}"
        for n in names) + " |")
    for key in ("train_examples_per_sec", "steady_examples_per_sec", "train_phase_seconds"):
        lines.append(f"| reported {key} | " + " | ".join(
            _spread([r["reported"][key] for r in runs[n]]) for n in names) + " |")
    lines.append("| test AUC | " + " | ".join(
        _spread([r["auc"] for r in runs[n]]) for n in names) + " |")
    if len(names) == 2:
        a, b = names
        ratios = [x["phase_s"] / y["phase_s"] for x, y in zip(runs[a], runs[b])]
        lines += ["", f"Training phase {a} / {b}, per interleaved pair: "
                  + ", ".join(f"{r:.2f}" for r in ratios)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--num_steps", type=int, default=0)
    p.add_argument("--before", help="a checkout of the code to compare with (interleaved)")
    p.add_argument("--set", action="append", default=[], help="config override (text)")
    p.add_argument("--compare_set", help="config override (text) of a second variant, run "
                   "interleaved with the first (e.g. 'train_config { jit_compile: true }')")
    p.add_argument("--out", help="the report's path (default: a temporary file)")
    p.add_argument("--smoke", action="store_true", help="12 steps on 4,096 rows, one run")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model_dir", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args(argv[1:])
    if args.child:
        child(args.config, args.model_dir, args.json, args.num_steps or None, args.set)
        return ""
    config, num_steps, runs = args.config, args.num_steps or None, args.runs
    tmp = None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory()
        rows = open(os.path.join(ROOT, "samples", "data", "taobao_train.csv")).readlines()
        data = os.path.join(tmp.name, "rows.csv")
        with open(data, "w") as f:
            f.writelines(rows[:4096])
        text = open(config).read().replace("samples/data/taobao_train.csv", data) \
            .replace("samples/data/taobao_test.csv", data).replace("batch_size: 1024",
                                                                     "batch_size: 256")
        config = os.path.join(tmp.name, "smoke.config")
        with open(config, "w") as f:
            f.write(text)
        num_steps, runs = 12, 1
    if args.before:
        variants = {"before": (args.before, args.set), "after": (ROOT, args.set)}
    elif args.compare_set:
        variants = {"as configured": (ROOT, args.set),
                    args.compare_set: (ROOT, args.set + [args.compare_set])}
    else:
        variants = {"after": (ROOT, args.set)}
    results: dict[str, list[dict]] = {n: [] for n in variants}
    for i in range(runs):
        for name, (code, overrides) in variants.items():
            r = run_child(code, config, num_steps, overrides)
            results[name].append(r)
            print(f"run {i + 1} {name}: phase {r['phase_s']:.2f} s, first step "
                  f"{r['first_step_s']:.2f} s, saves {r['saves']} in {r['saves_s']:.2f} s, "
                  f"api.train {r['api_train_s']:.1f} s, load {r['load']:.1f}", flush=True)
    text = report(results, "python benchmarks/train_phase.py " + " ".join(argv[1:]), config)
    out = args.out or os.path.join(tempfile.mkdtemp(), "train_phase.md")
    with open(out, "w") as f:
        f.write(text)
    print(text)
    print(f"report: {out}")
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    main(sys.argv)
