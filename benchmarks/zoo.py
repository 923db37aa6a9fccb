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
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classic import oracle_aucs  # noqa: E402
from common import (  # noqa: E402
    CONFIGS,
    DATA,
    ROOT,
    command_block,
    machine,
    mean_std,
    model_run_args,
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


# --smoke trains the two references; every model class's sample is validated (parsed,
# expanded by its template, built on a synthetic batch)
SMOKE_MODELS = ["mlp", "shared_bottom"]


def train_one(name: str, seed: int, overrides=()) -> dict:
    r = train_sample(os.path.join(CONFIGS, MODELS[name][0]), seed, MODELS[name][3], overrides)
    r["name"] = name
    return r


def run_one(name: str, seed: int, overrides=(), in_process: bool = False) -> dict:
    """One (model, seed) in a fresh process (in this one for --smoke)."""
    if in_process:
        return train_one(name, seed, overrides)
    return run_sample_worker(__file__, MARKER, name, seed, overrides)


def _diff(name: str, per: list[dict], tower: str, ref: list[dict], ref_tower: str) -> str:
    m, s = mean_std(r["auc"][tower] for r in per)
    rm, rs = mean_std(r["auc"][ref_tower] for r in ref)
    text = f"{m - rm:+.4f}"
    if len(per) > 1 and abs(m - rm) > 2 * max(s, rs):
        text = f"**{text}**"
    return text


DATA_NOTE = ("One epoch over the 200k training rows (196 steps of 1024), test on the 50k test "
             "rows.")


def report(argv: list[str], names: list[str], seeds: list[int], runs: dict, elapsed: float,
           load: tuple[float, float], data: str = DATA, data_note: str = DATA_NOTE,
           validated: list[str] = ()) -> str:
    oracle = oracle_aucs(data)
    lines = [
        "# EasyRec's model classes (templates) vs the MLP",
        "",
        *command_block(argv),
        f"Machine: {machine()}; shared with other work (load average {load[0]:.1f} at the "
        f"start, {load[1]:.1f} at the end), so no speed is reported: AUCs do not depend on "
        f"the load. Seeds: {', '.join(map(str, seeds))} (mean ± sample std over seeds). "
        f"{data_note} Every (model, seed) in a fresh process, seed-major. Total time "
        f"{elapsed:.0f} s.",
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
    if validated:
        lines += ["", "Validated, not trained (--smoke): " + ", ".join(
            f"{MODELS[n][1]} (`{MODELS[n][0]}`)" for n in validated) + "."]
    lines += ["", "Per run:", "", "| model | seed | test AUC | steps |", "|---|---|---|---|"]
    for i, seed in enumerate(seeds):
        for name in names:
            r = runs[name][i]
            aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
            lines.append(f"| {name} | {seed} | {aucs} | {r['steps']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if serve_sample_worker(argv, train_one, MARKER):
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_run_args(p, MODELS, "subset (the MLP and the shared bottom always run: the "
                   "references)", "zoo.md", "CI: the first rows of the shipped data, one seed, "
                   f"{', '.join(SMOKE_MODELS)} trained in this process, every other model "
                   "class's sample validated; the report goes to a temporary file unless --out")
    args = p.parse_args(argv[1:])
    data, data_note, overrides, validated, tmp = DATA, DATA_NOTE, [], [], None
    if args.smoke:
        from easyblocks import api

        tmp = tempfile.mkdtemp(prefix="zoo_")
        os.chdir(ROOT)
        validated = [n for n in MODELS if n not in SMOKE_MODELS]
        for name in validated:
            api.validate_config(os.path.join(CONFIGS, MODELS[name][0]))
        data = smoke_data(os.path.join(tmp, "data"))
        overrides = smoke_overrides(data)
        args.seeds, args.models = [1], SMOKE_MODELS
        data_note = smoke_note(data)
    out = smoke_out(args.out, tmp, "zoo") if args.smoke else \
        args.out or os.path.join(ROOT, "docs", "benchmarks", "zoo.md")
    names = ["mlp", "shared_bottom"] + [n for n in MODELS if n in args.models
                                        and n not in ("mlp", "shared_bottom")]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    runs = seed_major(names, args.seeds,
                      lambda name, seed: run_one(name, seed, overrides, in_process=args.smoke))
    text = report(["benchmarks/zoo.py"] + argv[1:], names, args.seeds, runs,
                  time.perf_counter() - t0, (load0, os.getloadavg()[0]), data, data_note,
                  validated)
    if not args.smoke and os.path.exists(out):  # the hand-written reading of the table stays
        with open(out, encoding="utf-8") as f:
            old = f.read()
        if NOTES in old:
            text += "\n" + old[old.index(NOTES):]
    write_report(out, text)
    if tmp:
        shutil.rmtree(os.path.join(tmp, "data"), ignore_errors=True)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
