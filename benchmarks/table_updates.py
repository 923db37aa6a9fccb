"""Cost of updating embedding tables: Keras 3's dense Adam against easyblocks' row-wise update.

    python benchmarks/table_updates.py --rows 10000 100000

Keras 3 optimizers apply a dense update to a whole table even when its gradient is
sparse (keras-team/keras#19992). This times one training step on a batch of 1024
ids x 16 features looking up 16-dim tables of the given sizes, with (a) Keras Adam on
the tables and (b) SparseTableOptimizer (lazy Adam on the looked-up rows), in the same
process, alternating, median of the timed steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import machine, smoke_out, write_report  # noqa: E402

from easyblocks.config.specs import LearningRateSpec, OptimizerSpec  # noqa: E402
from easyblocks.train.optimizers import SparseTableOptimizer  # noqa: E402

FEATURES, DIM, BATCH = 16, 16, 1024


def make_step(tables, apply):
    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            emb = [tf.gather(t, ids[:, i]) for i, t in enumerate(tables)]
            loss = tf.reduce_mean(tf.square(tf.concat(emb, -1) - 0.1))
        apply(tape.gradient(loss, tables))
        return loss
    return step


def time_steps(step, ids, n=30, warmup=5) -> float:
    for _ in range(warmup):
        step(ids[0])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        step(ids[i % len(ids)]).numpy()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing)")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    p.add_argument("--smoke", action="store_true",
                   help="CI: 100-row tables, 3 timed steps; the report goes to a temporary "
                        "file unless --out")
    args = p.parse_args(argv[1:])
    if args.smoke:
        args.rows, args.steps, args.warmup = [100], 3, 1
        args.out = smoke_out(args.out, tempfile.mkdtemp(prefix="table_updates_"),
                             "table_updates")
    tc = OptimizerSpec("adam", LearningRateSpec("constant", 0.001))
    load0 = os.getloadavg()[0]
    lines = ["| rows per table | Keras Adam (dense) ms/step | row-wise lazy Adam ms/step "
             "| speed-up |", "|---|---|---|---|"]
    print("\n".join(lines))
    for rows in args.rows:
        rng = np.random.default_rng(0)
        ids = [tf.constant(rng.integers(0, rows, (BATCH, FEATURES))) for _ in range(8)]
        dense_tables = [keras.Variable(tf.random.normal((rows, DIM), stddev=0.1))
                        for _ in range(FEATURES)]
        sparse_tables = [keras.Variable(tf.random.normal((rows, DIM), stddev=0.1))
                         for _ in range(FEATURES)]
        adam = keras.optimizers.Adam(0.001)
        adam.build(dense_tables)
        rowwise_opt = SparseTableOptimizer(tc, sparse_tables)
        dense = make_step(dense_tables, lambda g, o=adam, t=dense_tables:
                          o.apply_gradients(zip(g, t)))
        rowwise = make_step(sparse_tables, lambda g, o=rowwise_opt, t=sparse_tables: o.apply(g, t))
        d = time_steps(dense, ids, args.steps, args.warmup)
        s = time_steps(rowwise, ids, args.steps, args.warmup)
        lines.append(f"| {rows:,} | {d * 1000:.1f} | {s * 1000:.1f} | {d / s:.1f}x |")
        print(lines[-1], flush=True)
    if args.out:
        write_report(args.out, "\n".join([
            "# Embedding-table updates: Keras Adam (dense) vs row-wise lazy Adam", "",
            "`python benchmarks/table_updates.py " + " ".join(argv[1:]) + "`", "",
            f"Machine: {machine()}; load average {load0:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after. Batch {BATCH} ids x {FEATURES} features, "
            f"{DIM}-dim tables; median of {args.steps} timed steps after {args.warmup} "
            "untimed ones, both in this process.", "", *lines, ""]))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
