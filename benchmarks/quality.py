"""Model quality on data nobody tuned for: the sample models on several data sets, several
seeds, with candidate defaults side by side, next to hand-written plain-Keras references.

    python benchmarks/quality.py             # the final table: docs/benchmarks/quality.md
    python benchmarks/quality.py --smoke     # CI: tiny data, one seed, < 1 minute

Data sets (`--datasets`):
  shipped     samples/data (200k / 50k rows, Taobao layout, rows in random order)
  adult       ../shared/data/adult (UCI Adult, real; `--adult_dir`), the *_on_adult samples
  longtail    generated (easyblocks.data.synthetic, other seed and structure): 150k users and
              40k ads with long-tailed activity, so most hashed ids are seen a handful of
              times; a different scenario mix; 120k / 30k rows
  timesorted  generated: ads live for 30 % of the period, the scenario mix drifts; training
              rows in time order, test rows from the period after (half of them show ads
              never seen in training); 120k / 30k rows
The generated sets are written once into `--data_dir` (deterministic).

Models (`--models`): the sample configs, each on every data set whose layout it has
(mlp, shared_bottom, mmoe, aitm, star, pepnet, apg on the Taobao layout; the same but AITM on
adult, whose two labels, income and never_married, are not the steps of a funnel that AITM
models; the classic samples on the Taobao layout).

Candidates (`--candidates`): a default of easyblocks each, applied in the worker process before
the model is built (an embedding initializer for tables whose feature sets none, x the
normalization of every BatchNorm / partitioned normalization), plus optional config overrides
(a column such as early stopping is one more entry in CANDIDATES with its `overrides`).
`default` is whatever easyblocks does by default; `easyblocks_0_1` reproduces the first
release (truncated normal 1/sqrt(dim), Keras-style moving statistics at momentum 0.99).

References (`--references`): `keras_mlp` (benchmarks/keras_reference.py's hand-written MLP
for the Taobao layout, and the hand-written adult MLP below) and `keras_shared_bottom`.

Each run is a fresh Python process, one at a time; results are cached in `--results`
(JSON lines) keyed by data set, model, candidate and seed, so an interrupted benchmark
resumes where it stopped and the report can be rebuilt (`--report_only`).

`--shuffle_study` trains the MLP on the time-sorted set with several `shuffle_buffer_size`
values and reports AUC and the buffer's memory (part of docs/benchmarks/quality.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONFIGS = os.path.join(ROOT, "samples", "configs")
SHIPPED = os.path.join(ROOT, "samples", "data")

# ---- data sets ----------------------------------------------------------------------------------
GENERATED = {
    "longtail": dict(train_rows=120_000, test_rows=30_000, seed=7, num_users=150_000,
                     num_ads=40_000, user_activity_sigma=2.0, ad_popularity_sigma=1.5,
                     user_taste_noise=1.0, pid_share=[0.2, 0.5, 0.3]),
    "timesorted": dict(train_rows=120_000, test_rows=30_000, seed=11, num_ads=20_000,
                       ad_lifetime=0.3, pid_share=[0.5, 0.3, 0.2]),
}
SMOKE_GENERATED = {
    "smoke": dict(train_rows=6_000, test_rows=2_000, seed=5, num_users=20_000, num_ads=4_000,
                    user_activity_sigma=2.0, ad_lifetime=0.3),
}
DATASET_DOC = {
    "shipped": "samples/data: 200k / 50k rows, rows in random order (the data the samples were "
               "written on)",
    "adult": "UCI Adult (real): 39k / 9.6k rows, income, domains = sector; the adult samples "
             "train 8 epochs of batch 256",
    "longtail": "generated: seed 7, 150k users / 40k ads, activity and popularity log-normal "
                "sigma 2.0 / 1.5 (most hashed ids seen a handful of times: 80 % of the users "
                "and 65 % of the ads in training appear at most 3 times), user taste noise 1.0, "
                "scenario mix 0.2 / 0.5 / 0.3; 120k / 30k rows",
    "timesorted": "generated: seed 11, 20k ads each live for 30 % of the period, scenario mix "
                  "drifting from 0.5 / 0.3 / 0.2 to its reverse; training rows in TIME ORDER, "
                  "test rows from the period after (49 % of them show an ad unseen in "
                  "training); 120k / 30k rows",
}

# model -> {layout: sample config}; the Taobao layout covers shipped and generated sets
MODELS = {
    "mlp": {"taobao": "mlp_on_taobao", "adult": "mlp_on_adult"},
    "shared_bottom": {"taobao": "shared_bottom_on_taobao", "adult": "shared_bottom_on_adult"},
    "mmoe": {"taobao": "mmoe_on_taobao", "adult": "mmoe_on_adult"},
    "aitm": {"taobao": "aitm_on_taobao"},
    "star": {"taobao": "star_on_taobao", "adult": "star_on_adult"},
    "pepnet": {"taobao": "pepnet_on_taobao", "adult": "pepnet_on_adult"},
    "apg": {"taobao": "apg_on_taobao", "adult": "apg_on_adult"},
    "wide_and_deep": {"taobao": "wide_and_deep_on_taobao"},
    "deepfm": {"taobao": "deepfm_on_taobao"},
    "mlr": {"taobao": "mlr_on_taobao"},
    "pnn": {"taobao": "pnn_on_taobao"},
    "din": {"taobao": "din_on_taobao"},
    "dssm": {"taobao": "dssm_on_taobao"},
    "esmm": {"taobao": "esmm_on_taobao"},
}
MAIN_MODELS = ["mlp", "shared_bottom", "aitm", "star", "pepnet", "apg"]

# ---- candidate defaults -------------------------------------------------------------------------
# init: the embedding initializer of tables whose feature sets none
#   tn_isqrt  truncated normal, stddev 1/sqrt(dim) (TensorFlow's embedding_column default;
#             easyblocks 0.1); u05: uniform(-0.05, 0.05) (Keras' Embedding default);
#   n1e4: normal stddev 1e-4 (FuxiCTR, DeepCTR); tn01: truncated normal stddev 0.01
# norm: the moving statistics of every normalization layer
#   keras99: Keras-style (start at mean 0 / variance 1, momentum 0.99, no debiasing);
#   deb99 / deb9: debiased (easyblocks.blocks.normalization) at momentum 0.99 / 0.9
CANDIDATES = {
    "default": dict(init=None, norm=None),
    "easyblocks_0_1": dict(init="tn_isqrt", norm="keras99"),
}
for _i in ["tn_isqrt", "u05", "n1e4", "tn01"]:
    for _n in ["keras99", "deb99", "deb9"]:
        CANDIDATES[f"{_i}+{_n}"] = dict(init=_i, norm=_n)
CANDIDATE_DOC = {
    "tn_isqrt": "truncated normal, stddev 1/sqrt(dim) (0.25 at dim 16)",
    "u05": "uniform(-0.05, 0.05)",
    "n1e4": "normal, stddev 1e-4",
    "tn01": "truncated normal, stddev 0.01",
    "keras99": "Keras-style moving statistics (initial mean 0 / variance 1, momentum 0.99)",
    "deb99": "debiased moving statistics, momentum 0.99",
    "deb9": "debiased moving statistics, momentum 0.9",
}


def apply_candidate(name: str) -> None:
    """Sets the candidate's defaults in this (worker) process, before the model is built."""
    import keras
    import tensorflow as tf

    from easyblocks.blocks import normalization
    from easyblocks.features import embedding

    cand = CANDIDATES[name]
    inits = {
        "tn_isqrt": lambda dim: keras.initializers.TruncatedNormal(stddev=dim ** -0.5),
        "u05": lambda dim: keras.initializers.RandomUniform(-0.05, 0.05),
        "n1e4": lambda dim: keras.initializers.RandomNormal(stddev=1e-4),
        "tn01": lambda dim: keras.initializers.TruncatedNormal(stddev=0.01),
    }
    if cand["init"]:
        embedding.default_initializer = inits[cand["init"]]
    if cand["norm"]:
        normalization.MOMENTUM = 0.9 if cand["norm"] == "deb9" else 0.99
        if cand["norm"] == "keras99":
            # Keras' update: a constant rate 1 - momentum from the initial values
            normalization.BatchNorm.update_rate = (
                lambda self, t: tf.fill(tf.shape(t), tf.constant(1.0 - self.momentum, t.dtype)))


# ---- worker: one run in a fresh process ---------------------------------------------------------
def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def dataset_paths(dataset: str, args) -> tuple[str, str, str]:
    """(layout, train path, test path)."""
    if dataset == "adult":
        return ("adult", os.path.join(args.adult_dir, "train.csv"),
                os.path.join(args.adult_dir, "test.csv"))
    folder = SHIPPED if dataset == "shipped" else os.path.join(args.data_dir, dataset)
    return ("taobao", os.path.join(folder, "taobao_train.csv"),
            os.path.join(folder, "taobao_test.csv"))


def worker_easyblocks(job: dict) -> dict:
    apply_candidate(job["candidate"])
    from easyblocks import api

    overrides = [f"train_config {{ seed: {job['seed']} }}",
                 f'train_input_path: "{job["train"]}"', f'eval_input_path: "{job["test"]}"']
    overrides += CANDIDATES[job["candidate"]].get("overrides", []) + job.get("overrides", [])
    with tempfile.TemporaryDirectory(prefix="quality_") as model_dir:
        t0 = time.perf_counter()
        results = api.train(job["config"], model_dir=model_dir, overrides=overrides,
                            num_steps=job.get("num_steps"))
        seconds = time.perf_counter() - t0
    towers = {}
    for name, entry in results["towers"].items():
        towers[name] = {
            "label": entry["label"],
            "auc": entry["overall"]["auc"],
            "logloss": entry["overall"].get("logloss"),
            "domains": {d: m["auc"] for d, m in entry.get("domains", {}).items()},
        }
    return {"towers": towers, "step": results["step"], "seconds": seconds,
            "peak_rss_mib": _peak_rss_mib()}


def worker_keras(job: dict) -> dict:
    if job["layout"] == "adult":
        return keras_adult_mlp(job["train"], job["test"], job["seed"])
    import keras_reference as kr

    model = "mlp" if job["reference"] == "keras_mlp" else "shared_bottom"
    r = kr.run_keras(model, job["seed"], warmup_steps=5, train_csv=job["train"],
                     test_csv=job["test"])
    label = {"clk": "clk", "ctr": "clk", "cvr": "buy"}
    return {"towers": {t: {"label": label[t], "auc": a, "domains": {}}
                       for t, a in r["auc"].items()},
            "step": r["steps"], "seconds": r["train_s"], "peak_rss_mib": _peak_rss_mib()}


# ---- the hand-written adult MLP (plain Keras, as a Keras user would write it) -----------------
ADULT_HASHED = {"sector": 20, "workclass": 50, "education": 50, "occupation": 50,
                "relationship": 20, "race": 20, "sex": 10, "native_country": 100}
ADULT_NUMERIC = {  # column: (log1p first, mean, std), as in samples/configs/mlp_on_adult.config
    "age": (False, 38.6, 13.7), "education_num": (False, 10.1, 2.6),
    "hours_per_week": (False, 40.4, 12.4), "capital_gain": (True, 0.74, 2.45),
    "capital_loss": (True, 0.35, 1.58)}
ADULT_AGE_BOUNDARIES = [20, 25, 30, 35, 40, 45, 50, 55, 60, 65]


def keras_adult_mlp(train_csv: str, test_csv: str, seed: int) -> dict:
    """Embeddings (dim 8, Keras' default initializer) of the hashed strings and the age bucket,
    the normalized numbers, Dense(no bias) -> BatchNormalization -> ReLU for 128, 64, then a
    sigmoid; Adam 1e-3, batch 256, 8 epochs, shuffle buffer 40000 (mlp_on_adult's settings)."""
    import csv

    import keras
    import numpy as np
    import tensorflow as tf
    from keras import layers

    from easyblocks.train.metrics import auc

    keras.utils.set_random_seed(seed)
    with open(train_csv, encoding="utf-8") as f:
        columns = next(csv.reader(f))
    strings = set(ADULT_HASHED) | {c for c in columns if c not in ADULT_NUMERIC and c not in (
        "income", "never_married", "fnlwgt")}
    defaults = [[""] if c in strings else [0.0] for c in columns]

    def parse(lines):
        v = dict(zip(columns, tf.io.decode_csv(lines, defaults)))
        x = {c: tf.strings.to_hash_bucket_fast(v[c], n) for c, n in ADULT_HASHED.items()}
        x["age_bucket"] = tf.raw_ops.Bucketize(input=v["age"], boundaries=ADULT_AGE_BOUNDARIES)
        nums = []
        for c, (log, mean, std) in ADULT_NUMERIC.items():
            value = tf.math.log1p(v[c]) if log else v[c]
            nums.append((value - mean) / std)
        x["numbers"] = tf.stack(nums, axis=1)
        return x, v["income"][:, None]

    def dataset(path, training):
        ds = tf.data.TextLineDataset(path).skip(1)
        if training:
            ds = ds.shuffle(40_000, seed=seed)
        return ds.batch(256).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

    inputs, parts = {}, []
    for c, n in list(ADULT_HASHED.items()) + [("age_bucket", len(ADULT_AGE_BOUNDARIES) + 1)]:
        inputs[c] = keras.Input(shape=(), dtype="int64" if c != "age_bucket" else "int32",
                                name=c)
        parts.append(layers.Embedding(n, 8)(inputs[c]))
    inputs["numbers"] = keras.Input(shape=(len(ADULT_NUMERIC),), name="numbers")
    x = layers.Concatenate()(parts + [inputs["numbers"]])
    for units in (128, 64):
        x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(units, use_bias=False)(x)))
    net = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    t0 = time.perf_counter()
    history = net.fit(dataset(train_csv, True), epochs=8, verbose=0)
    seconds = time.perf_counter() - t0
    probs = net.predict(dataset(test_csv, False).map(lambda x, y: x), verbose=0).reshape(-1)
    labels = np.concatenate([y.numpy().reshape(-1) for _, y in dataset(test_csv, False)])
    return {"towers": {"income": {"label": "income", "auc": auc(labels, probs), "domains": {}}},
            "step": len(history.history["loss"]), "seconds": seconds,
            "peak_rss_mib": _peak_rss_mib()}


# ---- driver -------------------------------------------------------------------------------------
def ensure_data(sets: dict, data_dir: str) -> None:
    """Generates the synthetic data sets that are missing (deterministic)."""
    from easyblocks.data import synthetic

    for name, params in sets.items():
        folder = os.path.join(data_dir, name)
        if os.path.exists(os.path.join(folder, "taobao_test.oracle.csv")):
            continue
        p = dict(params)
        print(f"generating {name} into {folder} ...", flush=True)
        synthetic.write_split(folder, p.pop("train_rows"), p.pop("test_rows"), p.pop("seed"),
                              p.pop("num_users", None), p.pop("num_ads", None), **p)


def job_key(job: dict) -> str:
    parts = [job["dataset"], job["model"], job["candidate"], str(job["seed"]),
             json.dumps(job.get("overrides", [])), str(job.get("num_steps"))]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def load_results(path: str) -> dict:
    out = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out[r["key"]] = r
    return out


def run_job(job: dict, in_process: bool = False) -> dict:
    """Runs one job in a fresh Python process (in this one for --smoke, whose runs all use
    the defaults: a process start costs more than a smoke run)."""
    if in_process:
        return worker_keras(job) if job["kind"] == "keras" else worker_easyblocks(job)
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(job)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    marker = "QUALITY_RESULT "
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(marker)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"run failed (exit {proc.returncode}): {json.dumps(job)}")
    return json.loads(lines[-1][len(marker):])


def make_jobs(args) -> list[dict]:
    jobs = []
    for seed in args.seeds:  # seed-major: a change of machine load hits every column alike
        for dataset in args.datasets:
            layout, train, test = dataset_paths(dataset, args)
            for model in args.models:
                config = MODELS[model].get(layout)
                if config is None:
                    continue
                for cand in args.candidates:
                    jobs.append(dict(kind="easyblocks", dataset=dataset, layout=layout,
                                     model=model, candidate=cand, seed=seed, train=train,
                                     test=test, overrides=list(args.set),
                                     num_steps=args.num_steps,
                                     config=os.path.join(CONFIGS, config + ".config")))
            for ref in args.references:
                if layout == "adult" and ref != "keras_mlp":
                    continue
                jobs.append(dict(kind="keras", dataset=dataset, layout=layout, model=ref,
                                 reference=ref, candidate="-", seed=seed, train=train,
                                 test=test))
    return jobs


def mean_std(values):
    import numpy as np

    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else 0.0)


def fmt(values, digits=4) -> str:
    if not values:
        return ""
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def oracle_auc(test_csv: str) -> dict:
    """Oracle AUC of clk and buy (generated / shipped sets), else {}."""
    import numpy as np

    from easyblocks.train.metrics import auc

    oracle = test_csv[: -len(".csv")] + ".oracle.csv"
    if not os.path.exists(oracle):
        return {}
    probs = np.loadtxt(oracle, delimiter=",", ndmin=2)
    labels = np.loadtxt(test_csv, delimiter=",", usecols=[0, 1], ndmin=2)
    return {"clk": auc(labels[:, 0], probs[:, 0]), "buy": auc(labels[:, 1], probs[:, 1])}


def group_runs(jobs: list[dict], results: dict) -> dict:
    """(dataset, model, candidate) -> list of results over seeds (in seed order)."""
    runs: dict = {}
    for job in jobs:
        r = results.get(job_key(job))
        if r is not None:
            runs.setdefault((job["dataset"], job["model"], job["candidate"]), []).append(r)
    return runs


def table(args, jobs: list[dict], results: dict) -> list[str]:
    """One table per data set: every model x candidate, AUC per task (mean ± std over seeds),
    logloss, AUC per domain of the first task."""
    runs = group_runs(jobs, results)
    lines = []
    for dataset in args.datasets:
        _, _, test = dataset_paths(dataset, args)
        oracle = oracle_auc(test)
        keys = [k for k in runs if k[0] == dataset]
        if not keys:
            continue
        domains = sorted({d for k in keys for r in runs[k] for t in r["towers"].values()
                          for d in t["domains"]})
        lines += ["", f"### {dataset}", "", DATASET_DOC.get(dataset, dataset) + ".",
                  "" if not oracle else
                  f"Oracle AUC (true probabilities): clk {oracle['clk']:.4f}, "
                  f"buy {oracle['buy']:.4f}.", "",
                  "| model | candidate | AUC per task | logloss | "
                  + " | ".join(domains) + " | seeds |",
                  "|---|---|---|---|" + "---|" * len(domains) + "---|"]
        order = {m: i for i, m in enumerate(list(MODELS) + ["keras_mlp", "keras_shared_bottom"])}
        cand_order = {c: i for i, c in enumerate(args.candidates + ["-"])}
        for key in sorted(keys, key=lambda k: (order.get(k[1], 99), cand_order.get(k[2], 99))):
            rs = runs[key]
            towers = list(rs[0]["towers"])
            aucs = "<br>".join(f"{t} {fmt([r['towers'][t]['auc'] for r in rs])}"
                               for t in towers)
            ll = [r["towers"][towers[0]].get("logloss") for r in rs]
            ll = fmt([v for v in ll if v is not None])
            first = towers[0]
            per_domain = [fmt([r["towers"][first]["domains"][d] for r in rs
                               if d in r["towers"][first]["domains"]]) for d in domains]
            lines.append(f"| {key[1]} | {key[2]} | {aucs} | {ll} | " + " | ".join(per_domain)
                         + f" | {len(rs)} |")
    return lines


def summary(args, jobs: list[dict], results: dict) -> list[str]:
    """Per candidate: mean over data sets of the MLP's first-task AUC minus the best
    candidate's, so one line says which default wins across data sets."""
    runs = group_runs(jobs, results)
    lines = []
    models = [m for m in args.models if m in MODELS]
    for model in models:
        by_cand: dict = {}
        datasets = [d for d in args.datasets
                    if all((d, model, c) in runs for c in args.candidates)]
        if len(args.candidates) < 2 or not datasets:
            continue
        for cand in args.candidates:
            for d in datasets:
                rs = runs[(d, model, cand)]
                t = list(rs[0]["towers"])[0]
                by_cand.setdefault(cand, []).append(mean_std([r["towers"][t]["auc"]
                                                               for r in rs])[0])
        best = max(by_cand, key=lambda c: sum(by_cand[c]))
        lines += ["", f"{model}: mean AUC (first task) over {', '.join(datasets)}; "
                  f"difference to the best candidate ({best}) per data set:", "",
                  "| candidate | mean | " + " | ".join(datasets) + " |",
                  "|---|---|" + "---|" * len(datasets)]
        for cand, vals in sorted(by_cand.items(), key=lambda kv: -sum(kv[1])):
            diffs = " | ".join(f"{v - b:+.4f}" for v, b in zip(vals, by_cand[best]))
            lines.append(f"| {cand} | {sum(vals) / len(vals):.4f} | {diffs} |")
    return lines


def machine() -> str:
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"nproc {nproc}, Python {platform.python_version()}"


def report(argv: list[str], args, jobs, results, elapsed: float) -> str:
    lines = ["# Model quality on data nobody tuned for", "",
             "Command:", "", "```", "python " + " ".join(shlex.quote(a) for a in argv), "```",
             "", f"Machine: {machine()}; {elapsed / 60:.0f} min for the runs not already "
             "cached. AUC: mean ± sample std over seeds " + ", ".join(map(str, args.seeds))
             + "; every run a fresh process, one at a time, one pass of the sample's own "
             "settings (the Taobao samples: 1 epoch of batch 1024; adult: 8 epochs of 256).",
             "", "Candidates:", ""]
    for cand in args.candidates:
        c = CANDIDATES[cand]
        what = ("easyblocks' defaults" if c["init"] is None and c["norm"] is None else
                f"embedding init {CANDIDATE_DOC[c['init']]}; {CANDIDATE_DOC[c['norm']]}")
        lines.append(f"- `{cand}`: {what}")
    lines += ["- `-` (models keras_mlp / keras_shared_bottom): the hand-written plain-Keras "
              "references (benchmarks/keras_reference.py for the Taobao layout, "
              "`keras_adult_mlp` in benchmarks/quality.py for adult)"]
    lines += table(args, jobs, results)
    extra = summary(args, jobs, results)
    if extra:
        lines += ["", "## Candidates across data sets"] + extra
    return "\n".join(lines) + "\n"


def shuffle_study(args) -> list[str]:
    """MLP on the time-sorted set: AUC against shuffle_buffer_size, and the buffer's memory."""
    import numpy as np

    _, train, test = dataset_paths("timesorted", args)
    with open(train, "rb") as f:
        sizes = [len(line) for line in f]
    mean_bytes = float(np.mean(sizes))
    # a buffered element is a scalar tf.string: the line plus the tensor's per-element cost
    results = load_results(args.results)
    rows, jobs = [], []
    for buf in args.buffers:
        for seed in args.seeds:
            jobs.append(dict(kind="easyblocks", dataset="timesorted", layout="taobao",
                             model="mlp", candidate=args.candidates[0], seed=seed, train=train,
                             test=test, num_steps=None,
                             overrides=[f"data_config {{ shuffle_buffer_size: {buf} }}"],
                             config=os.path.join(CONFIGS, "mlp_on_taobao.config")))
    for job in jobs:
        key = job_key(job)
        if key not in results:
            r = run_job(job)
            r.update(key=key, job=job)
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")
            results[key] = r
            print(f"shuffle {job['overrides'][0]} seed {job['seed']}: "
                  f"{r['towers']['clk']['auc']:.4f}", flush=True)
    for buf in args.buffers:
        rs = [results[job_key(j)] for j in jobs if j["overrides"][0].endswith(f" {buf} }}")]
        rows.append(f"| {buf} | {fmt([r['towers']['clk']['auc'] for r in rs])} | "
                    f"{fmt([r['towers']['clk']['logloss'] for r in rs])} | "
                    f"{buf * mean_bytes / 2**20:.2f} | "
                    f"{fmt([r['peak_rss_mib'] for r in rs], 0)} |")
    return ["", "## Input order: shuffle_buffer_size on a time-sorted file", "",
            f"MLP sample (`{args.candidates[0]}`) on `timesorted` (training rows in time order, "
            f"test = the following period); mean line {mean_bytes:.0f} bytes. Buffer memory = "
            "buffer x mean line (the lines themselves; tf.data adds a small per-element "
            "overhead); peak RSS is the whole training process's.", "",
            "| shuffle_buffer_size | clk AUC | logloss | buffer MiB | peak RSS MiB |",
            "|---|---|---|---|---|"] + rows


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["shipped", "adult", "longtail",
                                                     "timesorted"])
    p.add_argument("--models", nargs="+", default=MAIN_MODELS, choices=list(MODELS))
    p.add_argument("--candidates", nargs="+", default=["default"], choices=list(CANDIDATES))
    p.add_argument("--references", nargs="*", default=["keras_mlp", "keras_shared_bottom"],
                   choices=["keras_mlp", "keras_shared_bottom"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--set", action="append", default=[],
                   help="config text merged into every easyblocks run (like the CLI's --set)")
    p.add_argument("--num_steps", type=int, default=None, help="cap the training steps")
    p.add_argument("--data_dir", default=os.path.join(ROOT, "runs", "quality_data"))
    p.add_argument("--adult_dir", default=os.path.join(ROOT, "..", "shared", "data", "adult"))
    p.add_argument("--results", default=os.path.join(ROOT, "runs", "quality_results.jsonl"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks", "quality.md"))
    p.add_argument("--report_only", action="store_true", help="rebuild the report from cache")
    p.add_argument("--shuffle_study", action="store_true")
    p.add_argument("--buffers", type=int, nargs="+", default=[32, 1024, 10_000, 120_000])
    p.add_argument("--smoke", action="store_true",
                   help="CI: a tiny generated set, MLP, STAR and the Keras MLP, one seed, "
                        "at most 20 steps, in this process")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv[1:])

    if args._worker:
        job = json.loads(args._worker)
        r = worker_keras(job) if job["kind"] == "keras" else worker_easyblocks(job)
        print("QUALITY_RESULT " + json.dumps(r), flush=True)
        return

    generated = dict(GENERATED)
    if args.smoke:
        tmp = tempfile.mkdtemp(prefix="quality_smoke_")
        generated = SMOKE_GENERATED
        args.data_dir, args.results = tmp, os.path.join(tmp, "results.jsonl")
        args.datasets, args.models, args.seeds = list(SMOKE_GENERATED), ["mlp", "star"], [1]
        args.references, args.num_steps = ["keras_mlp"], 20
        args.out = os.path.join(tmp, "quality.md")
    if "adult" in args.datasets and not os.path.isdir(args.adult_dir):
        print(f"skipping adult: {args.adult_dir} is missing", flush=True)
        args.datasets.remove("adult")
    ensure_data({k: v for k, v in generated.items()
                 if k in args.datasets or (args.shuffle_study and k == "timesorted")},
                args.data_dir)
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)

    jobs = [] if args.shuffle_study else make_jobs(args)
    results = load_results(args.results)
    start = time.perf_counter()
    todo = [j for j in jobs if job_key(j) not in results]
    if not args.report_only:
        for i, job in enumerate(todo, 1):
            r = run_job(job, in_process=args.smoke)
            r.update(key=job_key(job), job=job)
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")
            results[r["key"]] = r
            aucs = ", ".join(f"{t} {v['auc']:.4f}" for t, v in r["towers"].items())
            print(f"[{i}/{len(todo)}] {job['dataset']} {job['model']} {job['candidate']} "
                  f"seed {job['seed']}: {aucs} ({r['seconds']:.0f} s)", flush=True)
    elapsed = time.perf_counter() - start
    if args.shuffle_study:
        text = "\n".join(shuffle_study(args)) + "\n"
    else:
        text = report(["benchmarks/quality.py"] + argv[1:], args, jobs, results, elapsed)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
