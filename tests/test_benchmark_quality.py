"""benchmarks/quality.py --smoke: the quality benchmark still runs end to end (tiny data)."""

import os
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_quality_benchmark_smoke(capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import quality
    finally:
        sys.path.pop(0)
    quality.main(["quality.py", "--smoke"])
    out = capsys.readouterr().out
    # one row per model with an AUC, and the hand-written reference
    for model in ("mlp", "star", "keras_mlp"):
        assert f"| {model} | " in out
    assert "## Targets (issue 10), with the defaults" in out
    assert "MLP sample" in out and "hand-written Keras MLP" in out
