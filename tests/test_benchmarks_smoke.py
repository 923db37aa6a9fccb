"""Every benchmark script's --smoke mode runs end to end and writes a report with its table
(so that none of them rots), and its full command line still parses (--help).

The scripts run in one child process (`python benchmarks/common.py --smoke_all DIR`, which
calls each script's main(argv) with `--smoke --out DIR/<script>.md` and with `--help`): a
TensorFlow start costs seconds on a small machine. The numbers of a smoke report mean
nothing (a few steps on the first rows of the data); these tests check that each report has
its table header and rows with finite numbers.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

NUM = r"\d[\d,]*\.?\d*"  # a finite number as the reports print it (nan / inf do not match)
AUC = r"0\.\d{4}"

# script -> regular expressions that its smoke report must contain (each a table header or a
# row with numbers)
EXPECTED = {
    "classic": [
        r"\| model \| config \| test AUC \(mean ± std\) \| oracle AUC \| AUC - MLP \(clk\) ",
        rf"\| MLP 512-256-128-64 \(reference\) \| `mlp_on_taobao.config` \| clk \(clk\) {AUC} "
        rf"± 0\.0000 \| clk {AUC} \| \(reference\) \| {NUM} \({NUM} ± 0\) \| 1\.00 \(reference\)",
        rf"\| ESMM: p_ctcvr = p_cvr x p_ctr \| `esmm_on_taobao.config` \| ctr \(clk\) {AUC} ± "
        rf"0\.0000<br>ctcvr \(buy\) {AUC} ± 0\.0000<br>pCVR on clicked rows \(buy\) {AUC}",
        rf"\| esmm \| 1 \| ctr {AUC}, ctcvr {AUC}, pCVR on clicked rows {AUC} \| {NUM} \| 2 \|",
    ],
    "zoo": [
        r"\| model class \| config \| what \| test AUC \(mean ± std\) \| clk - MLP ",
        rf"\| RankModel \| `mlp_on_taobao.config` \| .* \| clk \(clk\) {AUC} ± 0\.0000 \| "
        r"\(reference\) \|",
        rf"\| MultiTaskModel \| `shared_bottom_on_taobao.config` \| .* \| ctr \(clk\) {AUC} ± "
        rf"0\.0000<br>cvr \(buy\) {AUC} ± 0\.0000 \| [+-]{AUC} \| \(reference\) \| {NUM} / {NUM}",
        r"Validated, not trained \(--smoke\): MultiTower .*PLE \(`ple_on_taobao.config`\)\.",
        rf"\| shared_bottom \| 1 \| ctr {AUC}, cvr {AUC} \| 2 \|",
    ],
    "keras_reference": [
        r"\| model \| runner \| test AUC \(mean ± std\) \| oracle AUC \| train examples/s ",
        rf"\| mlp \| keras \| clk {AUC} ± 0\.0000 \| clk {AUC} \| {NUM} ± 0 \| 1\.00 \(reference\)",
        rf"\| mlp \| easyblocks \| clk {AUC} ± 0\.0000 \| clk {AUC} \| {NUM} ± 0 \| \*\*{NUM}\*\*",
        rf"- mlp: examples/s easyblocks / keras {NUM} \(",
        rf"\| mlp \| easyblocks \| 1 \| clk {AUC} \| {NUM} \| 2 \|",
    ],
    "multitask": [
        r"\| data \| model \| test AUC per tower \| fraction p\(buy\) > p\(clk\) \| train ",
        rf"\| taobao \| AITM \(seed 004, with calibration\) \| ctr {AUC} ± 0\.0000; cvr {AUC} "
        rf"± 0\.0000 \| {NUM} ± 0\.0000 \| {NUM} \|",
    ],
    "multidomain": [
        r"## Shipped Taobao-like data \(domain: pid, tower clk, one epoch\)",
        rf"\| MLP \(baseline\) \(`mlp_on_taobao`\) \| {AUC} ± 0\.0000 \|",
        rf"\| STAR \(`star_on_taobao`\) \| {AUC} ± 0\.0000 \|",
        r"\| N = M \| variant \| fwd\+bwd ms / step \| time vs naive ",
        rf"\| 8 \| naive \(W_i generated\) \| {NUM} \[",
        rf"\| 8 \| APG K=2, P=4 \| {NUM} \[{NUM}-{NUM}\] \| [+-]{NUM}% \|",
    ],
    "distributed_tables": [
        r"\| rows x dim \| table \+ 2 Adam slots \| one process: peak RSS \| one process: ms/step",
        rf"\| 1e\+03 x 4 \| {NUM} MB \| {NUM} MB \| {NUM} \| {NUM} MB \| {NUM} MB \| {NUM} MB "
        rf"\(\d+ shards\) \| {NUM} \|",
    ],
    "table_updates": [
        r"\| rows per table \| Keras Adam \(dense\) ms/step \| row-wise lazy Adam ms/step ",
        rf"\| 100 \| {NUM} \| {NUM} \| {NUM}x \|",
    ],
    "easyrec_compat": [
        r"## Field states",
        r"\*\*1 of 3 validate unchanged\.\*\*",
        r"Validate unchanged: `examples/configs/deepfm_smoke.config`\.",
        r"\| 1 \| .*label_dim.* \| deepfm_label_dim_smoke.config \|",
        r"\| 1 \| .* \| unparsable_smoke.config \|",
    ],
    "samples": [
        r"\| sample \| test AUC \(mean ± std\) \| examples/s \| x MLP \| steady examples/s ",
        rf"\| `mlp_on_taobao` \| clk {AUC} ± 0\.0000 \| {NUM} \| 1\.00 \| {NUM} \| 1\.00 \| "
        rf"{NUM} \| 2 \|",
        rf"\| `aitm_on_taobao` \| ctr {AUC} ± 0\.0000<br>cvr {AUC} ± 0\.0000 \| {NUM} \| {NUM} ",
        rf"\| `star_on_taobao` \| clk {AUC} ± 0\.0000 \| {NUM} \| {NUM} ",
        rf"\| star_on_taobao \| 1 \| clk {AUC} \| {NUM} \| {NUM} \| {NUM} \| {NUM} \| {NUM} \|",
    ],
    "quality": [
        r"## Targets \(issue 10\), with the defaults",
        rf"\| mlp \| .*{AUC}",
        rf"\| star \| .*{AUC}",
        rf"\| keras_mlp \| .*{AUC}",
        r"MLP sample.*hand-written Keras MLP",
    ],
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmarks_smoke")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "common.py"), "--smoke_all",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "status.json", encoding="utf-8") as f:
        return out, json.load(f)


def test_the_smoke_set_is_complete():
    """The scripts --smoke_all runs are these tests' (and exist); scripts added later test
    their --smoke in their own test files, or join SMOKE_SCRIPTS to share its process."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import common
    finally:
        sys.path.pop(0)
    scripts = {f[:-3] for f in os.listdir(os.path.join(ROOT, "benchmarks")) if f.endswith(".py")}
    assert set(common.SMOKE_SCRIPTS) <= scripts
    assert sorted(EXPECTED) == sorted(common.SMOKE_SCRIPTS)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_smoke(smoke, script):
    out, status = smoke
    result = status[script]
    assert result["rc"] == 0, f"{script} --smoke failed:\n{result['output_tail']}"
    assert result["help_ok"], f"{script} --help printed no usage"
    with open(out / f"{script}.md", encoding="utf-8") as f:
        report = f.read()
    missing = [p for p in EXPECTED[script] if not re.search(p, report)]
    assert not missing, f"{script}: the report lacks {missing}:\n{report[:4000]}"
    assert not re.search(r"\bnan\b", report), report[:4000]
