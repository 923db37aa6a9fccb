"""Every sample model on the shipped Taobao-like data: test AUC and training speed, one table.

    python benchmarks/samples.py --seeds 1 2 --out docs/benchmarks/samples.md

Trains every `samples/configs/*_on_taobao.config` for its one pass over the 200k training rows
(196 steps of 1024) per seed, each (model, seed) in a fresh Python process, seed-major (seed 1:
every model, then seed 2, ...), and writes a markdown report: the test AUC of every tower on
the 50k test rows (mean ± sample std over the seeds) and the training speed of the run, by
easyblocks' one definition (easyblocks/train/throughput.py):

- examples/s = examples trained / seconds of the training phase, from the moment training asks
  for its first batch to the end of its last step or checkpoint save: input warm-up, tracing
  the step and checkpoints are in, evaluation is out;
- steady examples/s = the same clock from the end of the first logging window;
- first step s = the seconds up to the end of the first step (first batch and tracing).

Speed is reported as a ratio to the MLP sample's in the same command (the machine is shared;
absolute examples/s drift with its load, the load average is printed). The hand-written Keras
and FuxiCTR comparisons are in keras_reference.md, block_speed.md and peer_fuxictr.md;
docs/benchmarks.md puts them side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    CONFIGS,
    ROOT,
    command_block,
    machine,
    mean_std,
    median,
    run_sample_worker,
    seed_major,
    serve_sample_worker,
    smoke_data,
    smoke_note,
    smoke_out,
    smoke_overrides,
    train_sample,
    write_report,
)

MARKER = "SAMPLES_RESULT "
REFERENCE = "mlp_on_taobao"
# --smoke trains these (the reference, a multi-task and a multi-domain sample); the others
# are only listed by the full run
SMOKE_MODELS = [REFERENCE, "aitm_on_taobao", "star_on_taobao"]


def sample_names() -> list[str]:
    """The Taobao-layout sample configs, the MLP reference first."""
    names = sorted(os.path.basename(p)[: -len(".config")]
                   for p in glob.glob(os.path.join(CONFIGS, "*_on_taobao.config")))
    names.remove(REFERENCE)
    return [REFERENCE, *names]


def train_one(name: str, seed: int, overrides=()) -> dict:
    r = train_sample(os.path.join(CONFIGS, name + ".config"), seed, None, overrides)
    r["name"] = name
    return r


def run_one(name: str, seed: int, overrides=(), in_process: bool = False,
            lock: str | None = None) -> dict:
    """One (model, seed), in a fresh process unless in_process; with lock, holding an
    exclusive flock on that file for the run (so that other benchmarks taking the same lock
    do not run at the same time)."""
    if in_process:
        return train_one(name, seed, overrides)
    with contextlib.ExitStack() as stack:
        if lock:
            f = stack.enter_context(open(lock, "a"))
            fcntl.flock(f, fcntl.LOCK_EX)
        return run_sample_worker(__file__, MARKER, name, seed, overrides)


def _speed(runs: list[dict], key: str) -> float:
    return median(r["speed"].get(key) for r in runs)


def report(argv: list[str], names: list[str], seeds: list[int], runs: dict, elapsed: float,
           load: tuple[float, float], note: str = "") -> str:
    ref_speed = _speed(runs[REFERENCE], "train_examples_per_sec")
    ref_steady = _speed(runs[REFERENCE], "steady_examples_per_sec")
    lines = [
        "# Every sample model: test AUC and training speed",
        "",
        *command_block(argv),
        f"Machine: {machine()}; load average {load[0]:.1f} at the start, {load[1]:.1f} at the "
        f"end. Date: {time.strftime('%Y-%m-%d', time.gmtime())}. Seeds: "
        f"{', '.join(map(str, seeds))}; every (model, seed) in a fresh process, seed-major. "
        f"Total time {elapsed:.0f} s.",
        "",
        "AUC: mean ± sample std over the seeds, per tower (label in brackets), on the 50k "
        "test rows. examples/s: the median over the seeds of examples trained / seconds of "
        "the whole training phase (first batch asked for -> last step or save; tracing and "
        "checkpoints in, evaluation out); steady: the same after the first logging window; "
        "first step: seconds to the end of the first step. x MLP: examples/s over the MLP "
        "sample's in this command.",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        "| sample | test AUC (mean ± std) | examples/s | x MLP | steady examples/s | "
        "x MLP (steady) | first step s | steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        per = runs[name]
        aucs = []
        for tower in per[0]["auc"]:
            m, s = mean_std(r["auc"][tower] for r in per)
            aucs.append(f"{tower} {m:.4f} ± {s:.4f}")
        speed = _speed(per, "train_examples_per_sec")
        steady = _speed(per, "steady_examples_per_sec")
        first = _speed(per, "first_step_seconds")
        lines.append(
            f"| `{name}` | {'<br>'.join(aucs)} | {speed:,.0f} | {speed / ref_speed:.2f} | "
            f"{steady:,.0f} | {steady / ref_steady:.2f} | {first:.1f} | {per[0]['steps']} |")
    lines += ["", "<details><summary>Per run</summary>", "",
              "| sample | seed | test AUC | examples/s | steady examples/s | first step s | "
              "training phase s | wall s |", "|---|---|---|---|---|---|---|---|"]
    for i, seed in enumerate(seeds):
        for name in names:
            r = runs[name][i]
            sp = r["speed"]
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            lines.append(
                f"| {name} | {seed} | {aucs} | {sp.get('train_examples_per_sec') or 0:,.0f} | "
                f"{sp.get('steady_examples_per_sec') or 0:,.0f} | "
                f"{sp.get('first_step_seconds') or 0:.1f} | "
                f"{sp.get('train_phase_seconds') or 0:.1f} | {r['wall_s']:.1f} |")
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if serve_sample_worker(argv, train_one, MARKER):
        return
    names_all = sample_names()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--models", nargs="+", choices=names_all, default=names_all,
                   help="sample config names (without .config); the MLP is always run")
    p.add_argument("--out", default=None, help="default: docs/benchmarks/samples.md")
    p.add_argument("--lock", default=None,
                   help="hold an exclusive flock on this file during each run")
    p.add_argument("--smoke", action="store_true",
                   help="seconds: the first rows of samples/data, one seed, three samples, "
                        "in this process")
    args = p.parse_args(argv[1:])
    names = [REFERENCE] + [n for n in args.models if n != REFERENCE]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    if args.smoke:
        folder = smoke_data(tempfile.mkdtemp(prefix="samples_smoke_"))
        names = SMOKE_MODELS
        overrides = smoke_overrides(folder)
        runs = seed_major(names, args.seeds[:1],
                          lambda n, s: run_one(n, s, overrides, in_process=True))
        out = smoke_out(args.out, folder, "samples")
        note = smoke_note(folder)
        seeds = args.seeds[:1]
    else:
        runs = seed_major(names, args.seeds, lambda n, s: run_one(n, s, lock=args.lock))
        out = args.out or os.path.join(ROOT, "docs", "benchmarks", "samples.md")
        note, seeds = "", args.seeds
    text = report(argv, names, seeds, runs, time.perf_counter() - t0,
                  (load0, os.getloadavg()[0]), note)
    write_report(out, text)
    print(text)
    print(f"wrote {os.path.abspath(out)}")


if __name__ == "__main__":
    main()
