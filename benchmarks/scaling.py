"""Scaling: step time and peak memory against backbone blocks, table rows and APG rank; the
CSV input pipeline's rows/s against what the MLP train step consumes.

    python benchmarks/scaling.py                      # writes docs/benchmarks/scaling.md
    python benchmarks/scaling.py --smoke              # tiny points, seconds; report in a temp dir

Every point runs in a fresh subprocess (`--point`), which prints one JSON line:

- blocks: a generated backbone of N blocks (chains of MLP / Dense, fan-out from feature
  groups and earlier blocks, Add and Concat fan-in; `generated_blocks`) over the sample's
  features: config load + validate seconds (TensorFlow imported first, so not counted),
  model build seconds (the Trainer: model, optimizers), the first train step (trace)
  seconds, the steady step (median), peak RSS.
- tables: mlp_on_taobao with user_id's table at R rows x 16 (row-wise lazy Adam, the
  project's table optimizer): steady step and peak RSS; a point that would not fit in the
  available memory is skipped with the reason.
- apg: apg_on_taobao at rank_k K (overparam_p max(64, K)): steady step and peak RSS.
- input: mlp_on_taobao's training input at the default settings, alone (rows/s through
  the whole pipeline, parsing and preprocessing included), then the training loop's view:
  per step, the seconds spent in `next()` on the input iterator and in the train step.

Steady steps are timed on the real training input (samples/data), each step's time in
`train_step` measured from the loop (the step returns when done on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLP_CONFIG = os.path.join(ROOT, "samples/configs/mlp_on_taobao.config")
APG_CONFIG = os.path.join(ROOT, "samples/configs/apg_on_taobao.config")
GROUPS = {
    "user": ["user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
             "pvalue_level", "shopping_level", "occupation", "new_user_class_level"],
    "item": ["adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price"],
    "context": ["pid", "tag_category_list", "tag_brand_list"],
}
WIDTH = 16  # the width of every Dense / MLP block's output


# ---- generated configs ---------------------------------------------------------------------
def _dense(units: int, activation: str = "relu") -> str:
    return ('keras_layer { class_name: "Dense" st_params { '
            f'fields {{ key: "units" value {{ number_value: {units} }} }} '
            f'fields {{ key: "activation" value {{ string_value: "{activation}" }} }} }} }}')


def generated_blocks(n: int, seed: int = 0) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The backbone text of n blocks and [(block, its input blocks)] in config order.

    A mix as a generated config has: Dense blocks reading a feature group (fan-out from the
    groups), MLP chains, Dense blocks reading an earlier block (fan-out), Add of two earlier
    16-wide blocks (fan-in, merge_inputs_into_list) and Concat blocks (a block with no layer
    and 2-3 inputs). Earlier blocks are picked among the last 20, seeded. The blocks that no
    other block reads are concatenated by the last block, an MLP, the backbone's output.
    The blocks are written in a shuffled order (the DAG orders them).
    """
    rng = random.Random(seed)
    width: dict[str, int] = {}
    blocks: list[tuple[str, list[str], str]] = []  # (name, input blocks, text)
    group_names = list(GROUPS)
    for i in range(n - 1):
        name = f"b{i:04d}"
        recent = list(width)[-20:]
        narrow = [b for b in recent if width[b] == WIDTH]
        kind = i % 5 if i >= 3 else 0
        if kind == 0 or not recent:
            group = group_names[i % len(group_names)]
            text = (f'blocks {{ name: "{name}" inputs {{ feature_group_name: "{group}" }} '
                    f'{_dense(WIDTH)} }}')
            inputs: list[str] = []
            w = WIDTH
        elif kind == 1:
            inputs = [list(width)[-1]]
            text = (f'blocks {{ name: "{name}" inputs {{ block_name: "{inputs[0]}" }} '
                    f'keras_layer {{ class_name: "MLP" mlp {{ hidden_units: [32, {WIDTH}] }} }} '
                    '}')
            w = WIDTH
        elif kind == 2:
            inputs = [rng.choice(recent)]
            text = (f'blocks {{ name: "{name}" inputs {{ block_name: "{inputs[0]}" }} '
                    f'{_dense(WIDTH, "tanh")} }}')
            w = WIDTH
        elif kind == 3 and len(narrow) >= 2:
            inputs = rng.sample(narrow, 2)
            text = (f'blocks {{ name: "{name}" ' +
                    " ".join(f'inputs {{ block_name: "{b}" }}' for b in inputs) +
                    ' merge_inputs_into_list: true keras_layer { class_name: "Add" } }')
            w = WIDTH
        else:
            pool = [b for b in recent if width[b] <= 3 * WIDTH]  # bounded widths
            inputs = rng.sample(pool, min(len(pool), rng.choice([2, 3])))
            text = (f'blocks {{ name: "{name}" ' +
                    " ".join(f'inputs {{ block_name: "{b}" }}' for b in inputs) + " }")
            w = sum(width[b] for b in inputs)
        width[name] = w
        blocks.append((name, inputs, text))
    read = {b for _, inputs, _ in blocks for b in inputs}
    leaves = [name for name, _, _ in blocks if name not in read]
    top = f"b{n - 1:04d}"
    blocks.append((top, leaves, f'blocks {{ name: "{top}" ' +
                   " ".join(f'inputs {{ block_name: "{b}" }}' for b in leaves) +
                   ' keras_layer { class_name: "MLP" mlp { hidden_units: [64] } } }'))
    order = list(range(len(blocks)))
    rng.shuffle(order)
    texts = [blocks[i][2] for i in order]
    return texts, [(name, inputs) for name, inputs, _ in blocks]


def blocks_config(n: int, seed: int = 0) -> str:
    """mlp_on_taobao's data and features with a generated backbone of n blocks."""
    with open(MLP_CONFIG) as f:
        base = f.read()
    head = base[:base.index("model_config {")]
    groups = "\n".join(
        f'  feature_groups {{ group_name: "{g}" ' +
        " ".join(f'feature_names: "{x}"' for x in names) + " wide_deep: DEEP }"
        for g, names in GROUPS.items())
    texts, _ = generated_blocks(n, seed)
    body = "\n".join("    " + t for t in texts)
    return (f'{head}model_config {{\n  model_name: "generated {n} blocks"\n'
            f'  model_class: "RankModel"\n{groups}\n  backbone {{\n{body}\n'
            f'    concat_blocks: "b{n - 1:04d}"\n  }}\n}}\n')


def table_config(rows: int) -> str:
    """mlp_on_taobao with user_id's table at `rows` rows."""
    with open(MLP_CONFIG) as f:
        text = f.read()
    return re.sub(r'(input_names: "user_id" [^}]*hash_bucket_size: )\d+', rf"\g<1>{rows}", text)


def apg_config(rank: int) -> str:
    with open(APG_CONFIG) as f:
        text = f.read()
    text = re.sub(r"rank_k: \d+", f"rank_k: {rank}", text)
    return re.sub(r"overparam_p: \d+", f"overparam_p: {max(64, rank)}", text)


def with_paths(text: str, train: str, model_dir: str) -> str:
    text = re.sub(r'train_input_path: "[^"]*"', f'train_input_path: "{train}"', text)
    text = re.sub(r'eval_input_path: "[^"]*"', f'eval_input_path: "{train}"', text)
    return re.sub(r'model_dir: "[^"]*"', f'model_dir: "{model_dir}"', text)


# ---- one point, in this process -----------------------------------------------------------
def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _train_steps(trainer, files: list[str], steps: int) -> dict:
    """Runs `steps` train steps through the Trainer's own input and step function; per step
    the seconds in next() on the input iterator and in the step."""
    import tensorflow as tf

    elements, train_step, _ = trainer._input(files, 0)
    stop = tf.constant([0, 0])
    waits, times, rows = [], [], []
    it = iter(elements)
    for _ in range(steps):
        t0 = time.perf_counter()
        try:
            features, labels, _, _ = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        result = train_step(features, labels, stop)
        float(result[0]["loss/total"])
        t2 = time.perf_counter()
        waits.append(t1 - t0)
        times.append(t2 - t1)
        rows.append(int(next(iter(labels.values())).shape[0]))
    elements.close()
    return {"wait": waits, "step": times, "rows": rows}


def run_point(kind: str, value: int, steps: int, train: str, workdir: str) -> dict:
    t_import = time.perf_counter()
    import tensorflow as tf  # noqa: F401  (imported first: not part of validation)

    import easyblocks.blocks  # noqa: F401
    from easyblocks import api
    from easyblocks.train.loop import Trainer

    t_import = time.perf_counter() - t_import
    text = {"blocks": blocks_config, "tables": table_config, "apg": apg_config,
            "input": lambda _: open(MLP_CONFIG).read()}[kind](value)
    path = os.path.join(workdir, f"{kind}_{value}.config")
    with open(path, "w") as f:
        f.write(with_paths(text, train, os.path.join(workdir, f"run_{kind}_{value}")))
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    spec = api.resolve(path, training=True, max_memory_gb=64)
    t_validate = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer = Trainer(spec)
    t_build = time.perf_counter() - t0
    out = {"kind": kind, "value": value, "import_s": t_import, "validate_s": t_validate,
           "build_s": t_build}
    if kind == "blocks":
        out["num_blocks"] = len(trainer.model.backbone.dag.order) \
            if hasattr(trainer.model, "backbone") else None
    files = [train]
    if kind == "input":
        out.update(input_alone(trainer, files, steps))
    run = _train_steps(trainer, files, steps)
    out["first_step_s"] = run["step"][0] + run["wait"][0]
    steady = run["step"][2:] or run["step"][1:]
    out["step_ms"] = 1000 * statistics.median(steady)
    out["step_ms_q"] = [1000 * q for q in _quartiles(steady)]
    waits = run["wait"][2:] or run["wait"][1:]
    out["wait_ms"] = 1000 * statistics.median(waits)
    out["wait_ms_max"] = 1000 * max(waits)
    out["wait_share"] = sum(waits) / (sum(waits) + sum(steady))
    out["rows_per_s_consumed"] = statistics.median(run["rows"][2:] or run["rows"]) / \
        (out["step_ms"] / 1000)
    out["steps"] = len(run["step"])
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_before_mb"] = rss0
    return out


def _quartiles(xs: list[float]) -> list[float]:
    if len(xs) < 4:
        return [min(xs), max(xs)]
    q = statistics.quantiles(xs, n=4)
    return [q[0], q[2]]


def input_alone(trainer, files: list[str], steps: int) -> dict:
    """The training input alone at its default settings: rows/s through the pipeline (the
    first batch, which fills the buffers, not counted)."""
    ds = trainer.input.dataset(files, trainer.spec.data.batch_size, training=True,
                               num_epochs=1, seed=trainer.spec.train.seed)
    it = iter(ds)
    next(it)
    t0, rows, n = time.perf_counter(), 0, 0
    for _features, labels, _, _ in it:
        rows += int(next(iter(labels.values())).shape[0])
        n += 1
        if n >= steps:
            break
    return {"input_rows_per_s": rows / (time.perf_counter() - t0), "input_batches": n}


# ---- the driver ----------------------------------------------------------------------------
def mem_available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def table_need_gb(rows: int, dim: int = 16) -> float:
    """The table plus two Adam slots (float32), and twice that headroom for the rest."""
    return rows * dim * 4 * 3 / 2**30


def subprocess_points(points: str, steps: int, train: str, workdir: str) -> list[dict]:
    """Runs the points ("kind:value,kind:value") in one fresh process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--point", points,
           "--steps", str(steps), "--train", train, "--workdir", workdir]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"points {points} failed ({proc.returncode}): " + " | ".join(tail))
    out = [json.loads(x) for x in lines]
    for point in out:
        point["load"] = os.getloadavg()[0]
        print(json.dumps(point), flush=True)
    return out


def _append(path: str | None, record: dict) -> None:
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _ms(p: dict) -> str:
    lo, hi = p["step_ms_q"]
    return f"{p['step_ms']:.1f} ({lo:.1f}-{hi:.1f})"


def _rounds(points: list[dict], ref) -> list[tuple[dict, int, str]]:
    """(point, its round, its step time / the reference value's in the same round), sorted
    by value then round."""
    seen: dict = {}
    rows = []
    for p in points:
        seen[p["value"]] = seen.get(p["value"], 0) + 1
        rows.append((p, seen[p["value"]]))
    refs = {r: p["step_ms"] for p, r in rows if p["value"] == ref}
    return [(p, r, f"{p['step_ms'] / refs[r]:.2f}" if r in refs else "")
            for p, r in sorted(rows, key=lambda x: (x[0]["value"], x[1]))]


def report(points: list[dict], skipped: list[str], args, machine: str) -> str:
    by = {k: [p for p in points if p["kind"] == k] for k in ("blocks", "tables", "apg", "input")}
    out = ["# Scaling", "",
           f"Machine: {machine}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
           f"Command: `python benchmarks/scaling.py {' '.join(sys.argv[1:])}`", "",
           "Each point in a fresh process; steps on samples/data (batch 1024); step times "
           "are the median (quartiles) of the steps after the first two; `load` is the "
           "1-minute load average when the point ended (the machine is shared: compare "
           "points of one table, not absolute numbers across runs).", ""]
    if by["blocks"]:
        out += ["## Backbone blocks", "",
                _row(["blocks", "load + validate s", "build s", "first step (trace) s",
                      "steady step ms", "peak RSS MB", "load"]),
                _row(["---"] * 7)]
        for p in sorted(by["blocks"], key=lambda p: p["value"]):
            out.append(_row([p["value"], f"{p['validate_s']:.2f}", f"{p['build_s']:.2f}",
                             f"{p['first_step_s']:.2f}", _ms(p), f"{p['peak_rss_mb']:.0f}",
                             f"{p['load']:.1f}"]))
        out.append("")
    if by["tables"] or any("table" in s for s in skipped):
        ref = by["tables"][0]["value"] if by["tables"] else None
        out += ["## Table rows (user_id's table, dimension 16, row-wise lazy Adam)", "",
                _row(["rows", "round", "steady step ms", f"step / {ref:.0e}'s (same round)",
                      "peak RSS MB", "build s", "load"]), _row(["---"] * 7)]
        for p, r, ratio in _rounds(by["tables"], ref):
            out.append(_row([f"{p['value']:.0e}", r, _ms(p), ratio, f"{p['peak_rss_mb']:.0f}",
                             f"{p['build_s']:.2f}", f"{p['load']:.1f}"]))
        out += [f"- skipped: {s}" for s in skipped if "table" in s]
        out.append("")
    if by["apg"]:
        values = [p["value"] for p in by["apg"]]
        ref = 32 if 32 in values else values[0]
        out += ["## APG rank (apg_on_taobao sizes: [512, 256, 128, 64], P = max(64, K))", "",
                _row(["rank_k", "round", "steady step ms", f"step / rank {ref}'s (same round)",
                      "peak RSS MB", "load"]), _row(["---"] * 6)]
        for p, r, ratio in _rounds(by["apg"], ref):
            out.append(_row([p["value"], r, _ms(p), ratio, f"{p['peak_rss_mb']:.0f}",
                             f"{p['load']:.1f}"]))
        out.append("")
    if by["input"]:
        out += ["## Input pipeline (mlp_on_taobao, CSV, default settings)", "",
                _row(["run", "input alone rows/s", "train step consumes rows/s",
                      "median wait in next() ms", "max wait ms", "share of time waiting",
                      "load"]), _row(["---"] * 7)]
        for i, p in enumerate(by["input"], 1):
            out.append(_row([i, f"{p['input_rows_per_s']:,.0f}",
                             f"{p['rows_per_s_consumed']:,.0f}", f"{p['wait_ms']:.2f}",
                             f"{p['wait_ms_max']:.1f}", f"{100 * p['wait_share']:.1f}%",
                             f"{p['load']:.1f}"]))
        out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny points, one each, in seconds")
    p.add_argument("--out", default=None)
    p.add_argument("--blocks", type=int, nargs="*", default=[10, 100, 1000])
    p.add_argument("--rows", type=int, nargs="*", default=[10**5, 10**6, 10**7])
    p.add_argument("--ranks", type=int, nargs="*", default=[4, 8, 16, 32, 64])
    p.add_argument("--input_runs", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds of the table and APG points (interleaved: A B A B)")
    p.add_argument("--jsonl", default=None,
                   help="also append each point to this file (to run the groups separately)")
    p.add_argument("--report_from", default=None,
                   help="write the report from the points of this --jsonl file, run nothing")
    p.add_argument("--point", nargs="+", metavar="KIND VALUE", help=argparse.SUPPRESS)
    p.add_argument("--train", default=os.path.join(ROOT, "samples/data/taobao_train.csv"))
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.point:  # KIND VALUE, or several as KIND:VALUE,KIND:VALUE (the smoke run)
        kinds = [args.point] if ":" not in args.point[0] else \
            [x.split(":") for x in args.point[0].split(",")]
        for kind, value in kinds:
            print(json.dumps(run_point(kind, int(value), args.steps, args.train,
                                       args.workdir)), flush=True)
        return
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, " \
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    if args.report_from:
        with open(args.report_from) as f:
            records = [json.loads(x) for x in f if x.strip()]
        points = [r for r in records if "skipped" not in r]
        skipped = [r["skipped"] for r in records if "skipped" in r]
        text = report(points, skipped, args, machine)
        with open(args.out or os.path.join(ROOT, "docs/benchmarks/scaling.md"), "w") as f:
            f.write(text)
        print(text)
        return
    tmp = tempfile.TemporaryDirectory(prefix="scaling_")
    train = args.train
    if args.smoke:
        args.blocks, args.rows, args.ranks, args.input_runs, args.steps = [10], [1000], [4], \
            1, 3
        train = os.path.join(tmp.name, "train.csv")
        with open(args.train) as src, open(train, "w") as dst:
            for i, line in enumerate(src):
                if i > 5000:
                    break
                dst.write(line)
    out = args.out or (os.path.join(tmp.name, "scaling.md") if args.smoke
                       else os.path.join(ROOT, "docs/benchmarks/scaling.md"))
    points, skipped = [], []
    rounds = 1 if args.smoke else args.repeats
    plan = [("blocks", n) for n in args.blocks] + \
        [("tables", r) for _ in range(rounds) for r in args.rows] + \
        [("apg", k) for _ in range(rounds) for k in args.ranks] + [("input", 0)] * args.input_runs
    if args.smoke:  # one process for the tiny points: seconds, not a fair memory comparison
        both = ",".join(f"{k}:{v}" for k, v in plan)
        points = subprocess_points(both, args.steps, train, tmp.name)
        plan = []
    for kind, value in plan:
        if kind == "tables":
            need, have = table_need_gb(value), mem_available_gb()
            if need * 2 > have:
                msg = (f"table {value:.0e} rows: needs ~{need:.1f} GiB (table + Adam slots), "
                       f"{have:.1f} GiB available")
                print("skip", msg, flush=True)
                skipped.append(msg)
                _append(args.jsonl, {"skipped": msg})
                continue
        point, = subprocess_points(f"{kind}:{value}", args.steps, train, tmp.name)
        points.append(point)
        _append(args.jsonl, point)
    text = report(points, skipped, args, machine)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    print("written to", out)
    tmp.cleanup()


if __name__ == "__main__":
    main()
