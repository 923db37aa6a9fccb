"""benchmarks/scaling.py --smoke: the scaling benchmark still runs end to end (tiny points)."""

import os
import re
import subprocess
import sys

from conftest import ROOT


def test_scaling_benchmark_smoke(tmp_path):
    out = tmp_path / "scaling.md"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "scaling.py"), "--smoke",
         "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    for section in ("## Backbone blocks", "## Table rows", "## APG rank", "## Input pipeline"):
        assert section in text
    # one row per tiny point, with numbers in every column
    assert re.search(r"^\| 10 \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d \(", text, re.M)
    assert re.search(r"^\| 1e\+03 \| 1 \| \d+\.\d \(.*\) \| 1\.00 \| \d+ \|", text, re.M)
    assert re.search(r"^\| 4 \| 1 \| \d+\.\d \(.*\) \| 1\.00 \| \d+ \|", text, re.M)
    row = re.search(r"^\| 1 \| ([\d,]+) \| ([\d,]+) \| (\d+\.\d\d) \| [\d.]+ \| ([\d.]+)% \|",
                    text, re.M)
    assert row, text
    assert int(row.group(1).replace(",", "")) > 0 and int(row.group(2).replace(",", "")) > 0
    assert 0.0 <= float(row.group(4)) <= 100.0
