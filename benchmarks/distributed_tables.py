"""Where one machine runs out: peak memory and step time against embedding-table size, in
one process and with parameter servers (2 workers + 2 ps on this machine).

    python benchmarks/distributed_tables.py --rows 100000 1000000 10000000 --dims 16 64

Each run trains the shipped Taobao-like data with one large table (user_id hashed into
`rows` buckets of `dim` floats) beside 5 small ones and an MLP 64-32, row-wise lazy Adam
(two slots per table: 3 floats per table entry in all), batch 1024, for --steps steps.
Peak memory is each process's VmHWM (peak resident set) read from /proc while it runs;
the step time is the last logged window's (batch / examples per second). The results are
written to docs/benchmarks/distributed_tables.md, with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, smoke_out, write_report  # noqa: E402

OUT = os.path.join(ROOT, "docs", "benchmarks", "distributed_tables.md")
# --smoke: one small table, a few steps, 1 worker + 1 ps
SMOKE = dict(rows=[1000], dims=[4], steps=3, workers=1, ps=1)
FIELDS = ["clk:INT32", "buy:INT32", "pid", "adgroup_id", "cate_id", "campaign_id", "customer",
          "brand", "user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
          "pvalue_level", "shopping_level", "occupation", "new_user_class_level",
          "tag_category_list", "tag_brand_list", "price:INT32"]


def config_text(rows: int, dim: int, steps: int) -> str:
    log_steps = min(10, steps)
    fields = "\n".join(
        f'  input_fields {{ input_name: "{f.split(":")[0]}" input_type: '
        f'{f.split(":")[1] if ":" in f else "STRING"} }}' for f in FIELDS)
    small = ["pid", "age_level", "cate_id", "brand", "cms_segid"]
    features = "\n".join(
        f'  features {{ input_names: "{n}" feature_type: IdFeature embedding_dim: 8 '
        f'hash_bucket_size: 1000 }}' for n in small)
    return f"""
train_input_path: "{ROOT}/samples/data/taobao_train.csv"
eval_input_path: "{ROOT}/samples/data/taobao_test.csv"
train_config {{ num_steps: {steps} save_checkpoints_steps: 0 log_step_count_steps: {log_steps} }}
eval_config {{ metrics_set {{ auc {{}} }} num_examples: 2048 }}
data_config {{ batch_size: 1024 separator: "," label_fields: "clk"
{fields}
}}
feature_config {{
  features {{ input_names: "user_id" feature_type: IdFeature embedding_dim: {dim}
             hash_bucket_size: {rows} }}
{features}
}}
model_config {{
  model_class: "RankModel"
  feature_groups {{ group_name: "all" feature_names: ["user_id", {", ".join(
        f'"{n}"' for n in small)}] }}
  backbone {{
    blocks {{ name: "mlp" inputs {{ feature_group_name: "all" }}
             keras_layer {{ class_name: "MLP" mlp {{ hidden_units: [64, 32] }} }} }}
    concat_blocks: "mlp"
  }}
}}
"""


def peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Watch:
    """Polls the peak resident set of named processes until stopped."""

    def __init__(self):
        self.pids: dict[str, int] = {}
        self.peaks: dict[str, float] = {}
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            for name, pid in list(self.pids.items()):
                mb = peak_rss_mb(pid)
                if mb is not None:
                    self.peaks[name] = max(self.peaks.get(name, 0.0), mb)
            time.sleep(0.2)

    def stop(self):
        self.running = False
        self.thread.join()


def run(command: list[str], watch: Watch, env: dict, timeout: float) -> str:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watch.pids["process"] = proc.pid
    lines = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"cluster-local: (.+) at \S+, pid (\d+)", line)
        if m:
            watch.pids[m.group(1)] = int(m.group(2))
        if time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            break
    proc.wait()
    out = "".join(lines)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{out[-3000:]}")
    return out


def step_ms(out: str) -> float:
    rates = re.findall(r"step \d+ \| (\d+) examples/s", out)
    return 1024 / float(rates[-1]) * 1000


def measure(rows: int, dim: int, steps: int, ps: bool, timeout: float, workers: int = 2,
            num_ps: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bench.config")
        open(config, "w").write(config_text(rows, dim, steps))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        args = ["--config", config, "--model_dir", os.path.join(tmp, "m")]
        if ps:
            command = [sys.executable, "-m", "easyblocks.cli", "cluster-local", "--workers",
                       str(workers), "--ps", str(num_ps), *args,
                       "--set", "train_config { train_distribute: PSStrategy }"]
        else:
            command = [sys.executable, "-m", "easyblocks.cli", "train", *args]
        watch = Watch()
        try:
            out = run(command, watch, env, timeout)
        finally:
            watch.stop()
        peaks = {k: v for k, v in watch.peaks.items() if k != "process" or not ps}
        shards = re.search(r"table features/embedding_user_id \S+ \S+: (\d+) shards", out)
        return {"rows": rows, "dim": dim, "ps": ps, "step_ms": step_ms(out), "peaks": peaks,
                "shards": int(shards.group(1)) if shards else 1}


def table_mb(rows: int, dim: int, copies: int = 3) -> float:
    return rows * dim * 4 * copies / 2**20


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    p.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=2, help="workers of the ps runs")
    p.add_argument("--ps", type=int, default=2, help="parameter servers of the ps runs")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default=OUT)
    p.add_argument("--smoke", action="store_true",
                   help="CI: rows 1000, dim 4, 3 steps, 1 worker + 1 ps; the report goes to a "
                        "temporary file unless --out")
    args = p.parse_args(argv[1:])
    if args.smoke:
        vars(args).update(SMOKE)
        given = any(a == "--out" or a.startswith("--out=") for a in argv[1:])
        args.out = smoke_out(args.out if given else None,
                             tempfile.mkdtemp(prefix="distributed_tables_"),
                             "distributed_tables")
    load_before = os.getloadavg()
    lines = ["| rows x dim | table + 2 Adam slots | one process: peak RSS | one process: ms/step "
             "| ps: chief peak | ps: worker peak (max) | ps: ps peak (each) | ps: ms/step |",
             "|---|---|---|---|---|---|---|---|"]
    for dim in args.dims:
        for rows in args.rows:
            one = measure(rows, dim, args.steps, False, args.timeout)
            two = measure(rows, dim, args.steps, True, args.timeout, args.workers, args.ps)
            workers = max(v for k, v in two["peaks"].items() if k.startswith("worker"))
            ps = [v for k, v in sorted(two["peaks"].items()) if k.startswith("ps")]
            row = (f"| {rows:.0e} x {dim} | {table_mb(rows, dim):,.0f} MB "
                   f"| {one['peaks']['process']:,.0f} MB | {one['step_ms']:.0f} "
                   f"| {two['peaks']['chief']:,.0f} MB | {workers:,.0f} MB "
                   f"| {' / '.join(f'{v:,.0f}' for v in ps)} MB ({two['shards']} shards) "
                   f"| {two['step_ms']:.0f} |")
            print(row, flush=True)
            lines.append(row)
    load_after = os.getloadavg()
    text = "\n".join([
        "# Embedding-table size: one process against parameter servers",
        "",
        "`python benchmarks/distributed_tables.py " + " ".join(argv[1:]) + "`",
        "",
        f"Machine: {os.cpu_count()} cores shared with other jobs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Memory (peak resident set "
        "per process) is reliable; step times are rough under that load. The parameter-server "
        f"runs put the chief, {args.workers} workers and {args.ps} ps on this one machine.",
        "",
        *lines, ""])
    write_report(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
