"""Multi-task models on the shipped data and on UCI Adult, several seeds: AUC per task.

    python benchmarks/multitask.py --seeds 1 2 3 --out docs/benchmarks/multitask.md

Runs shared-bottom, MMoE and AITM (the seed 004 config, with and without its
ORDER_CALIBRATE_LOSS) on samples/data, and shared-bottom and MMoE on
../shared/data/adult; reports AUC mean and std over the seeds, the oracle AUC,
and for the funnel towers the fraction of test rows where p(buy) > p(clk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA, ROOT, smoke_data, smoke_out, smoke_overrides, write_report  # noqa: E402

sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from easyblocks import api  # noqa: E402
from easyblocks.eval.evaluator import Evaluator  # noqa: E402
from easyblocks.eval.metrics import auc  # noqa: E402
from easyblocks.train.loop import Trainer  # noqa: E402

CONFIGS = os.path.join(ROOT, "samples", "configs")
ADULT = os.path.join(ROOT, "..", "shared", "data", "adult")
# --smoke trains this one (the funnel path included); the other configs are resolved
SMOKE_RUN = "AITM (seed 004, with calibration)"


def without_calibration(src: str, dst: str) -> None:
    """The same config with every ORDER_CALIBRATE_LOSS entry removed."""
    text = open(src).read()
    text, n = re.subn(r"\s*losses \{\s*loss_type: ORDER_CALIBRATE_LOSS\s*\}", "", text)
    if not n:
        raise SystemExit(f"{src} has no ORDER_CALIBRATE_LOSS entry to remove")
    open(dst, "w").write(text)


def run(config: str, seed: int, funnel: tuple[str, str] | None, overrides=()) -> dict:
    with tempfile.TemporaryDirectory() as model_dir:
        resolved = api.resolve(config, overrides=[f"train_config {{ seed: {seed} }}",
                                                  *overrides])
        trainer = Trainer(resolved, model_dir=model_dir)
        t0 = time.perf_counter()
        results = trainer.train()
        results["seconds"] = time.perf_counter() - t0
        if funnel:
            files = [os.path.join(ROOT, resolved.eval_input_path)]
            arrays = Evaluator(trainer.state).predict_arrays(files)
            later, earlier = funnel
            results["violations"] = float(np.mean(arrays[f"probs_{later}"] >
                                                  arrays[f"probs_{earlier}"]))
    return results


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--out", default=None, help="default: docs/benchmarks/multitask.md")
    p.add_argument("--skip_adult", action="store_true")
    p.add_argument("--smoke", action="store_true",
                   help=f"CI: the first rows of the shipped data, one seed, {SMOKE_RUN} trained, "
                        "the other configs resolved, adult skipped; the report goes to a "
                        "temporary file unless --out")
    args = p.parse_args(argv[1:])
    os.chdir(ROOT)
    tmp = tempfile.mkdtemp(prefix="multitask_")
    data, overrides = DATA, []
    if args.smoke:
        data = smoke_data(os.path.join(tmp, "data"))
        overrides = smoke_overrides(data)
        args.seeds, args.skip_adult = [1], True
        print("--smoke: adult skipped (a smoke run reads only the first rows of samples/data)",
              flush=True)
    out = smoke_out(args.out, tmp, "multitask") if args.smoke else \
        args.out or os.path.join(ROOT, "docs", "benchmarks", "multitask.md")
    no_calib = os.path.join(tmp, "aitm_without_calibration.config")
    without_calibration(os.path.join(CONFIGS, "aitm_on_taobao.config"), no_calib)
    runs = [
        ("taobao", "shared bottom", os.path.join(CONFIGS, "shared_bottom_on_taobao.config"),
         ("cvr", "ctr")),
        ("taobao", "MMoE", os.path.join(CONFIGS, "mmoe_on_taobao.config"), ("cvr", "ctr")),
        ("taobao", "AITM (seed 004, with calibration)",
         os.path.join(CONFIGS, "aitm_on_taobao.config"), ("cvr", "ctr")),
        ("taobao", "AITM without ORDER_CALIBRATE_LOSS", no_calib, ("cvr", "ctr")),
    ]
    if not args.skip_adult and not os.path.isdir(ADULT):
        print(f"adult skipped: {os.path.normpath(ADULT)} is missing", flush=True)
    if not args.skip_adult and os.path.isdir(ADULT):
        runs += [
            ("adult", "shared bottom", os.path.join(CONFIGS, "shared_bottom_on_adult.config"),
             None),
            ("adult", "MMoE", os.path.join(CONFIGS, "mmoe_on_adult.config"), None),
        ]
    if args.smoke:
        for _, name, config, _ in runs:
            if name != SMOKE_RUN:
                api.resolve(config)
        runs = [r for r in runs if r[1] == SMOKE_RUN]
    oracle = np.loadtxt(os.path.join(data, "taobao_test.oracle.csv"), delimiter=",")
    labels = np.loadtxt(os.path.join(data, "taobao_test.csv"), delimiter=",", usecols=[0, 1])
    oracle_auc = {"ctr": auc(labels[:, 0], oracle[:, 0]), "cvr": auc(labels[:, 1], oracle[:, 1])}

    rows = []
    for dataset, name, config, funnel in runs:
        per_seed = [run(config, s, funnel, overrides) for s in args.seeds]
        towers = list(per_seed[0]["towers"])
        cells = []
        for t in towers:
            values = [r["towers"][t]["overall"]["auc"] for r in per_seed]
            cells.append(f"{t} {np.mean(values):.4f} ± {np.std(values):.4f}")
        violations = ""
        if funnel:
            v = [r["violations"] for r in per_seed]
            violations = f"{np.mean(v):.4f} ± {np.std(v):.4f}"
        speed = np.mean([r["train_examples_per_sec"] or 0 for r in per_seed])
        rows.append((dataset, name, "; ".join(cells), violations, f"{speed:,.0f}"))
        print(rows[-1], flush=True)

    lines = [
        "# Multi-task models: AUC per task",
        "",
        f"Command: `python benchmarks/multitask.py {' '.join(argv[1:])}`",
        f"(seeds {args.seeds}; mean ± std over seeds; one epoch on taobao as configured; "
        f"{os.cpu_count()} CPU cores)."
        + (f" --smoke: the first rows of samples/data ({data}), {SMOKE_RUN} only; the "
           "numbers mean nothing." if args.smoke else ""),
        "",
        f"Oracle AUC on the shipped test split: clk {oracle_auc['ctr']:.4f}, "
        f"buy {oracle_auc['cvr']:.4f}.",
        "",
        "| data | model | test AUC per tower | fraction p(buy) > p(clk) | train examples/s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    write_report(out, "\n".join(lines) + "\n")
    shutil.rmtree(os.path.join(tmp, "data") if out == smoke_out(None, tmp, "multitask") else tmp,
                  ignore_errors=True)
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
