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
import re
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    CONFIGS,
    DATA,
    ROOT,
    command_block,
    machine,
    mean_std,
    median,
    model_run_args,
    run_worker,
    seed_major,
    smoke_data,
    smoke_note,
    smoke_out,
    smoke_overrides,
    train_sample,
    write_report,
)

MARKER = "CLASSIC_RESULT "
# --smoke: the MLP reference and ESMM (pCVR on clicked rows) are trained; every other config,
# the derived variants included, is resolved
SMOKE_MODELS = ["mlp", "esmm"]

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
def train_one(name: str, seed: int, config: str, overrides=()) -> dict:
    r = train_sample(config, seed, MODELS[name][2], overrides, CVR_ON_CLICKS.get(name))
    r["name"] = name
    return r


def run_one(name: str, seed: int, config: str, overrides=(), in_process: bool = False) -> dict:
    """One (model, seed) in a fresh process (in this one for --smoke)."""
    if in_process:
        return train_one(name, seed, config, overrides)
    return run_worker(__file__, ["--_worker", name, str(seed), config, json.dumps(overrides)],
                      MARKER, f"{name} seed {seed}")


# ---- statistics and the report ---------------------------------------------------------------
def oracle_aucs(data: str = DATA) -> dict[str, float]:
    from easyblocks.eval.metrics import auc

    labels = np.loadtxt(os.path.join(data, "taobao_test.csv"), delimiter=",", usecols=[0, 1],
                        dtype=np.int64)
    oracle = np.loadtxt(os.path.join(data, "taobao_test.oracle.csv"), delimiter=",")
    result = {label: auc(labels[:, col], oracle[:, col]) for label, col in ORACLE_COLUMN.items()}
    clicked = labels[:, 0] == 1
    result["buy | clk"] = auc(labels[clicked, 1], oracle[clicked, 1] / oracle[clicked, 0])
    return result


DATA_NOTE = ("One epoch over the 200k training rows (196 steps of 1024), test on the 50k test "
             "rows.")


def report(argv: list[str], names: list[str], seeds: list[int], runs: dict, elapsed: float,
           load: tuple[float, float], data: str = DATA, data_note: str = DATA_NOTE) -> str:
    oracle = oracle_aucs(data)
    ref = runs["mlp"]
    ref_speed = median(r["examples_per_sec"] for r in ref)
    ref_auc = mean_std(r["auc"]["clk"] for r in ref)
    lines = [
        "# Classic CTR models (seed 002) vs the MLP",
        "",
        *command_block(argv),
        f"Machine: {machine()}. Seeds: {', '.join(map(str, seeds))} (mean ± sample std over "
        f"seeds). {data_note} Every (model, seed) in a fresh process, seed-major. Load average "
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


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) == 6 and argv[1] == "--_worker":
        r = train_one(argv[2], int(argv[3]), argv[4], json.loads(argv[5]))
        print(MARKER + json.dumps(r), flush=True)
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_run_args(p, MODELS, "subset of the models (the MLP reference always runs)",
                   "classic.md", "CI: the first rows of the shipped data, one seed, "
                   f"{', '.join(SMOKE_MODELS)} trained (the MLP in a fresh process, the rest "
                   "in this one), every other config resolved; the report goes to a "
                   "temporary file unless --out")
    args = p.parse_args(argv[1:])
    sys.path.insert(0, ROOT)
    tmp = tempfile.mkdtemp(prefix="classic_")
    configs = derived_configs(tmp)
    data, data_note, overrides = DATA, DATA_NOTE, []
    if args.smoke:
        from easyblocks import api

        for name in MODELS:  # the configs that do not train here still resolve
            api.resolve(configs[name])
        data = smoke_data(os.path.join(tmp, "data"))
        overrides = smoke_overrides(data)
        args.seeds, args.models = [1], SMOKE_MODELS
        data_note = smoke_note(data, "the MLP in a fresh process, the rest in this one")
    out = smoke_out(args.out, tmp, "classic") if args.smoke else \
        args.out or os.path.join(ROOT, "docs", "benchmarks", "classic.md")
    names = ["mlp"] + [n for n in MODELS if n in args.models and n != "mlp"]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    # --smoke: the MLP through the fresh-process launcher (so that it is tested), the rest here
    runs = seed_major(names, args.seeds, lambda name, seed: run_one(
        name, seed, configs[name], overrides, in_process=args.smoke and name != "mlp"))
    text = report(["benchmarks/classic.py"] + argv[1:], names, args.seeds, runs,
                  time.perf_counter() - t0, (load0, os.getloadavg()[0]), data, data_note)
    write_report(out, text)
    # a --smoke report without --out stays in tmp; the data and configs go
    shutil.rmtree(os.path.join(tmp, "data") if out == smoke_out(None, tmp, "classic") else tmp,
                  ignore_errors=True)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
