"""EasyRec's model classes (templates) against the MLP on the shipped Taobao-like data.

    python benchmarks/zoo.py --seeds 1 2 3 --out docs/benchmarks/zoo.md

Trains the MLP reference (samples/configs/mlp_on_taobao.config), the shared-bottom reference of
the multi-task classes (shared_bottom_on_taobao.config, towers ctr = clk and cvr = buy) and the
sample config of every model class template (samples/configs/<class>_on_taobao.config) for one
epoch per seed, and writes a markdown report: test AUC per tower (mean ± sample std over the
seeds), the oracle AUC of its label, the clk AUC minus the MLP's and, for the multi-task
classes, the buy AUC minus the shared bottom's; parameter counts. A template that trains badly
shows up here.

Each (model, seed) runs in its own Python process, one at a time, seed-major, as in
benchmarks/classic.py. Only AUCs are reported: they do not depend on the machine's load (the
same seed gives the same AUC), training speed does.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classic import machine, mean_std, oracle_aucs  # noqa: E402

CONFIGS = os.path.join(ROOT, "samples", "configs")
MARKER = "ZOO_RESULT "
NOTES = "## Reading the table"  # a hand-written section kept when the report is rewritten

# name -> (config file, model_class, what, {tower: label})
MODELS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "mlp": ("mlp_on_taobao.config", "RankModel", "MLP 512-256-128-64 (reference)",
            {"clk": "clk"}),
    "shared_bottom": ("shared_bottom_on_taobao.config", "MultiTaskModel",
                      "shared bottom 512-256, towers 128-64 (multi-task reference)",
                      {"ctr": "clk", "cvr": "buy"}),
    "multi_tower": ("multi_tower_on_taobao.config", "MultiTower",
                    "user / item / scene towers, final_dnn", {"clk": "clk"}),
    "deepfm": ("deepfm_model_on_taobao.config", "DeepFM",
               "wide (wide_output_dim 16) + FM vector + DNN into final_dnn", {"clk": "clk"}),
    "wide_and_deep": ("wide_and_deep_model_on_taobao.config", "WideAndDeep",
                      "wide + Dense(DNN 512-256-128-64)", {"clk": "clk"}),
    "dcn": ("dcn_on_taobao.config", "DCN", "DNN + 3 cross layers, final_dnn", {"clk": "clk"}),
    "dlrm": ("dlrm_on_taobao.config", "DLRM", "bottom DNN on log(price), dot interactions, "
             "top DNN", {"clk": "clk"}),
    "dssm": ("dssm_model_on_taobao.config", "DSSM", "two towers, cosine / 0.1, scale_simi",
             {"clk": "clk"}),
    "autoint": ("autoint_on_taobao.config", "AutoInt", "2 interacting layers, 2 heads of 16",
                {"clk": "clk"}),
    "fm": ("fm_on_taobao.config", "FM", "w_0 + sum w_i + FM, no DNN", {"clk": "clk"}),
    "dbmtl": ("dbmtl_on_taobao.config", "DBMTL", "bottom 512-256, towers, relation DNNs",
              {"ctr": "clk", "cvr": "buy"}),
    "mmoe": ("mmoe_model_on_taobao.config", "MMoE", "4 experts 256-128, towers",
             {"ctr": "clk", "cvr": "buy"}),
    "ple": ("ple_on_taobao.config", "PLE", "2 extraction networks (2 task + 2 shared experts)",
            {"ctr": "clk", "cvr": "buy"}),
}


def worker(name: str, seed: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)  # the sample configs use paths relative to the repository root
    from easyblocks import api
    from easyblocks.train.loop import Trainer

    config = os.path.join(CONFIGS, MODELS[name][0])
    with tempfile.TemporaryDirectory(prefix="zoo_") as model_dir:
        resolved = api.resolve(config, overrides=[f"train_config {{ seed: {seed} }}"])
        trainer = Trainer(resolved, model_dir=model_dir)
        results = trainer.train()
        model = trainer.model
        tables = {id(v) for v in model.feature_groups.table_variables}
        total = sum(int(np.prod(v.shape)) for v in model.weights)
        embedding = sum(int(np.prod(v.shape)) for v in model.weights if id(v) in tables)
    out = {"name": name, "seed": seed, "steps": results["step"],
           "auc": {t: results["towers"][t]["overall"]["auc"] for t in MODELS[name][3]},
           "params_total": total, "params_dense": total - embedding,
           "expanded_from": resolved.model.expanded_from}
    print(MARKER + json.dumps(out), flush=True)


def run_one(name: str, seed: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", name, str(seed)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{name} seed {seed} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(MARKER):])


def _diff(name: str, per: list[dict], tower: str, ref: list[dict], ref_tower: str) -> str:
    m, s = mean_std(r["auc"][tower] for r in per)
    rm, rs = mean_std(r["auc"][ref_tower] for r in ref)
    text = f"{m - rm:+.4f}"
    if len(per) > 1 and abs(m - rm) > 2 * max(s, rs):
        text = f"**{text}**"
    return text


def report(argv: list[str], names: list[str], seeds: list[int], runs: dict, elapsed: float,
           load: tuple[float, float]) -> str:
    oracle = oracle_aucs()
    lines = [
        "# EasyRec's model classes (templates) vs the MLP",
        "",
        "Command:",
        "",
        "```",
        "python " + " ".join(shlex.quote(a) for a in argv),
        "```",
        "",
        f"Machine: {machine()}; shared with other work (load average {load[0]:.1f} at the "
        f"start, {load[1]:.1f} at the end), so no speed is reported: AUCs do not depend on "
        f"the load. Seeds: {', '.join(map(str, seeds))} (mean ± sample std over seeds). One "
        f"epoch over the 200k training rows (196 steps of 1024), test on the 50k test rows. "
        f"Every (model, seed) in a fresh process, seed-major. Total time {elapsed:.0f} s.",
        "",
        f"Oracle AUC (the true probabilities of samples/data/taobao_test.oracle.csv): "
        f"clk {oracle['clk']:.4f}, buy {oracle['buy']:.4f}.",
        "",
        "Each model class is its sample config in samples/configs, expanded by its template "
        "(`easyblocks validate --expand --config samples/configs/<file>` prints the backbone). "
        "clk - MLP: the clk tower's mean AUC minus the MLP's; buy - shared bottom: the buy "
        "tower's mean AUC minus the shared bottom's; **bold** where |difference| > 2 × the "
        "larger of the two stds.",
        "",
        "| model class | config | what | test AUC (mean ± std) | clk - MLP | buy - shared bottom "
        "| parameters dense / total |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        config, model_class, what, towers = MODELS[name]
        per = runs[name]
        aucs = []
        for tower, label in towers.items():
            m, s = mean_std(r["auc"][tower] for r in per)
            aucs.append(f"{tower} ({label}) {m:.4f} ± {s:.4f}")
        clk = next(t for t, label in towers.items() if label == "clk")
        vs_mlp = "(reference)" if name == "mlp" else _diff(name, per, clk, runs["mlp"], "clk")
        buy = next((t for t, label in towers.items() if label == "buy"), None)
        vs_sb = "" if buy is None else "(reference)" if name == "shared_bottom" else \
            _diff(name, per, buy, runs["shared_bottom"], "cvr")
        params = f"{per[0]['params_dense']:,} / {per[0]['params_total']:,}"
        lines.append(f"| {model_class} | `{config}` | {what} | {'<br>'.join(aucs)} | {vs_mlp} "
                     f"| {vs_sb} | {params} |")
    lines += ["", "Per run:", "", "| model | seed | test AUC | steps |", "|---|---|---|---|"]
    for i, seed in enumerate(seeds):
        for name in names:
            r = runs[name][i]
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            lines.append(f"| {name} | {seed} | {aucs} | {r['steps']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--_worker":
        worker(sys.argv[2], int(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                   help="subset (the MLP and the shared bottom always run: the references)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "zoo.md"))
    args = p.parse_args()
    names = ["mlp", "shared_bottom"] + [n for n in MODELS if n in args.models
                                        and n not in ("mlp", "shared_bottom")]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    for seed in args.seeds:
        for name in names:
            r = run_one(name, seed)
            runs[name].append(r)
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            print(f"{name} seed {seed}: {aucs}", flush=True)
    text = report(["benchmarks/zoo.py"] + sys.argv[1:], names, args.seeds, runs,
                  time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    if os.path.exists(args.out):  # the hand-written reading of the table stays
        with open(args.out, encoding="utf-8") as f:
            old = f.read()
        if NOTES in old:
            text += "\n" + old[old.index(NOTES):]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
