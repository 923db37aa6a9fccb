"""Classic CTR models (the survey seed 002) against the MLP on the shipped Taobao-like data.

    python benchmarks/classic.py --seeds 1 2 3 --out docs/benchmarks/classic.md

Trains the MLP reference (samples/configs/mlp_on_taobao.config) and each classic sample
(Wide & Deep, DeepFM, MLR, IPNN, DIN, DSSM, ESMM; plus shared-bottom as the multi-task
reference for ESMM's buy tower) for one epoch per seed, and writes a markdown report: test AUC
per task (mean ± sample std over the seeds), the oracle AUC of that label (the true
probabilities in samples/data/taobao_test.oracle.csv), the AUC difference to the MLP, train
examples/s and its ratio to the MLP's examples/s measured in the same command, and the
parameter counts.

Each (model, seed) runs in its own Python process, one at a time, seed-major (every model for
seed 1, then every model for seed 2, ...), so that one run's threads, graphs and memory do not
disturb the next and a slow phase of a shared machine hits every model alike. Examples/s is
`train_examples_per_sec` as `api.train` reports it (after the first logging window of 50
steps, which includes tracing); the table gives its median over the seeds, and the ratio of
medians to the MLP, since a burst of other work on a shared machine can halve a single run.
Speed is only meaningful as that ratio within one command.

AUCs are deterministic per seed on one machine (the same seed gives the same AUC in every
run); one-epoch AUCs vary by about 0.005-0.01 between seeds (the MLP: 0.598-0.622 over seeds
1-5 and 2024), so read differences below ~0.01 with care.

Variants derived from the samples (written to a temporary directory): DeepFM with the FM
term's scale fixed at the paper's 1 (`deepfm_alpha1`) and learned without the >= 0 constraint
(`deepfm_free_alpha`), DIN with the paper's unnormalised weights (`din_unnormalized`).
`--models` picks a subset (the MLP always runs: it is the reference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "samples", "configs")
DATA = os.path.join(ROOT, "samples", "data")
MARKER = "CLASSIC_RESULT "

# name -> (config file, what it is, {tower: label})
MODELS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mlp": ("mlp_on_taobao.config", "MLP 512-256-128-64 (reference)", {"clk": "clk"}),
    "wide_and_deep": ("wide_and_deep_on_taobao.config",
                      "Wide & Deep: WIDE ids (add_to_logit) + MLP", {"clk": "clk"}),
    "deepfm": ("deepfm_on_taobao.config",
               "DeepFM: linear + alpha FM + MLP, shared embeddings, alpha >= 0 learned from 0",
               {"clk": "clk"}),
    # variants of the DeepFM sample, written by `derived_configs`
    "deepfm_alpha1": ("deepfm_on_taobao.config", "DeepFM, alpha = 1 (the paper's form)",
                      {"clk": "clk"}),
    "deepfm_free_alpha": ("deepfm_on_taobao.config",
                          "DeepFM, alpha learned from 0 without the >= 0 constraint",
                          {"clk": "clk"}),
    "mlr": ("mlr_on_taobao.config", "MLR m=12: user divides, ad fits, pid bias",
            {"clk": "clk"}),
    "pnn": ("pnn_on_taobao.config", "IPNN: MLP([z, inner products])", {"clk": "clk"}),
    "din": ("din_on_taobao.config",
            "DIN over tag_category_list, candidate cate_id, softmax weights", {"clk": "clk"}),
    "din_unnormalized": ("din_on_taobao.config", "DIN, unnormalised weights (the paper's form)",
                         {"clk": "clk"}),
    "dssm": ("dssm_on_taobao.config", "DSSM two towers, cosine / 0.1", {"clk": "clk"}),
    "shared_bottom": ("shared_bottom_on_taobao.config",
                      "shared bottom (multi-task reference for ESMM)",
                      {"ctr": "clk", "cvr": "buy"}),
    "esmm": ("esmm_on_taobao.config", "ESMM: p_ctcvr = p_cvr x p_ctr",
             {"ctr": "clk", "ctcvr": "buy"}),
}
ORACLE_COLUMN = {"clk": 0, "buy": 1}  # columns of taobao_test.oracle.csv (and of the labels)
# ESMM's CVR task: p(buy | clk) ranked on the clicked test rows (the paper's CVR AUC); the
# prediction used for it per model (shared-bottom's cvr tower predicts p(buy) on all rows)
CVR_ON_CLICKS = {"esmm": "cond_probs_ctcvr", "shared_bottom": "probs_cvr"}
VARIANTS = {"deepfm_alpha1", "deepfm_free_alpha", "din_unnormalized"}  # see derived_configs


def derived_configs(tmp: str) -> dict[str, str]:
    """name -> config path, for every model; the variants of samples are written into tmp."""
    paths = {name: os.path.join(CONFIGS, spec[0]) for name, spec in MODELS.items()}
    with open(paths["deepfm"], encoding="utf-8") as f:
        deepfm = f.read()
    with open(paths["din"], encoding="utf-8") as f:
        din = f.read()
    # DeepFM: the FM term added as it is (alpha = 1) instead of through `fm_term`
    fixed = re.sub(r"\n    # alpha \* fm, alpha learned from 0, kept >= 0\n"
                   r"    blocks \{\n      name: \"fm_term\".*?\n    \}\n", "\n", deepfm, count=1,
                   flags=re.S)
    fixed = fixed.replace('add_to_logit: "fm_term"', 'add_to_logit: "fm"')
    # DeepFM: alpha without its non_neg constraint
    constraint = '          fields { key: "kernel_constraint" value { string_value: "non_neg" } }\n'
    free = deepfm.replace(constraint, "")
    # DIN: the paper's unnormalised attention weights
    softmax = ('        st_params { fields { key: "normalize" value { string_value: "softmax" } } }'
               '\n')
    unnormalized = din.replace(softmax, "")
    if 'name: "fm_term"' in fixed or 'add_to_logit: "fm"\n' not in fixed or free == deepfm or \
            unnormalized == din:
        raise SystemExit("deepfm_on_taobao.config or din_on_taobao.config changed: cannot "
                         "derive their variants")
    for name, variant in (("deepfm_alpha1", fixed), ("deepfm_free_alpha", free),
                          ("din_unnormalized", unnormalized)):
        paths[name] = os.path.join(tmp, f"{name}.config")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(variant)
    return paths


# ---- one run, in a child process -------------------------------------------------------------
def worker(name: str, seed: int, config: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)  # the sample configs use paths relative to the repository root
    from easyblocks import api
    from easyblocks.eval.evaluator import Evaluator
    from easyblocks.eval.metrics import auc
    from easyblocks.train.loop import Trainer

    with tempfile.TemporaryDirectory(prefix="classic_") as model_dir:
        resolved = api.resolve(config, overrides=[f"train_config {{ seed: {seed} }}"])
        trainer = Trainer(resolved, model_dir=model_dir)
        t0 = time.perf_counter()
        results = trainer.train()
        wall_s = time.perf_counter() - t0
        model = trainer.model
        tables = {id(v) for v in model.feature_groups.table_variables}
        total = sum(int(np.prod(v.shape)) for v in model.weights)
        embedding = sum(int(np.prod(v.shape)) for v in model.weights if id(v) in tables)
        cvr_auc = None
        if name in CVR_ON_CLICKS:
            eval_file = os.path.join(ROOT, resolved.eval_input_path)
            arrays = Evaluator(trainer.state).predict_arrays([eval_file])
            clicked = arrays["clk"] == 1
            cvr_auc = auc(arrays["buy"][clicked], arrays[CVR_ON_CLICKS[name]][clicked])
        # DeepFM's learned scale of the FM term
        alpha = [float(np.ravel(v.numpy())[0]) for v in model.weights
                 if "fm_term" in v.path and v.path.endswith("kernel")]
    out = {
        "name": name, "seed": seed, "steps": results["step"], "wall_s": wall_s,
        "examples_per_sec": results["train_examples_per_sec"],
        "auc": {t: results["towers"][t]["overall"]["auc"] for t in MODELS[name][2]},
        "params_total": total, "params_dense": total - embedding,
        "alpha": alpha[0] if alpha else None, "cvr_on_clicks_auc": cvr_auc,
    }
    print(MARKER + json.dumps(out), flush=True)


def run_one(name: str, seed: int, config: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", name, str(seed), config]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{name} seed {seed} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(MARKER):])


# ---- statistics and the report ---------------------------------------------------------------
def mean_std(values) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def median(values) -> float:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return float(np.median(a)) if a.size else float("nan")


def oracle_aucs() -> dict[str, float]:
    from easyblocks.eval.metrics import auc

    labels = np.loadtxt(os.path.join(DATA, "taobao_test.csv"), delimiter=",", usecols=[0, 1],
                        dtype=np.int64)
    oracle = np.loadtxt(os.path.join(DATA, "taobao_test.oracle.csv"), delimiter=",")
    result = {label: auc(labels[:, col], oracle[:, col]) for label, col in ORACLE_COLUMN.items()}
    clicked = labels[:, 0] == 1
    result["buy | clk"] = auc(labels[clicked, 1], oracle[clicked, 1] / oracle[clicked, 0])
    return result


def machine() -> str:
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"nproc {nproc} ({cpu}), no GPU used, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}")


def report(argv: list[str], names: list[str], seeds: list[int], runs: dict, elapsed: float,
           load: tuple[float, float]) -> str:
    oracle = oracle_aucs()
    ref = runs["mlp"]
    ref_speed = median(r["examples_per_sec"] for r in ref)
    ref_auc = mean_std(r["auc"]["clk"] for r in ref)
    lines = [
        "# Classic CTR models (seed 002) vs the MLP",
        "",
        "Command:",
        "",
        "```",
        "python " + " ".join(shlex.quote(a) for a in argv),
        "```",
        "",
        f"Machine: {machine()}. Seeds: {', '.join(map(str, seeds))} (mean ± sample std over "
        f"seeds). One epoch over the 200k training rows (196 steps of 1024), test on the 50k "
        f"test rows. Every (model, seed) in a fresh process, seed-major. Load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end. Total time {elapsed:.0f} s.",
        "",
        f"Oracle AUC (the true probabilities of samples/data/taobao_test.oracle.csv): "
        f"clk {oracle['clk']:.4f}, buy {oracle['buy']:.4f}; p(buy | clk) = p_buy / p_clk on "
        f"the clicked test rows: {oracle['buy | clk']:.4f}.",
        "",
        "Examples/s: the median over the seeds (mean ± std in brackets), as other work on a "
        "shared machine slows single runs down; ratio: the model's median over the MLP's median "
        "in this command. pCVR on clicked rows: the conversion prediction (ESMM's "
        "cond_probs_ctcvr, shared-bottom's cvr tower) ranked against buy on the test rows "
        "with clk = 1, ESMM's CVR task. AUC - MLP: the clk (ctr) tower's mean AUC minus the "
        "MLP's; **bold** where |difference| > 2 × the larger of the two stds (with at least 2 "
        "seeds).",
        "",
        "| model | config | test AUC (mean ± std) | oracle AUC | AUC - MLP (clk) "
        "| train examples/s median (mean ± std) | examples/s ratio vs MLP "
        "| parameters dense / total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        config, what, towers = MODELS[name]
        per = runs[name]
        aucs, oracles = [], []
        for tower, label in towers.items():
            m, s = mean_std(r["auc"][tower] for r in per)
            aucs.append(f"{tower} ({label}) {m:.4f} ± {s:.4f}")
            oracles.append(f"{label} {oracle[label]:.4f}")
        if name in CVR_ON_CLICKS:
            m, s = mean_std(r["cvr_on_clicks_auc"] for r in per)
            aucs.append(f"pCVR on clicked rows (buy) {m:.4f} ± {s:.4f}")
            oracles.append(f"buy \\| clk {oracle['buy | clk']:.4f}")
        clk_tower = next(t for t, label in towers.items() if label == "clk")
        m, s = mean_std(r["auc"][clk_tower] for r in per)
        diff = m - ref_auc[0]
        diff_s = f"{diff:+.4f}"
        if name == "mlp":
            diff_s = "(reference)"
        elif len(per) > 1 and abs(diff) > 2 * max(s, ref_auc[1]):
            diff_s = f"**{diff_s}**"
        sm, ss = mean_std(r["examples_per_sec"] for r in per)
        med = median(r["examples_per_sec"] for r in per)
        ratio = "1.00 (reference)" if name == "mlp" else f"{med / ref_speed:.2f}"
        params = f"{per[0]['params_dense']:,} / {per[0]['params_total']:,}"
        cfg = f"`{config}`" + (" (variant)" if name in VARIANTS else "")
        lines.append(
            f"| {what} | {cfg} | {'<br>'.join(aucs)} | {'<br>'.join(oracles)} | {diff_s} "
            f"| {med:,.0f} ({sm:,.0f} ± {ss:,.0f}) | {ratio} | {params} |")
    lines += [
        "",
        "Per run:",
        "",
        "| model | seed | test AUC | train examples/s | steps | wall s | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed_index, seed in enumerate(seeds):
        for name in names:
            r = runs[name][seed_index]
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            if r.get("cvr_on_clicks_auc") is not None:
                aucs += f", pCVR on clicked rows {r['cvr_on_clicks_auc']:.4f}"
            note = f"learned alpha {r['alpha']:.4f}" if r.get("alpha") is not None else ""
            lines.append(f"| {name} | {seed} | {aucs} | {r['examples_per_sec'] or 0:,.0f} "
                         f"| {r['steps']} | {r['wall_s']:.1f} | {note} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--_worker":
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                   help="subset of the models (the MLP reference always runs)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "classic.md"))
    args = p.parse_args()
    sys.path.insert(0, ROOT)
    names = ["mlp"] + [n for n in MODELS if n in args.models and n != "mlp"]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="classic_configs_")
    configs = derived_configs(tmp)
    for seed in args.seeds:
        for name in names:
            r = run_one(name, seed, configs[name])
            runs[name].append(r)
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            print(f"{name} seed {seed}: {aucs}; {r['examples_per_sec'] or 0:,.0f} examples/s; "
                  f"{r['wall_s']:.1f} s", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    text = report(["benchmarks/classic.py"] + sys.argv[1:], names, args.seeds, runs,
                  time.perf_counter() - t0, (load0, os.getloadavg()[0]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
