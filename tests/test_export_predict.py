"""Export -> reload in a fresh process -> the same predictions; batch predict; validate; graph."""

import csv
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, SAMPLES

from easyblocks import api
from easyblocks.data.csv_input import CSVInput
from easyblocks.models.state import ModelState

pytestmark = pytest.mark.slow
TEST_CSV = os.path.join(SAMPLES, "data", "taobao_test.csv")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(autouse=True)
def run_from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "easyblocks.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, env=ENV, timeout=600)


def in_process_probs(config, model_dir, rows):
    state = ModelState(api.resolve(config), model_dir=model_dir)
    state.restore(required=True)
    columns = CSVInput(state.spec.data, state.preprocessor, []).parse(tf.constant(rows))
    out = state.model(state.preprocessor(columns), training=False)
    return {k: v.numpy() for k, v in out.items() if k.startswith("probs_")}


RELOAD = textwrap.dedent("""
    import csv, sys, numpy as np, tensorflow as tf
    export_dir, rows_file, out_file = sys.argv[1:4]
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    names = "{names}".split(",")
    rows = list(csv.reader(open(rows_file)))
    inputs = {{}}
    for k, spec in specs.items():
        values = [r[names.index(k)] for r in rows]
        inputs[k] = tf.constant(values if spec.dtype == tf.string
                                else np.array(values).astype(spec.dtype.as_numpy_dtype))
    out = serve(**inputs)
    np.savez(out_file, **{{k: v.numpy() for k, v in out.items()}})
""")


@pytest.mark.parametrize("name", ["mlp_on_taobao", "apg_on_taobao"])
def test_export_reload_in_new_process_matches(tmp_path, name):
    config = os.path.join(SAMPLES, "configs", f"{name}.config")
    model_dir = str(tmp_path / "m")
    api.train(config, model_dir=model_dir, num_steps=15)
    rows = open(TEST_CSV).read().splitlines()[:200]
    expected = in_process_probs(config, model_dir, rows)
    r = cli("export", "--config", config, "--model_dir", model_dir, "--export_dir",
            str(tmp_path / "export"))
    assert r.returncode == 0, r.stderr
    if name == "apg_on_taobao":
        assert "merged 1 over-parameterised block(s) for serving" in r.stdout
    rows_file = tmp_path / "rows.csv"
    rows_file.write_text("\n".join(rows) + "\n")
    trainer_names = api.resolve(config).data.field_names
    script = tmp_path / "reload.py"
    script.write_text(RELOAD.format(names=",".join(trainer_names)))
    subprocess.run([sys.executable, str(script), str(tmp_path / "export"), str(rows_file),
                    str(tmp_path / "out.npz")], check=True, env=ENV, cwd=str(tmp_path))
    got = np.load(tmp_path / "out.npz")
    assert set(got.files) == {"probs_clk", "logits_clk"}
    np.testing.assert_allclose(got["probs_clk"], expected["probs_clk"], atol=1e-5)


def test_predict_keeps_order_and_columns(tmp_path):
    config = os.path.join(SAMPLES, "configs", "shared_bottom_on_taobao.config")
    model_dir = str(tmp_path / "m")
    api.train(config, model_dir=model_dir, num_steps=10)
    lines = open(TEST_CSV).read().splitlines()[:5000]
    # scoring input without the label columns (clk, buy are the first two)
    unlabeled = tmp_path / "rows.csv"
    unlabeled.write_text("\n".join(line.split(",", 2)[2] for line in lines) + "\n")
    out = tmp_path / "scores.csv"
    r = cli("predict", "--config", config, "--model_dir", model_dir, "--input", str(unlabeled),
            "--output", str(out), "--keep", "user_id,adgroup_id")
    assert r.returncode == 0, r.stderr
    scored = list(csv.reader(open(out)))
    assert scored[0] == ["user_id", "adgroup_id", "probs_ctr", "probs_cvr"]
    assert len(scored) == 1 + len(lines)
    for line, row in zip(lines, scored[1:]):
        fields = line.split(",")
        assert row[:2] == [fields[8], fields[3]]  # user_id, adgroup_id in input order
    expected = in_process_probs(config, model_dir, lines[:50])
    np.testing.assert_allclose([float(r[2]) for r in scored[1:51]], expected["probs_ctr"],
                               rtol=1e-5, atol=1e-6)


def test_validate_good_and_broken_configs(tmp_path):
    good = os.path.join(SAMPLES, "configs", "aitm_on_taobao.config")
    r = cli("validate", "--config", good)
    assert r.returncode == 0, r.stderr
    assert re.search(r"cvr_aitm\s+AITMTower\s+cvr_tower, ctr_tower\s+\(batch, 128\)", r.stdout)
    assert "relation towers: ctr" in r.stdout and r.stdout.strip().endswith("OK")
    text = open(good).read()
    broken = {
        "cycle": (text.replace('block_name: "share_bottom"\n      }\n      keras_layer {\n'
                               "        class_name: 'MLP'\n        mlp {\n"
                               "          hidden_units: 128",
                               'block_name: "cvr_aitm"\n      }\n      keras_layer {\n'
                               "        class_name: 'MLP'\n        mlp {\n"
                               "          hidden_units: 128", 1),
                  r"has a cycle: .*cvr_aitm"),
        "unknown block": (text.replace('block_name: "ctr_tower"', 'block_name: "ctr_towr"'),
                          r"block 'cvr_aitm' takes input 'ctr_towr', which is not a block "
                          r"\(did you mean: ctr_tower"),
        "bad class": (text.replace('class_name: "AITMTower"', 'class_name: "AITM"'),
                      r"unknown class_name 'AITM'"),
        "bad param": (text.replace("transfer_mlp {", "transfer_mlpp {"),
                      r"has no field named \"transfer_mlpp\""),
    }
    for name, (bad_text, message) in broken.items():
        path = tmp_path / f"{name.replace(' ', '_')}.config"
        path.write_text(bad_text)
        r = cli("validate", "--config", str(path))
        assert r.returncode == 2, name
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and re.search(message, lines[0]), (name, r.stderr)


def test_graph_of_the_seed_aitm_config(tmp_path):
    config = os.path.join(SAMPLES, "configs", "aitm_on_taobao.config")
    out = tmp_path / "m.dot"
    assert cli("graph", "--config", config, "--output", str(out)).returncode == 0
    dot = out.read_text()
    nodes = set(re.findall(r'^\s*"([^"]+)" \[label=', dot, re.M))
    edges = set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, re.M))
    assert nodes == {"group:all", "block:share_bottom", "block:ctr_tower", "block:cvr_tower",
                     "block:cvr_aitm", "tower:ctr", "tower:cvr"}
    assert edges == {
        ("group:all", "block:share_bottom"), ("block:share_bottom", "block:ctr_tower"),
        ("block:share_bottom", "block:cvr_tower"), ("block:cvr_tower", "block:cvr_aitm"),
        ("block:ctr_tower", "block:cvr_aitm"), ("block:ctr_tower", "tower:ctr"),
        ("block:cvr_aitm", "tower:cvr"), ("tower:ctr", "tower:cvr")}
    assert "AITMTower" in dot and "ORDER_CALIBRATE_LOSS x0.6" in dot
    mmd = tmp_path / "m.mmd"
    assert cli("graph", "--config", config, "--output", str(mmd)).returncode == 0
    text = mmd.read_text()
    assert text.startswith("flowchart BT") and text.count("-->") + text.count("-.->") == 8


def test_two_tower_export_user_and_item_towers_separately(tmp_path):
    """DSSM: each tower exported alone takes only its own columns; the cosine of the two
    exported vectors / temperature reproduces the full model's logit."""
    config = os.path.join(SAMPLES, "configs", "dssm_on_taobao.config")
    model_dir = str(tmp_path / "m")
    api.train(config, model_dir=model_dir, num_steps=10)
    for block in ("user_tower", "item_tower"):
        r = cli("export", "--config", config, "--model_dir", model_dir, "--block", block,
                "--export_dir", str(tmp_path / block))
        assert r.returncode == 0, r.stderr
    user = tf.saved_model.load(str(tmp_path / "user_tower")).signatures["serving_default"]
    item = tf.saved_model.load(str(tmp_path / "item_tower")).signatures["serving_default"]
    user_cols = set(user.structured_input_signature[1])
    item_cols = set(item.structured_input_signature[1])
    assert "user_id" in user_cols and "adgroup_id" not in user_cols
    assert "adgroup_id" in item_cols and "user_id" not in item_cols
    rows = open(TEST_CSV).read().splitlines()[:64]
    state = ModelState(api.resolve(config), model_dir=model_dir)
    state.restore(required=True)
    columns = CSVInput(state.spec.data, state.preprocessor, []).parse(tf.constant(rows))
    logits = state.model(state.preprocessor(columns), training=False)["logits_clk"].numpy()
    u = user(**{k: columns[k] for k in user_cols})["user_tower"].numpy()
    v = item(**{k: columns[k] for k in item_cols})["item_tower"].numpy()
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    np.testing.assert_allclose(cos / 0.1, logits, rtol=1e-4, atol=1e-4)
