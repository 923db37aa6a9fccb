"""benchmarks/domain_scaling.py --smoke: the domain-scaling benchmark still runs end to end
(tiny sizes, every model, one process) and reports every point."""

import os
import sys

from conftest import ROOT


def test_domain_scaling_benchmark_smoke(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import domain_scaling
    finally:
        sys.path.pop(0)
    out = tmp_path / "domain_scaling.md"
    domain_scaling.main(["domain_scaling.py", "--smoke", "--out", str(out)])
    text = out.read_text()
    assert "failed" not in text and "FAILED" not in capsys.readouterr().out
    for model in domain_scaling.MODELS:
        for m in domain_scaling.SMOKE["domains"]:
            assert f"| {model} | {m} | " in text
    # a ratio to the smallest M for every point (the first is 1.00 by definition)
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| star | ")]
    assert [r[8].strip()[:4] for r in rows][0] == "1.00"
    assert all(float(r[5].split()[0]) > 0 for r in rows)  # step ms [p25..p75]
