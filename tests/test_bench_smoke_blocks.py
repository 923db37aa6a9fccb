"""benchmarks/block_speed.py: --smoke runs every block case end to end, and its checks can fail."""

import os
import sys

import keras
import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
try:
    import block_speed
finally:
    sys.path.pop(0)


def test_block_speed_smoke(tmp_path, capsys):
    out = tmp_path / "report.md"
    assert block_speed.main(["--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    cases = block_speed.cases()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(cases)  # the header and one row per case
    for case in cases:
        row = next(r for r in rows if r.startswith(f"| {case.name} | "))
        # the same function was checked where the weights are copied
        assert ("yes (max diff" in row) == case.copy, row
    assert "batch 16" in text and "Command:" in text
    assert "report:" in capsys.readouterr().out


def test_block_speed_rejects_unknown_block():
    with pytest.raises(SystemExit):
        block_speed.main(["--smoke", "--blocks", "no_such_block"])


def _mlp_pair():
    case = next(c for c in block_speed.cases() if c.name == "mlp")
    eb = block_speed.make_model(case, case.easyblocks())
    hand = block_speed.make_model(case, case.hand())
    x = block_speed.make_inputs(case, 4, seed=0)[0]
    return case, eb, hand, x


def test_same_function_check_copies_weights_and_detects_a_difference():
    case, eb, hand, x = _mlp_pair()
    # after the copy both compute the same logits ...
    assert block_speed.check_same_function(case, eb, hand, x) <= 1e-5
    np.testing.assert_allclose(np.asarray(eb(x)), np.asarray(hand(x)), atol=1e-5)
    # ... and a hand-written model that computes something else (its body's output shifted by
    # 1, which copying the weights cannot undo) is caught
    class Shifted(keras.layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, v, training=None):
            return self.inner(v, training=training) + 1.0

    shifted = block_speed.make_model(case, Shifted(case.hand()))
    with pytest.raises(AssertionError, match="logits differ by"):
        block_speed.check_same_function(case, eb, shifted, x)


def test_copy_weights_needs_matching_shapes():
    case, eb, _, _ = _mlp_pair()
    other = block_speed.make_model(case, block_speed.HandMLP([512, 256, 128, 32], False, True))
    with pytest.raises(ValueError, match="shape"):
        block_speed.copy_weights(eb, other)
