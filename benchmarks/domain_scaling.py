"""Step time and peak memory of STAR, PEPNet and APG against the number of domains M.

    flock /tmp/bench.lock python benchmarks/domain_scaling.py            # full run
    python benchmarks/domain_scaling.py --smoke                          # seconds, tiny sizes

One train step as the training loop runs it: forward, backward, the dense weights updated by
Keras Adam (what easyblocks' loop does for every non-table weight today), the embedding tables
(17 features x 16 dims from one shared 20000-row table, and the domain's 16-dim embedding of M
rows for PEPNet and APG) updated row-wise by the project's table optimizer
(easyblocks.train.optimizers.SparseTableOptimizer, lazy Adam). Sizes of the samples'
*_on_taobao configs: input width 272, hidden [512, 256, 128, 64], batch 1024, a logit, log loss.

Models (each point in a fresh subprocess; step time = median over --steps steps after --warmup,
peak memory = the process's ru_maxrss):
- mlp: the MLP reference (the domain is not an input; its ratio shows the load drift),
- star: STAR (no PN) as shipped (StarDense's grouped path),
- star_old: STAR with the former all-domain GEMM formula (StarDense.GEMM_MAX_DOMAINS forced
  high), the "before" column,
- star_rowwise: STAR with its per-domain weights (domain_kernel, domain_bias) updated by the
  table optimizer's row-wise Adam instead of Keras' dense Adam (a change to the training loop
  this benchmark proposes; it is not what the loop does today),
- pepnet: PEPNet (EPNet gate on the domain embedding), apg: APG (condition "group" on the
  domain embedding, K = 32, P = 64).

Domains per example: "uniform" (every domain equally likely) and "zipf" (P(p) ~ 1 / (p + 1),
p = 0..M-1). Each step also reports the forward+backward time alone (gradients computed, not
applied), so the optimizer's share is the difference. STAR's variants run under both
distributions, the others (which see the domain through one embedding lookup, or not at all)
Zipf-like only, unless --dists is given. Points run in rounds, a model's points back to back;
the ratio to M = 3 is taken within a round, and its spread is the min..max over --rounds
rounds. With --lock PATH each model's points hold that lock (flock), so that other
benchmarks' timings do not overlap. With --interleave the models alternate at every point
(A B A B ...) under one hold of the lock: the before/after ratio of e.g.
`--models star star_old --domains 3 30 --dists zipf --rounds 2 --interleave`.

Writes docs/benchmarks/domain_scaling.md (--out; with --smoke a temporary file) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ["mlp", "star", "star_old", "star_rowwise", "pepnet", "apg"]
DISTS = ["uniform", "zipf"]
# by default the STAR variants under both distributions; the others see the domain only through
# one embedding lookup (or not at all), so Zipf-like only
DEFAULT_DISTS = {"star": DISTS, "star_old": DISTS, "star_rowwise": DISTS}
FULL = dict(domains=[3, 30, 300], batch=1024, features=17, dim=16, vocab=20000,
            hidden=[512, 256, 128, 64], steps=5, warmup=1, rounds=1, max_seconds=8.0)
SMOKE = dict(domains=[2, 5], batch=64, features=3, dim=4, vocab=100, hidden=[8, 4],
             steps=2, warmup=1, rounds=1, max_seconds=5.0)


# ---- one point, in a fresh process ------------------------------------------------------------
def domain_batches(dist: str, m: int, batch: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        p = np.full(m, 1.0 / m)
    else:  # zipf-like: P(p) ~ 1 / (p + 1)
        p = 1.0 / np.arange(1, m + 1)
        p /= p.sum()
    return rng.choice(m, size=(count, batch), p=p).astype("int32")


def child(specs: list[dict], out: str) -> None:
    """Runs the points `specs` in this process, one after another; writes their results."""
    from easyblocks.blocks.star import StarDense

    default = StarDense.GEMM_MAX_DOMAINS
    results = []
    for spec in specs:
        StarDense.GEMM_MAX_DOMAINS = 10**9 if spec["model"] == "star_old" else default
        results.append(point(spec))
    with open(out, "w") as fh:
        json.dump(results, fh)


def point(spec: dict) -> dict:
    import keras
    import tensorflow as tf

    from easyblocks.blocks.apg import APG
    from easyblocks.blocks.mlp import MLP
    from easyblocks.blocks.pepnet import PEPNet
    from easyblocks.blocks.star import STAR
    from easyblocks.config.specs import LearningRateSpec, OptimizerSpec
    from easyblocks.train.optimizers import SparseTableOptimizer

    keras.utils.set_random_seed(1)
    model, m, b = spec["model"], spec["m"], spec["batch"]
    f, dim, hidden = spec["features"], spec["dim"], spec["hidden"]
    table = keras.Variable(tf.random.normal([spec["vocab"], dim], stddev=0.05), name="table")
    domain_table = keras.Variable(tf.random.normal([m, dim], stddev=0.05),
                                  name="domain_table")
    if model == "mlp":
        block = MLP(hidden_units=hidden)
    elif model.startswith("star"):
        block = STAR(num_domains=m, hidden_units=hidden, use_partitioned_norm=False)
    elif model == "pepnet":
        block = PEPNet(mlp={"hidden_units": hidden, "use_bn": False, "use_final_bn": False,
                            "use_bias": True, "use_final_bias": True}, num_task=1)
    else:
        k = min(32, *hidden, f * dim)
        block = APG(hidden_units=hidden, rank_k=k, overparam_p=2 * k, condition="group",
                    generator_hidden_units=[64], use_bn=False)
    head = keras.layers.Dense(1)

    def forward(ids, dom):
        x = tf.reshape(tf.gather(table, ids), [-1, f * dim])
        if model == "mlp":
            h = block(x, training=True)
        elif model.startswith("star"):
            h = block([x, dom], training=True)
        elif model == "pepnet":
            h = block([x, tf.gather(domain_table, dom), x[:, : 5 * dim]], training=True)[0]
        else:
            h = block([x, tf.gather(domain_table, dom)], training=True)
        return head(h)[:, 0]

    rng = np.random.default_rng(2)
    nb = 4
    ids_all = rng.integers(0, spec["vocab"], size=(nb, b, f)).astype("int32")
    dom_all = domain_batches(spec["dist"], m, b, nb, seed=3)
    labels_all = (rng.random((nb, b)) < 0.1).astype("float32")
    forward(tf.constant(ids_all[0]), tf.constant(dom_all[0]))  # builds the weights
    weights = block.trainable_variables + head.trainable_variables
    rowwise = []
    if model == "star_rowwise":
        rowwise = [v for layer in block.star_layers for v in layer.row_sparse_weights()]
        weights = [v for v in weights if all(v is not r for r in rowwise)]
    tables = [table] + ([domain_table] if model in ("pepnet", "apg") else []) + rowwise
    opt_spec = OptimizerSpec("adam", LearningRateSpec("constant", 0.001))
    dense_opt = keras.optimizers.Adam(learning_rate=0.001)
    dense_opt.build(weights)
    table_opt = SparseTableOptimizer(opt_spec, tables)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def grads_of(ids, dom, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, forward(ids, dom))
        return loss, tape.gradient(loss, weights + tables)

    @tf.function(autograph=False)
    def train_step(ids, dom, labels):
        loss, grads = grads_of(ids, dom, labels)
        dense_opt.apply_gradients(zip(grads[: len(weights)], weights))
        table_opt.apply(grads[len(weights):], tables)
        return loss

    @tf.function(autograph=False)
    def grads_step(ids, dom, labels):  # forward + backward only
        loss, grads = grads_of(ids, dom, labels)
        dense = [tf.reduce_sum(g.values if isinstance(g, tf.IndexedSlices) else g)
                 for g in grads]
        return loss + 0.0 * tf.add_n(dense)

    times = {"step": [], "fwdbwd": []}
    t_end = None
    for i in range(spec["warmup"] + spec["steps"]):
        for name, fn in (("step", train_step), ("fwdbwd", grads_step)):
            k = i % nb
            t0 = time.perf_counter()
            fn(tf.constant(ids_all[k]), tf.constant(dom_all[k]),
               tf.constant(labels_all[k])).numpy()
            if i >= spec["warmup"]:
                times[name].append(time.perf_counter() - t0)
        if i + 1 == spec["warmup"]:
            t_end = time.perf_counter() + spec["max_seconds"]
        elif t_end is not None and time.perf_counter() > t_end and len(times["step"]) >= 2:
            break
    res = dict(spec)
    res.update(
        step_ms=1000 * float(np.median(times["step"])),
        step_p25_ms=1000 * float(np.percentile(times["step"], 25)),
        step_p75_ms=1000 * float(np.percentile(times["step"], 75)),
        fwdbwd_ms=1000 * float(np.median(times["fwdbwd"])),
        steps_timed=len(times["step"]),
        present=float(np.mean([len(np.unique(d)) for d in dom_all])),
        params=int(sum(int(np.prod(v.shape)) for v in block.trainable_variables)),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        load=os.getloadavg()[0],
    )
    return res


def spawn(specs: list[dict], tmp: str) -> list[dict]:
    spec_path = os.path.join(tmp, "spec.json")
    out = os.path.join(tmp, "out.json")
    with open(spec_path, "w") as fh:
        json.dump(specs, fh)
    if os.path.exists(out):
        os.remove(out)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec_path, out],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode or not os.path.exists(out):
        print(f"FAILED (exit {proc.returncode}): {specs}\n{proc.stdout[-2000:]}"
              f"{proc.stderr[-3000:]}", flush=True)
        return []
    with open(out) as fh:
        return json.load(fh)


@contextlib.contextmanager
def locked(path: str | None):
    if not path:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---- report -----------------------------------------------------------------------------------
def spread(values) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "failed"
    if len(v) == 1:
        return f"{v[0]:.2f}"
    return f"{np.median(v):.2f} ({min(v):.2f}..{max(v):.2f})"


def iqr(pts) -> str:
    """The p25..p75 of a point's step times (of the first round's point)."""
    return f"{pts[0]['step_p25_ms']:.1f}..{pts[0]['step_p75_ms']:.1f}"


def report(results: list[dict], sizes: dict, models, dists, command: str,
           planned: dict | None = None) -> str:
    """planned: each model's distributions (default: every one of `dists`)."""
    planned = planned or {}
    ms = sizes["domains"]
    lines = [
        "# STAR, PEPNet and APG against the number of domains",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"{platform.python_version()}; date {datetime.date.today().isoformat()}.",
        f"Command: `{command}`.",
        "",
        f"One train step (forward, backward, Keras Adam on the dense weights, row-wise Adam on "
        f"the tables), batch {sizes['batch']}, input width {sizes['features'] * sizes['dim']}, "
        f"hidden {sizes['hidden']}; median over up to {sizes['steps']} steps after "
        f"{sizes['warmup']} warm-up steps, each point in a fresh process; {sizes['rounds']} "
        "round(s). `step` and `fwd+bwd` in ms: median over the rounds, [p25..p75 of the "
        "first round's steps]; `optimizer` = step - fwd+bwd (the updates); `ratio` = step "
        f"time / step time at M = {ms[0]} within the same round: median (min..max over rounds). "
        "`present`: mean number of distinct domains in a batch. `peak` = ru_maxrss (MiB).",
        "",
    ]
    for dist in dists:
        lines += [f"## Domains drawn {dist}" + (" (P(p) ~ 1/(p+1))" if dist == "zipf" else ""),
                  "", "| model | M | present | block params | step ms | fwd+bwd ms | optimizer ms "
                  f"| ratio to M={ms[0]} | peak MiB | load |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for model in models:
            rows = [r for r in results if r["model"] == model and r["dist"] == dist]
            if not rows and dist not in planned.get(model, [dist]):
                continue  # not run under this distribution
            for m in ms:
                pts = [r for r in rows if r["m"] == m]
                if not pts:
                    lines.append(f"| {model} | {m} | failed | | | | | | | |")
                    continue
                ratios = []
                for r in pts:
                    base = [q for q in rows if q["m"] == ms[0] and q["round"] == r["round"]]
                    ratios.append(r["step_ms"] / base[0]["step_ms"] if base else None)
                step = float(np.median([r["step_ms"] for r in pts]))
                fb = float(np.median([r["fwdbwd_ms"] for r in pts]))
                lines.append(
                    f"| {model} | {m} | {pts[0]['present']:.0f} | {pts[0]['params']:,} "
                    f"| {step:.1f} [{iqr(pts)}] | {fb:.1f} | {step - fb:.1f} | {spread(ratios)} "
                    f"| {max(r['peak_rss_mib'] for r in pts):.0f} "
                    "| " + ", ".join(f"{r['load']:.1f}" for r in pts) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv if argv is None else argv
    if len(argv) > 1 and argv[1] == "--child":
        with open(argv[2]) as fh:
            child(json.load(fh), argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round, in seconds")
    ap.add_argument("--out", default=None, help="report path (default: "
                    "docs/benchmarks/domain_scaling.md; with --smoke a temporary file)")
    ap.add_argument("--models", nargs="+", default=None, choices=MODELS)
    ap.add_argument("--dists", nargs="+", default=None, choices=DISTS)
    ap.add_argument("--domains", nargs="+", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lock", default=None, help="flock this file around each model's points")
    ap.add_argument("--interleave", action="store_true",
                    help="alternate the models at each point (A B A B), all under one lock hold "
                    "(for a before/after ratio; keep it short)")
    args = ap.parse_args(argv[1:])
    sizes = dict(SMOKE if args.smoke else FULL)
    for key in ("domains", "rounds", "steps"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    models = args.models or MODELS
    if args.smoke and not args.dists:
        args.dists = ["zipf"]  # seconds: one distribution
    dists = args.dists or DISTS
    out = args.out
    if out is None:
        out = (os.path.join(tempfile.gettempdir(), "domain_scaling_smoke.md") if args.smoke
               else os.path.join(ROOT, "docs", "benchmarks", "domain_scaling.md"))
    command = "python benchmarks/domain_scaling.py " + " ".join(argv[1:])
    results = []
    keys = ("batch", "features", "dim", "vocab", "hidden", "steps", "warmup", "max_seconds")
    def show(got):
        for r in got:
            results.append(r)
            print(f"round {r['round']} {r['dist']:7s} {r['model']:12s} M={r['m']:4d} "
                  f"step {r['step_ms']:8.1f} ms  fwd+bwd {r['fwdbwd_ms']:8.1f} ms"
                  f"  peak {r['peak_rss_mib']:.0f} MiB  load {r['load']:.2f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        groups = [[dict(model=model, dist=dist, m=m, round=rnd, **{k: sizes[k] for k in keys})
                   for dist in (args.dists or DEFAULT_DISTS.get(model, ["zipf"]))
                   for m in sizes["domains"]]
                  for rnd in range(sizes["rounds"]) for model in models]
        if args.interleave:  # A B A B: the models alternate at each (round, dist, M), one hold
            flat = [s for g in groups for s in g]
            flat.sort(key=lambda s: (s["round"], s["dist"], s["m"]))  # stable: models alternate
            groups = [flat]
        if args.smoke:  # every point in one process: seconds, not one TF start per point
            with locked(args.lock):
                show(spawn([s for g in groups for s in g], tmp))
        else:  # each point in a fresh process (its own peak memory)
            for specs in groups:  # a model's points under one hold of the lock
                with locked(args.lock):
                    got = []
                    for spec in specs:
                        got += spawn([spec], tmp)
                show(got)
    planned = {m: args.dists or DEFAULT_DISTS.get(m, ["zipf"]) for m in models}
    text = report(results, sizes, models, dists, command, planned)
    with open(out, "w") as fh:
        fh.write(text + "\n")
    with open(out + ".json", "w") as fh:
        json.dump(results, fh, indent=1)
    print(text)


if __name__ == "__main__":
    main()
