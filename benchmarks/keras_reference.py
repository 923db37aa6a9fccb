"""Sample models written by hand in plain Keras vs easyblocks on the same config.

The product promise checked here: every sample model reaches at least the test AUC
of the same architecture written by hand in plain Keras on the same data, and
trains at least 0.95x as many examples/s. Speed is a ratio between two runs of the
same command on the same machine, never an absolute number.

    python benchmarks/keras_reference.py --model mlp|shared_bottom|both \
        --seeds 1 2 3 --out docs/benchmarks/keras_reference.md

Runners (--runners, all three by default; examples/s ratios are against `keras`):
  keras               the hand-written reference below, with Keras' default initializers
  keras_matched_init  the same with EasyRec's initializers (he_uniform MLP kernels,
                      truncated normal(1/sqrt(dim)) embeddings), as easyblocks 0.1 used
                      (its embedding default is now truncated normal(0.01), see
                      docs/benchmarks/quality.md)
  easyblocks          easyblocks.api.train on the sample config (seed set in a copy)

Each (model, runner, seed) runs in its own Python process, one at a time, so that
one run's threads, graphs and memory do not disturb the next. Run nothing else
heavy on the machine meanwhile: on a small machine examples/s varies by 10-20 %
from run to run, so use several seeds before reading much into a ratio.

The reference (`keras` runner) is what a competent Keras user would write without
easyblocks: tf.data (TextLineDataset -> shuffle -> batch -> decode_csv -> hash /
split / bucketize -> prefetch), keras.layers.Embedding tables, the sample's MLP, Dense(1) ->
sigmoid, `model.compile(Adam(1e-3), BCE)` and `model.fit(ds, epochs=1)`, Keras'
default initializers. It does not import easyblocks except the exact AUC function.
Its layers are the sample's (`ARCHITECTURE`, checked against the config): the MLP sample
has no batch norm and biases on (Dense -> ReLU), the shared bottom keeps EasyRec's MLP
(Dense without bias -> BatchNormalization -> ReLU, last layer included) in the bottom and
the towers.
Its feature settings are written out below by hand; `check_config` only verifies
that they still match the sample configs.

Differences from the easyblocks configs, on purpose (plain Keras defaults):
  * no L2 / embedding regularization (the configs have 1e-6 each);
  * Adam updates whole embedding tables every step (Keras' Adam densifies sparse
    gradients), while easyblocks updates only the looked-up rows ("lazy Adam");
  * `keras`: Keras' default initializers (glorot_uniform kernels, uniform(-0.05, 0.05)
    embeddings) where easyblocks uses he_uniform and truncated normal(0.01);
    `keras_matched_init` uses EasyRec's (truncated normal(1/sqrt(dim)) embeddings);
  * where the sample has batch norm: Keras' BatchNormalization with momentum 0.9 (the
    momentum of easyblocks' normalization, which also debiases its moving statistics).
    Keras' default 0.99 would still weigh the initial mean 0 / variance 1 by 0.99^196 =
    14 % after the one pass of the Taobao samples, and that stale inference hands the
    reference a handicap (measured: docs/benchmarks/quality.md, "References"); at 0.9 they
    weigh 0.9^196 ~ 1e-9.

Throughput:
  * keras: examples/s from the end of step `--warmup_steps` (default 20, covers
    tracing) to the end of the epoch, measured with a Keras callback; the exact
    number of rows trained in that span;
  * easyblocks: `results["train_examples_per_sec"]` as api.train reports it (after
    its first logging window of log_step_count_steps = 50 steps; counts
    batch_size per step, and its window includes the checkpoints the config asks
    for: every 100 steps and at the end).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA, command_block, machine, run_worker, smoke_data, smoke_out, write_report  # noqa: E402
from common import ROOT as REPO  # noqa: E402
from common import mean_std as _mean_std  # noqa: E402

TRAIN_CSV = os.path.join(DATA, "taobao_train.csv")
TEST_CSV = os.path.join(DATA, "taobao_test.csv")
ORACLE_CSV = os.path.join(DATA, "taobao_test.oracle.csv")  # p_clk, p_buy per test row
CONFIGS = {
    "mlp": os.path.join(REPO, "samples", "configs", "mlp_on_taobao.config"),
    "shared_bottom": os.path.join(REPO, "samples", "configs", "shared_bottom_on_taobao.config"),
}
# tower name -> label column, per model (easyblocks' tower names)
TASKS = {
    "mlp": {"clk": "clk"},
    "shared_bottom": {"ctr": "clk", "cvr": "buy"},
}
ORACLE_COLUMN = {"clk": 0, "buy": 1}

# ---- the hand-written feature settings (as in samples/configs/*_on_taobao.config) ------------
COLUMNS = ["clk", "buy", "pid", "adgroup_id", "cate_id", "campaign_id", "customer", "brand",
           "user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
           "pvalue_level", "shopping_level", "occupation", "new_user_class_level",
           "tag_category_list", "tag_brand_list", "price"]
INT_COLUMNS = {"clk", "buy", "price"}
ID_BUCKETS = {
    "pid": 10, "adgroup_id": 10000, "cate_id": 1000, "campaign_id": 5000, "customer": 2000,
    "brand": 2000, "user_id": 50000, "cms_segid": 100, "cms_group_id": 100,
    "final_gender_code": 10, "age_level": 10, "pvalue_level": 10, "shopping_level": 10,
    "occupation": 10, "new_user_class_level": 10,
}
TAG_BUCKETS = {"tag_category_list": 1000, "tag_brand_list": 2000}
TAG_SEPARATOR = "|"
PRICE_BOUNDARIES = [10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000]
EMBEDDING_DIM = 16
BATCH_SIZE = 1024
SHUFFLE_BUFFER = 10000
LEARNING_RATE = 1e-3
MLP_UNITS = {"mlp": [512, 256, 128, 64], "shared_bottom": [512, 256]}
TOWER_UNITS = [128, 64]  # shared_bottom's task towers
# the sample's MLP layers: batch norm (then no bias, as EasyRec's MLP) or Dense with bias;
# check_config verifies it against the sample's `use_bn`
ARCHITECTURE = {"mlp": {"batch_norm": False}, "shared_bottom": {"batch_norm": True}}
BN_MOMENTUM = 0.9  # see the docstring
# keras: Keras' default initializers; keras_matched_init: EasyRec's initializers
RUNNERS = ["keras", "keras_matched_init", "easyblocks"]


def check_config(model: str) -> None:
    """Fails if the sample config no longer matches the hand-written settings above."""
    with open(CONFIGS[model], encoding="utf-8") as f:
        text = f.read()
    found = {}
    for m in re.finditer(r'input_names:\s*"(\w+)"[^}]*?hash_bucket_size:\s*(\d+)', text):
        found[m.group(1)] = int(m.group(2))
    expected = {**ID_BUCKETS, **TAG_BUCKETS}
    bounds = re.search(r"boundaries:\s*\[([^\]]*)\]", text)
    problems = []
    if found != expected:
        problems.append(f"hash_bucket_size {found} != {expected}")
    if not bounds or [float(b) for b in bounds.group(1).split(",")] != PRICE_BOUNDARIES:
        problems.append("price boundaries differ")
    if f"batch_size: {BATCH_SIZE}" not in text:
        problems.append("batch_size differs")
    if set(re.findall(r"embedding_dim:\s*(\d+)", text)) != {str(EMBEDDING_DIM)}:
        problems.append("embedding_dim differs")
    units = [int(u) for u in re.findall(r"hidden_units:\s*\[([^\]]*)\]", text)[0].split(",")]
    if units != MLP_UNITS[model]:
        problems.append(f"backbone MLP {units} != {MLP_UNITS[model]}")
    mlp_line = re.search(r"mlp\s*\{[^}]*\}", text).group(0)  # the backbone's MLP
    no_bn = "use_bn: false use_final_bn: false use_bias: true use_final_bias: true"
    if ARCHITECTURE[model]["batch_norm"] == (no_bn in mlp_line) or (
            ARCHITECTURE[model]["batch_norm"] and "use_b" in mlp_line):
        problems.append(f"backbone MLP batch norm: {mlp_line!r} but the reference has "
                        f"batch_norm={ARCHITECTURE[model]['batch_norm']}")
    if problems:
        sys.exit(f"{CONFIGS[model]} no longer matches the hand-written reference: "
                 + "; ".join(problems))


def count_rows(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def read_columns(path: str, columns: list[int]):
    import numpy as np

    return np.loadtxt(path, delimiter=",", usecols=columns, ndmin=2)


# ---- the plain-Keras reference ------------------------------------------------------------------
def keras_dataset(path: str, tasks: dict[str, str], training: bool, seed: int):
    import tensorflow as tf

    defaults = [[0] if c in INT_COLUMNS else [""] for c in COLUMNS]

    def parse(lines):
        values = dict(zip(COLUMNS, tf.io.decode_csv(lines, defaults, field_delim=",")))
        features = {}
        for name, buckets in ID_BUCKETS.items():
            features[name] = tf.strings.to_hash_bucket_fast(values[name], buckets)
        for name, buckets in TAG_BUCKETS.items():
            tokens = tf.strings.split(values[name], TAG_SEPARATOR)  # ragged (batch, None)
            ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, tokens, buckets)
            features[name] = (ids + 1).to_tensor(default_value=0)  # 0 = padding
        features["price"] = tf.raw_ops.Bucketize(
            input=tf.cast(values["price"], tf.float32), boundaries=PRICE_BOUNDARIES)
        labels = {tower: tf.cast(values[col], tf.float32)[:, None] for tower, col in tasks.items()}
        return features, labels

    ds = tf.data.TextLineDataset(path)
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed)
    ds = ds.batch(BATCH_SIZE)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def keras_model(model: str, matched_init: bool = False):
    """The functional model, with the sample's layers (ARCHITECTURE). matched_init: EasyRec's
    initializers (he_uniform MLP kernels, truncated normal(1/sqrt(dim)) embeddings) instead
    of Keras' defaults."""
    import keras
    from keras import layers, ops

    if matched_init:
        emb_init = keras.initializers.TruncatedNormal(stddev=EMBEDDING_DIM ** -0.5)
        kernel_init = "he_uniform"
    else:
        emb_init, kernel_init = "uniform", "glorot_uniform"  # Keras' defaults

    def embedding(rows, name):
        return layers.Embedding(rows, EMBEDDING_DIM, embeddings_initializer=emb_init, name=name)

    inputs, embedded = {}, []
    for name, buckets in ID_BUCKETS.items():
        inputs[name] = keras.Input(shape=(), dtype="int64", name=name)
        embedded.append(embedding(buckets, f"emb_{name}")(inputs[name]))
    for name, buckets in TAG_BUCKETS.items():
        inputs[name] = keras.Input(shape=(None,), dtype="int64", name=name)
        rows = embedding(buckets + 1, f"emb_{name}")(inputs[name])
        mask = ops.expand_dims(ops.cast(ops.greater(inputs[name], 0), "float32"), -1)
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)
        embedded.append(ops.sum(rows * mask, axis=1) / count)  # mean over the real tags
    inputs["price"] = keras.Input(shape=(), dtype="int32", name="price")
    embedded.append(embedding(len(PRICE_BOUNDARIES) + 1, "emb_price")(inputs["price"]))
    x = layers.Concatenate()(embedded)

    batch_norm = ARCHITECTURE[model]["batch_norm"]

    def mlp(x, units, prefix):
        for i, u in enumerate(units):
            x = layers.Dense(u, use_bias=not batch_norm, kernel_initializer=kernel_init,
                             name=f"{prefix}_dense_{i}")(x)
            if batch_norm:
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}_bn_{i}")(x)
            x = layers.ReLU(name=f"{prefix}_relu_{i}")(x)
        return x

    x = mlp(x, MLP_UNITS[model], "mlp")
    outputs = {}
    for tower in TASKS[model]:
        t = mlp(x, TOWER_UNITS, tower) if model == "shared_bottom" else x
        outputs[tower] = layers.Dense(1, activation="sigmoid", name=tower)(t)
    return keras.Model(inputs, outputs)


def run_keras(model: str, seed: int, warmup_steps: int, matched_init: bool = False,
              train_csv: str = TRAIN_CSV, test_csv: str = TEST_CSV) -> dict:
    """Trains the hand-written model one epoch on train_csv (a file in the Taobao sample
    layout) and evaluates it on test_csv."""
    import keras
    import numpy as np

    from easyblocks.eval.metrics import auc

    tasks = TASKS[model]
    keras.utils.set_random_seed(seed)
    train_rows = count_rows(train_csv)

    class Throughput(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.t0, self.t1 = 0, None, None

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == warmup_steps:
                self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.t1 = time.perf_counter()

    wall0 = time.perf_counter()
    net = keras_model(model, matched_init)
    net.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                loss={t: keras.losses.BinaryCrossentropy() for t in tasks})
    meter = Throughput()
    net.fit(keras_dataset(train_csv, tasks, True, seed), epochs=1, callbacks=[meter], verbose=0)
    train_s = time.perf_counter() - wall0
    if meter.t0 is None:
        raise SystemExit(f"only {meter.steps} steps: fewer than --warmup_steps {warmup_steps}")
    examples = train_rows - warmup_steps * BATCH_SIZE
    test = keras_dataset(test_csv, tasks, False, seed).map(lambda x, y: x)
    probs = net.predict(test, verbose=0)
    labels = read_columns(test_csv, [0, 1])
    aucs = {t: auc(labels[:, ORACLE_COLUMN[col]], np.asarray(probs[t]).reshape(-1))
            for t, col in tasks.items()}
    return {"examples_per_sec": examples / (meter.t1 - meter.t0), "auc": aucs,
            "steps": meter.steps, "train_s": train_s, "wall_s": time.perf_counter() - wall0}


# ---- easyblocks on the sample config ------------------------------------------------------------
def run_easyblocks(model: str, seed: int, data: str = DATA, overrides=()) -> dict:
    import keras

    with open(CONFIGS[model], encoding="utf-8") as f:
        text = f.read()
    # the same seed (shuffle and initializers) and absolute data paths, in a copy of the config
    train_csv, test_csv = (os.path.join(data, f) for f in ("taobao_train.csv", "taobao_test.csv"))
    text = re.sub(r"train_config\s*\{", f"train_config {{\n  seed: {seed}", text, count=1)
    text = re.sub(r'train_input_path:\s*"[^"]*"', f'train_input_path: "{train_csv}"', text)
    text = re.sub(r'eval_input_path:\s*"[^"]*"', f'eval_input_path: "{test_csv}"', text)
    with tempfile.TemporaryDirectory(prefix="keras_reference_") as tmp:
        config = os.path.join(tmp, os.path.basename(CONFIGS[model]))
        with open(config, "w", encoding="utf-8") as f:
            f.write(text)
        from easyblocks import api

        keras.utils.set_random_seed(seed)
        wall0 = time.perf_counter()
        results = api.train(config, model_dir=os.path.join(tmp, "model"), overrides=overrides)
        wall_s = time.perf_counter() - wall0
    return {"examples_per_sec": results["train_examples_per_sec"],
            "auc": {t: results["towers"][t]["overall"]["auc"] for t in TASKS[model]},
            "steps": results["step"], "wall_s": wall_s}


# ---- driver -------------------------------------------------------------------------------------
def run_in_process(runner: str, model: str, seed: int, warmup_steps: int,
                   data: str = DATA) -> dict:
    if runner == "easyblocks":
        # data other than the shipped one is the smoke's: too few steps for the sample's
        # logging window of 50, so examples/s from the first step
        overrides = [] if data == DATA else ["train_config { log_step_count_steps: 1 }"]
        return run_easyblocks(model, seed, data, overrides)
    return run_keras(model, seed, warmup_steps, matched_init=runner == "keras_matched_init",
                     train_csv=os.path.join(data, "taobao_train.csv"),
                     test_csv=os.path.join(data, "taobao_test.csv"))


def run_one(runner: str, model: str, seed: int, warmup_steps: int, data: str = DATA,
            in_process: bool = False) -> dict:
    """Runs one (runner, model, seed) in a fresh Python process (in this one for --smoke);
    returns its result dict."""
    if in_process:
        return run_in_process(runner, model, seed, warmup_steps, data)
    return run_worker(__file__, ["--_worker", runner, "--model", model, "--seeds", str(seed),
                                 "--warmup_steps", str(warmup_steps), "--data", data],
                      "KERAS_REFERENCE_RESULT ", f"{runner} {model} seed {seed}")


def mean_std(values: list[float]) -> tuple[float, float]:
    return _mean_std(values)


def oracle_aucs(model: str, data: str = DATA) -> dict[str, float]:
    from easyblocks.eval.metrics import auc

    labels = read_columns(os.path.join(data, "taobao_test.csv"), [0, 1])
    oracle = read_columns(os.path.join(data, "taobao_test.oracle.csv"), [0, 1])
    return {t: auc(labels[:, ORACLE_COLUMN[c]], oracle[:, ORACLE_COLUMN[c]])
            for t, c in TASKS[model].items()}


def report(argv: list[str], models: list[str], runners: list[str], seeds: list[int], runs: dict,
           elapsed: float, warmup_steps: int, data: str = DATA) -> str:
    pm = "±"
    lines = [
        "# Hand-written Keras reference vs easyblocks",
        "",
        *command_block(argv),
        f"Machine: {machine()}. Seeds: {', '.join(map(str, seeds))} (mean {pm} sample std "
        f"over seeds). Total time {elapsed:.0f} s."
        + ("" if data == DATA else f" --smoke: the first rows of samples/data ({data}), in "
           "one process; the numbers mean nothing."),
        "",
        "| model | runner | test AUC (mean ± std) | oracle AUC | train examples/s (mean ± std) "
        "| examples/s ratio vs keras |",
        "|---|---|---|---|---|---|",
    ]
    checks = []

    def auc_mean(model, runner, task):
        return mean_std([r["auc"][task] for r in runs[(model, runner)]])

    for model in models:
        oracle = oracle_aucs(model, data)
        speed = {rn: mean_std([r["examples_per_sec"] for r in runs[(model, rn)]])
                 for rn in runners}
        for runner in runners:
            aucs = [f"{t} {m:.4f} {pm} {s:.4f}"
                    for t in TASKS[model] for m, s in [auc_mean(model, runner, t)]]
            m, s = speed[runner]
            ratio = speed[runner][0] / speed["keras"][0]
            ratio = "1.00 (reference)" if runner == "keras" else (
                f"**{ratio:.2f}**" if runner == "easyblocks" else f"{ratio:.2f}")
            lines.append(f"| {model} | {runner} | {'<br>'.join(aucs)} | "
                         f"{'<br>'.join(f'{t} {v:.4f}' for t, v in oracle.items())} | "
                         f"{m:.0f} {pm} {s:.0f} | {ratio} |")
        if "easyblocks" not in runners:
            continue
        ratio = speed["easyblocks"][0] / speed["keras"][0]
        checks.append(f"- {model}: examples/s easyblocks / keras {ratio:.2f} "
                      f"({'meets' if ratio >= 0.95 else 'BELOW'} the 0.95 target)")
        for ref in [r for r in runners if r != "easyblocks"]:
            for t in TASKS[model]:
                diff = auc_mean(model, "easyblocks", t)[0] - auc_mean(model, ref, t)[0]
                checks.append(f"- {model} / {t}: AUC easyblocks - {ref} = {diff:+.4f} "
                              f"({'meets' if diff >= 0 else 'BELOW'} the AUC target on the mean)")
    if checks:
        lines += ["", "Promise checks (means over the seeds above):", ""] + checks
    lines += ["", "Per run:", "",
              "| model | runner | seed | test AUC | train examples/s | steps | wall s |",
              "|---|---|---|---|---|---|---|"]
    for model in models:
        for runner in runners:
            for seed, r in zip(seeds, runs[(model, runner)]):
                aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
                lines.append(f"| {model} | {runner} | {seed} | {aucs} | "
                             f"{r['examples_per_sec']:.0f} | {r['steps']} | {r['wall_s']:.1f} |")
    lines += [
        "",
        "Runners and how each number is measured:",
        "",
        "- keras: the hand-written plain-Keras model with Keras' default initializers "
        "(glorot_uniform kernels, uniform(-0.05, 0.05) embeddings); keras_matched_init: the "
        "same with EasyRec's initializers (he_uniform MLP kernels, truncated normal with "
        "stddev 1/sqrt(16) for embeddings), which easyblocks 0.1 used.",
        f"- keras runners: examples/s from the end of step {warmup_steps} to the end of the "
        "epoch (a Keras callback; exact row count), `model.fit(verbose=0)`; wall s = build + "
        "fit + predict.",
        "- easyblocks: `api.train(...)[\"train_examples_per_sec\"]`, i.e. after its first "
        "logging window (50 steps), counting batch_size per step, the window including the "
        "checkpoints the config saves (every 100 steps and at the end); wall s = the whole "
        "`api.train` (build, train, checkpoints, evaluation with per-domain metrics).",
        "- AUC: exact rank AUC (`easyblocks.eval.metrics.auc`) on all of "
        "samples/data/taobao_test.csv (--smoke: its first rows); oracle AUC: the same on the "
        "true probabilities "
        "(samples/data/taobao_test.oracle.csv), the best any model can do on this sample.",
        "- Each run is a fresh Python process; runs go one at a time, the runners in the "
        "order of the table for each seed.",
        "- The keras runners leave out the configs' 1e-6 L2 and embedding regularization and "
        "use Keras' Adam (dense updates of every embedding row each step; easyblocks updates "
        "only the looked-up rows, \"lazy Adam\"). See the docstring of "
        "benchmarks/keras_reference.py.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "shared_bottom", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--out", default=None, help="markdown file to write the table to")
    parser.add_argument("--warmup_steps", type=int, default=20,
                        help="keras runner: steps left out of examples/s (tracing)")
    parser.add_argument("--runners", nargs="+", choices=RUNNERS, default=RUNNERS,
                        help="keras (Keras' default initializers), keras_matched_init "
                             "(EasyRec's initializers), easyblocks; keras is always run")
    parser.add_argument("--smoke", action="store_true",
                        help="CI: the first rows of the shipped data, the mlp model, the keras "
                             "and easyblocks runners, one seed, in this process; the report "
                             "goes to a temporary file unless --out")
    parser.add_argument("--_worker", choices=RUNNERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=DATA, help=argparse.SUPPRESS)
    args = parser.parse_args(argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if REPO not in sys.path:
        sys.path.insert(0, REPO)

    if args._worker:
        result = run_in_process(args._worker, args.model, args.seeds[0], args.warmup_steps,
                                args.data)
        print("KERAS_REFERENCE_RESULT " + json.dumps(result), flush=True)
        return
    tmp = None
    if args.smoke:
        tmp = tempfile.mkdtemp(prefix="keras_reference_")
        args.data = smoke_data(os.path.join(tmp, "data"))
        args.model, args.seeds, args.runners, args.warmup_steps = \
            "mlp", [1], ["keras", "easyblocks"], 1
        args.out = smoke_out(args.out, tmp, "keras_reference")

    models = ["mlp", "shared_bottom"] if args.model == "both" else [args.model]
    runners = [r for r in RUNNERS if r in set(args.runners) | {"keras"}]
    for model in models:
        check_config(model)
    runs: dict = {}
    start = time.perf_counter()
    for model in models:
        for seed in args.seeds:
            for runner in runners:
                r = run_one(runner, model, seed, args.warmup_steps, args.data, args.smoke)
                runs.setdefault((model, runner), []).append(r)
                aucs = ", ".join(f"{t} {v:.4f}" for t, v in r["auc"].items())
                print(f"{model:<13} {runner:<18} seed {seed}: AUC {aucs} | "
                      f"{r['examples_per_sec']:.0f} examples/s | {r['wall_s']:.1f} s", flush=True)
    text = report(["benchmarks/keras_reference.py"] + argv[1:], models, runners, args.seeds, runs,
                  time.perf_counter() - start, args.warmup_steps, args.data)
    print()
    print(text)
    if args.out:
        write_report(args.out, text)
        print(f"wrote {args.out}")
    if tmp:
        shutil.rmtree(os.path.join(tmp, "data"), ignore_errors=True)


if __name__ == "__main__":
    main()
