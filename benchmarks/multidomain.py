"""Multi-domain models (STAR, PEPNet, APG) against the MLP baseline, per domain, several seeds.

    python benchmarks/multidomain.py --seeds 1 2 3 --adult

Trains the samples `mlp_on_taobao` (the baseline: `pid` is an ordinary feature), `star_on_taobao`,
`pepnet_on_taobao` and `apg_on_taobao` on the shipped data (samples/data), each seed in a fresh
process, sequentially, seed-major (seed 1: every model, then seed 2, ...) so that a change in the
machine's load during the run hits every model alike. Reports test AUC overall and per `pid`
domain (mean ± sample std over the seeds) next to each domain's row count and oracle AUC,
parameter counts (embedding tables, the rest, total), and train examples/s as a ratio to the
baseline. With `--adult`, the same for `mlp_on_adult` vs `star_on_adult` (domain: `sector`) on
../shared/data/adult. With `--apg_micro` (on by default), a micro-benchmark of one APG layer
against the naive generator (the generator emits the whole N x M matrix per example):
forward+backward time per step and memory, each variant in a fresh process.

Writes docs/benchmarks/multidomain.md (`--out`) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402  # noqa: E402
    CONFIGS,
    DATA,
    ROOT,
    machine,
    mean_std,
    smoke_data,
    smoke_out,
    smoke_overrides,
    write_report,
)

sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TAOBAO_MODELS = [
    ("MLP (baseline)", "mlp_on_taobao"),
    ("STAR", "star_on_taobao"),
    ("PEPNet", "pepnet_on_taobao"),
    ("APG", "apg_on_taobao"),
]
ADULT_MODELS = [
    ("MLP (baseline)", "mlp_on_adult"),
    ("STAR", "star_on_adult"),
]
ADULT_DIR = os.path.join(ROOT, "..", "shared", "data", "adult")
PAPER_APG = "-38.7% time, -96.6% memory against the naive generator (Yan et al., NeurIPS 2022)"


# ---- child processes -------------------------------------------------------------------------
def _rss_kib(field: str) -> int:
    """VmRSS / VmHWM of this process in KiB (Linux), 0 where /proc is not available."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def child_train(config: str, seed: int, out: str, overrides=()) -> None:
    """Trains one config with one seed in this (fresh) process; writes the results as JSON."""
    from easyblocks import api
    from easyblocks.train.loop import Trainer

    with tempfile.TemporaryDirectory() as model_dir:
        resolved = api.resolve(config, overrides=[f"train_config {{ seed: {seed} }}",
                                                  *overrides])
        trainer = Trainer(resolved, model_dir=model_dir)
        size = lambda vs: int(sum(int(np.prod(v.shape)) for v in vs))  # noqa: E731
        tables = size(trainer.tables)
        total = int(trainer.model.count_params())
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        results = trainer.train()
        results["seconds"] = time.perf_counter() - t0
        results["load_before"], results["load_after"] = load0, os.getloadavg()[0]
        results["params"] = {
            "tables": tables,
            "dense_trainable": size(trainer.dense_vars),
            "dense": total - tables,  # every non-embedding variable, BN moving stats included
            "total": total,
        }
    with open(out, "w") as f:
        json.dump(results, f)


def child_micro(spec: dict, out: str) -> None:
    """Times forward+backward of one APG layer and records this process's peak RSS."""
    import tensorflow as tf

    from easyblocks.blocks.apg import APG

    tf.constant(1.0) + 1.0  # start the runtime before taking the RSS baseline
    rss0 = _rss_kib("VmRSS")
    n, m, b = spec["n"], spec["m"], spec["batch"]
    layer = APG(hidden_units=[m], rank_k=spec["k"], overparam_p=spec["p"], condition="self",
                naive_generator=spec["naive"])
    x = tf.random.stateless_normal([b, n], seed=[1, 2])
    layer(x)
    variables = layer.trainable_variables

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_mean(tf.square(y))
        grads = tape.gradient(loss, variables)
        # touch every gradient so that none of the backward pass is pruned
        return loss + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0.0

    times = []
    for i in range(spec["warmup"] + spec["reps"]):
        t0 = time.perf_counter()
        step(x).numpy()
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - t0)
    res = dict(spec)
    res.update(
        times=times,
        median_ms=1000 * float(np.median(times)),
        p25_ms=1000 * float(np.percentile(times, 25)),
        p75_ms=1000 * float(np.percentile(times, 75)),
        params=int(sum(int(np.prod(v.shape)) for v in variables)),
        rss0_mib=rss0 / 1024,
        peak_rss_mib=_rss_kib("VmHWM") / 1024,
        load=os.getloadavg()[0],
    )
    with open(out, "w") as f:
        json.dump(res, f)


def spawn(args: list[str], log_path: str, in_process: bool = False) -> bool:
    """Runs a child (`--_child_train ...` / `--_child_micro ...`) in a fresh process, or in
    this one (--smoke); False, with the end of its output printed, when it fails."""
    if in_process:
        child(args)
        return True
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log_path, "w") as log:
        rc = subprocess.call([sys.executable, os.path.abspath(__file__)] + args, cwd=ROOT,
                             stdout=log, stderr=subprocess.STDOUT, env=env)
    if rc:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        print(f"FAILED (exit {rc}): {' '.join(args)}\n{tail}", flush=True)
    return rc == 0


# ---- statistics and formatting ---------------------------------------------------------------
def fmt_ms(m: float, s: float) -> str:
    return f"{m:.4f} ± {s:.4f}"


def oracle_per_domain(data: str = DATA) -> dict:
    """Oracle clk AUC of the shipped test split, overall and per pid, with row counts."""
    from easyblocks.eval.metrics import auc

    oracle = np.loadtxt(os.path.join(data, "taobao_test.oracle.csv"), delimiter=",",
                        usecols=[0])
    labels = np.loadtxt(os.path.join(data, "taobao_test.csv"), delimiter=",", usecols=[0])
    pids = np.loadtxt(os.path.join(data, "taobao_test.csv"), delimiter=",", usecols=[2],
                      dtype=str)
    out = {"overall": (auc(labels, oracle), int(labels.size))}
    for p in np.unique(pids):
        mask = pids == p
        out[str(p)] = (auc(labels[mask], oracle[mask]), int(mask.sum()))
    return out


def train_suite(models, seeds, tmp: str, tag: str, overrides=(), in_process=False) -> dict:
    """{model name: [results per seed]} (None for a failed run), seed-major order."""
    runs = {name: [] for name, _ in models}
    for seed in seeds:
        for name, cfg in models:
            out = os.path.join(tmp, f"{tag}_{cfg}_{seed}.json")
            t0 = time.perf_counter()
            ok = spawn(["--_child_train", os.path.join(CONFIGS, cfg + ".config"), str(seed), out,
                        json.dumps(list(overrides))], out + ".log", in_process)
            res = json.load(open(out)) if ok else None
            runs[name].append(res)
            if res:
                tw = next(iter(res["towers"].values()))
                print(f"[{tag}] {name:<15} seed {seed}: AUC {tw['overall']['auc']:.4f} "
                      f"{res['train_examples_per_sec'] or 0:,.0f} ex/s "
                      f"({time.perf_counter() - t0:.0f} s, load {res['load_before']:.1f})",
                      flush=True)
    return runs


def suite_report(title: str, models, runs: dict, seeds, oracle: dict | None,
                 domain_label: str) -> list[str]:
    base_name = models[0][0]
    ok_runs = {n: [r for r in runs[n] if r] for n, _ in models}
    first = next(r for n, _ in models for r in ok_runs[n])
    tower = next(iter(first["towers"]))
    domains = sorted(first["towers"][tower]["domains"])
    counts = {d: int(first["towers"][tower]["domains"][d]["count"]) for d in domains}
    counts["overall"] = int(first["towers"][tower]["overall"]["count"])
    cols = ["overall"] + domains

    def aucs(name, col):
        vals = []
        for r in ok_runs[name]:
            t = r["towers"][tower]
            m = t["overall"] if col == "overall" else t["domains"].get(col)
            vals.append(m["auc"] if m else None)
        return vals

    stats = {(n, c): mean_std(aucs(n, c)) for n, _ in models for c in cols}
    speed = {n: mean_std([r["train_examples_per_sec"] for r in ok_runs[n]]) for n, _ in models}
    base_speed = speed[base_name][0]

    lines = [f"## {title}", ""]
    head = ["model"] + [f"AUC {c}" if c == "overall" else f"AUC {domain_label}={c}"
                        for c in cols]
    head += ["params dense", "params total (incl. embeddings)", "train ex/s (mean ± std)",
             "ex/s vs baseline"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref = []
    for c in cols:
        o = f"oracle {oracle[c][0]:.4f}, " if oracle and c in oracle else ""
        ref.append(f"*{o}n = {counts[c]:,}*")
    lines.append("| *test rows" + (" / oracle AUC" if oracle else "") + "* | "
                 + " | ".join(ref) + " | | | | |")
    for name, cfg in models:
        if not ok_runs[name]:
            lines.append(f"| {name} (`{cfg}`) | all runs failed |" + " |" * (len(head) - 2))
            continue
        p = ok_runs[name][0]["params"]
        s_m, s_s = speed[name]
        ratio = "1.00 (reference)" if name == base_name else f"{s_m / base_speed:.2f}"
        cells = [f"{name} (`{cfg}`)"] + [fmt_ms(*stats[(name, c)]) for c in cols]
        cells += [f"{p['dense']:,}", f"{p['total']:,}", f"{s_m:,.0f} ± {s_s:,.0f}", ratio]
        failed = len(runs[name]) - len(ok_runs[name])
        if failed:
            cells[0] += f" ({failed} run(s) failed)"
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")

    # verdict per column
    lines += ["Who wins where (rule: a difference counts when |mean diff| > 2 × the larger of "
              "the two stds; otherwise it is within the run-to-run spread):", ""]
    if len(seeds) < 2:
        lines += ["**One seed only: there is no estimate of the spread, so every difference "
                  "below is reported as beyond it. Run several seeds before concluding.**", ""]
    names = [n for n, _ in models if ok_runs[n]]
    for c in cols:
        col = f"{domain_label}={c}" if c != "overall" else "overall"
        order = sorted(names, key=lambda n: -stats[(n, c)][0])
        best, second = order[0], order[1] if len(order) > 1 else None
        parts = []
        if second:
            d = stats[(best, c)][0] - stats[(second, c)][0]
            spread = 2 * max(stats[(best, c)][1], stats[(second, c)][1])
            beyond = "beyond the spread" if d > spread else "within the spread"
            parts.append(f"best **{best}** ({stats[(best, c)][0]:.4f}), "
                         f"{d:+.4f} over {second}: {beyond} (2 × std = {spread:.4f})")
        vs = []
        for n in names:
            if n == base_name:
                continue
            d = stats[(n, c)][0] - stats[(base_name, c)][0]
            spread = 2 * max(stats[(n, c)][1], stats[(base_name, c)][1])
            if abs(d) <= spread:
                verdict = "tie (within spread)"
            else:
                verdict = "better" if d > 0 else "WORSE"
            vs.append(f"{n} {d:+.4f} {verdict}")
        if vs:
            parts.append("vs baseline: " + ", ".join(vs))
        lines.append(f"- {col}: " + "; ".join(parts))
    wins, losses = [], []
    for n in names:
        if n == base_name:
            continue
        for c in cols:
            d = stats[(n, c)][0] - stats[(base_name, c)][0]
            if abs(d) > 2 * max(stats[(n, c)][1], stats[(base_name, c)][1]):
                (wins if d > 0 else losses).append(
                    f"{n} on {c if c == 'overall' else domain_label + '=' + c}")
    lines.append("")
    lines.append("In short: " + (
        "beyond the spread, better than the baseline: " + ", ".join(wins) if wins else
        "no multi-domain model beats the baseline beyond the run-to-run spread anywhere")
        + "; " + ("worse than the baseline beyond the spread: " + ", ".join(losses)
                  if losses else "none is worse beyond the spread") + ".")
    lines.append("")

    # per run
    lines += ["<details><summary>Per run</summary>", "",
              "| model | seed | " + " | ".join(f"AUC {c}" for c in cols)
              + " | train ex/s | steps | wall s | load avg before/after |",
              "|" + "---|" * (len(cols) + 6)]
    for name, _ in models:
        for seed, r in zip(seeds, runs[name]):
            if r is None:
                lines.append(f"| {name} | {seed} | failed |" + " |" * (len(cols) + 3))
                continue
            t = r["towers"][tower]
            a = [t["overall"]["auc"]] + [t["domains"].get(d, {}).get("auc", float("nan"))
                                          for d in domains]
            lines.append(f"| {name} | {seed} | " + " | ".join(f"{x:.4f}" for x in a)
                         + f" | {r['train_examples_per_sec'] or 0:,.0f} | {r['step']} | "
                         f"{r['seconds']:.1f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    lines += ["", "</details>", ""]
    return lines


# ---- APG micro-benchmark ---------------------------------------------------------------------
def micro_suite(tmp: str, sizes, ks, batch: int, reps: int, warmup: int,
                in_process: bool = False) -> list[dict]:
    specs = []
    for n in sizes:
        specs.append(dict(n=n, m=n, k=0, p=0, naive=True))
        for k in ks:
            if k > n:
                continue
            specs.append(dict(n=n, m=n, k=k, p=0, naive=False))
            specs.append(dict(n=n, m=n, k=k, p=2 * k, naive=False))
    results = []
    for i, spec in enumerate(specs):
        spec.update(batch=batch, reps=reps, warmup=warmup)
        out = os.path.join(tmp, f"micro_{i}.json")
        if spawn(["--_child_micro", json.dumps(spec), out], out + ".log", in_process):
            r = json.load(open(out))
            results.append(r)
            what = "naive" if r["naive"] else f"K={r['k']} P={r['p']}"
            print(f"[apg micro] N=M={r['n']} {what}: {r['median_ms']:.2f} ms/step, "
                  f"peak RSS +{r['peak_rss_mib'] - r['rss0_mib']:.0f} MiB", flush=True)
    return results


def micro_report(results: list[dict], batch: int, reps: int, warmup: int) -> list[str]:
    lines = [
        "## APG layer vs the naive generator (micro-benchmark)",
        "",
        f"One `APG(hidden_units=[M], rank_k=K, overparam_p=P, condition=\"self\")` layer, N = M, "
        f"batch {batch}, float32, CPU; the naive baseline is the same block with "
        "`naive_generator=True` (its generator emits the full N × M matrix per example, "
        "y_i = x_i W_i + b). Time: one `tf.function` step computing the loss and the gradients "
        f"of every trainable variable (no optimizer update), median of {reps} steps after "
        f"{warmup} warm-up steps (25th-75th percentile in brackets); each variant in a fresh "
        "process, run one after another.",
        "",
        "Memory, two ways: *analytical* = the generated per-example tensor the layer "
        "materialises (naive: B × N × M floats for W_i; APG: B × K × K floats for S_i; "
        "float32), plus the layer's parameters; *measured* = the process's peak resident "
        "memory (VmHWM) minus its resident memory after TensorFlow started and before the "
        "layer was built (it includes weights, gradients, the TF allocator's caching and "
        "allocator slack; `tf.config.experimental.get_memory_info` does not support CPU).",
        "",
        "| N = M | variant | fwd+bwd ms / step | time vs naive | generated tensor (analytical) "
        "| layer params | analytical memory vs naive | peak RSS increase (measured) "
        "| measured memory vs naive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    naive = {r["n"]: r for r in results if r["naive"]}
    for r in results:
        n, m = r["n"], r["m"]
        gen = batch * n * m if r["naive"] else batch * r["k"] * r["k"]
        ana = (gen + r["params"]) * 4 / 2**20
        meas = r["peak_rss_mib"] - r["rss0_mib"]
        nv = naive.get(n)
        if r["naive"]:
            variant = "naive (W_i generated)"
            t_rel = m_rel = meas_rel = "reference"
        else:
            variant = f"APG K={r['k']}, P={r['p'] or 'none'}"
            t_rel = m_rel = meas_rel = "n/a"
            if nv:
                t_rel = f"{100 * (r['median_ms'] / nv['median_ms'] - 1):+.1f}%"
                nv_ana = (batch * n * m + nv["params"]) * 4 / 2**20
                m_rel = f"{100 * (ana / nv_ana - 1):+.1f}%"
                nv_meas = nv["peak_rss_mib"] - nv["rss0_mib"]
                meas_rel = f"{100 * (meas / nv_meas - 1):+.1f}%" if nv_meas > 0 else "n/a"
        gen_txt = (f"{batch}×{n}×{m} = {gen:,} floats ({gen * 4 / 2**20:,.1f} MiB)"
                   if r["naive"] else
                   f"{batch}×{r['k']}×{r['k']} = {gen:,} floats ({gen * 4 / 2**20:,.2f} MiB)")
        lines.append(
            f"| {n} | {variant} | {r['median_ms']:.2f} [{r['p25_ms']:.2f}-{r['p75_ms']:.2f}] "
            f"| {t_rel} | {gen_txt} | {r['params']:,} | {m_rel} (total {ana:,.1f} MiB) "
            f"| {meas:,.0f} MiB | {meas_rel} |")
    lines += ["", f"Paper's claim: {PAPER_APG}.", ""]
    return lines


# ---- main ------------------------------------------------------------------------------------
def child(args: list[str]) -> None:
    if args[0] == "--_child_train":
        child_train(args[1], int(args[2]), args[3], json.loads(args[4]))
    else:
        child_micro(json.loads(args[1]), args[2])


# --smoke: the baseline and STAR trained (the other samples resolved), one tiny APG size
SMOKE_MODELS = TAOBAO_MODELS[:2]
SMOKE_MICRO = dict(micro_sizes=[8], micro_ks=[2], micro_batch=16, micro_reps=2, micro_warmup=1)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) > 1 and argv[1] in ("--_child_train", "--_child_micro"):
        child(argv[1:])
        return

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--adult", action="store_true",
                   help="also mlp_on_adult vs star_on_adult on ../shared/data/adult")
    p.add_argument("--apg_micro", action=argparse.BooleanOptionalAction, default=True,
                   help="APG layer vs naive generator micro-benchmark (default: on)")
    p.add_argument("--taobao", action=argparse.BooleanOptionalAction, default=True,
                   help="the four models on the shipped data (default: on)")
    p.add_argument("--micro_sizes", type=int, nargs="+", default=[64, 256, 512])
    p.add_argument("--micro_ks", type=int, nargs="+", default=[16, 32])
    p.add_argument("--micro_batch", type=int, default=1024)
    p.add_argument("--micro_reps", type=int, default=20)
    p.add_argument("--micro_warmup", type=int, default=3)
    p.add_argument("--out", default=None, help="default: docs/benchmarks/multidomain.md")
    p.add_argument("--smoke", action="store_true",
                   help="CI: the first rows of the shipped data, one seed, the baseline and "
                        "STAR trained (PEPNet and APG resolved), adult skipped, one tiny APG "
                        "layer, all in this process; the report goes to a temporary file "
                        "unless --out")
    args = p.parse_args(argv[1:])
    os.chdir(ROOT)
    tmp = tempfile.mkdtemp(prefix="multidomain_")
    models, data, overrides = TAOBAO_MODELS, DATA, []
    if args.smoke:
        from easyblocks import api

        for _, cfg in TAOBAO_MODELS[len(SMOKE_MODELS):]:
            api.resolve(os.path.join(CONFIGS, cfg + ".config"))
        models, data = SMOKE_MODELS, smoke_data(os.path.join(tmp, "data"))
        overrides = smoke_overrides(data)
        args.seeds, args.adult, args.taobao, args.apg_micro = [1], False, True, True
        vars(args).update(SMOKE_MICRO)
        print("--smoke: adult skipped (a smoke run reads only the first rows of samples/data)",
              flush=True)
    out = smoke_out(args.out, os.path.join(tmp, "report"), "multidomain") if args.smoke else \
        args.out or os.path.join(ROOT, "docs", "benchmarks", "multidomain.md")
    t_start = time.perf_counter()
    load_start = os.getloadavg()

    cmd = "python benchmarks/multidomain.py " + " ".join(argv[1:])

    lines = [
        "# Multi-domain models (STAR, PEPNet, APG) vs the MLP baseline",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {machine()}. "
        f"Seeds {', '.join(map(str, args.seeds))}; AUC is mean ± "
        "sample std over the seeds, each run in a fresh process, run sequentially in seed-major "
        "order (seed 1: every model, then seed 2, ...). Train examples/s is measured after the "
        "first logging window and is only meaningful as a ratio to the baseline in the same "
        "command; the machine is shared, so load from other work can shift single runs (the "
        "load average of each run is in the per-run tables)."
        + (f" --smoke: the first rows of samples/data ({data}), every child in one process; "
           "the numbers mean nothing." if args.smoke else ""),
        "",
        "Parameters: *dense* = every variable that is not an embedding table (batch-norm moving "
        "statistics included); *total* = `model.count_params()`, embedding tables included.",
        "",
    ]
    body = []
    if args.taobao:
        oracle = oracle_per_domain(data)
        runs = train_suite(models, args.seeds, tmp, "taobao", overrides, args.smoke)
        body += suite_report("Shipped Taobao-like data (domain: pid, tower clk, one epoch)",
                             models, runs, args.seeds, oracle, "pid")
        body += [
            "The baseline sees `pid` as one more embedded feature (hash_bucket_size 10); STAR, "
            "PEPNet and APG take it as their domain input (a vocab_list IdFeature: bucket ids "
            "0-2, 3 = unseen) and not in the main feature group. The oracle AUC is that of the "
            "true click probability the synthetic data was drawn with: the best any model can "
            "reach.",
            "",
        ]
    if args.adult:
        if os.path.isdir(ADULT_DIR):
            runs = train_suite(ADULT_MODELS, args.seeds, tmp, "adult")
            body += suite_report("UCI Adult (domain: sector, tower income, 8 epochs)",
                                 ADULT_MODELS, runs, args.seeds, None, "sector")
            body += [
                "No oracle exists for real data. `sector` is derived from `workclass` "
                "(private = Private; government = Federal/State/Local-gov; self_employed = "
                "Self-emp-inc/not-inc; other = ?, Without-pay, Never-worked), and `workclass` is "
                "in both models' main feature group, so the domain carries little information "
                "that the features do not already hold.",
                "",
            ]
        else:
            msg = f"--adult: {os.path.normpath(ADULT_DIR)} is missing; skipped the Adult runs."
            print(msg, flush=True)
            body += ["## UCI Adult", "", msg, ""]
    if args.apg_micro:
        res = micro_suite(tmp, args.micro_sizes, args.micro_ks, args.micro_batch,
                          args.micro_reps, args.micro_warmup, args.smoke)
        if res:
            body += micro_report(res, args.micro_batch, args.micro_reps, args.micro_warmup)
    lines += body
    lines += [f"Total time {time.perf_counter() - t_start:.0f} s; load average at the start "
              f"{load_start[0]:.2f}, at the end {os.getloadavg()[0]:.2f}.", ""]
    text = "\n".join(lines)
    write_report(out, text)
    if out != smoke_out(None, os.path.join(tmp, "report"), "multidomain"):
        shutil.rmtree(tmp, ignore_errors=True)  # failed runs' log tails were printed already
    else:  # the smoke's report stays in tmp/report
        for name in os.listdir(tmp):
            if name != "report":
                path = os.path.join(tmp, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
