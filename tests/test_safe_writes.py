"""Issue 11, items 1, 2 and 9: export, predict and eval_results.json never destroy what they
did not write, and never leave half-written files."""

import csv
import json
import logging
import os

import pytest
from reliability_helpers import checkpoint_files, cli, make_run, rows, write_rows

from easyblocks import api
from easyblocks.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    run = make_run(tmp, num_steps=10, save_every=5)
    api.train(run["config"])
    return run


# ---- item 1: export -----------------------------------------------------------------------

def test_export_into_the_model_dir_is_refused_and_keeps_the_checkpoints(trained):
    before = checkpoint_files(trained["model_dir"])
    with pytest.raises(ConfigError, match="is the model_dir"):
        api.export(trained["config"], export_dir=trained["model_dir"])
    with pytest.raises(ConfigError, match="holds the model_dir"):
        api.export(trained["config"], export_dir=os.path.dirname(trained["model_dir"]))
    assert checkpoint_files(trained["model_dir"]) == before


def test_export_into_a_folder_with_a_users_file_keeps_the_file(trained, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"not empty \(notes.txt\) and is not an "
                                              "easyblocks export"):
            api.export(trained["config"], export_dir=str(folder), overwrite=overwrite)
    assert os.listdir(folder) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "my notes"


def test_export_dir_of_the_config_pointing_at_the_data_folder_is_refused(trained, tmp_path):
    data_dir = os.path.dirname(trained["data"])
    text = open(trained["config"]).read() + f'export_config {{ export_dir: "{data_dir}" }}\n'
    config = tmp_path / "export_to_data.config"
    config.write_text(text)
    before = sorted(os.listdir(data_dir))
    data = open(trained["data"]).read()
    r = cli("export", "--config", str(config), "--overwrite")
    assert r.returncode == 2, r.stderr
    assert "the folder of the input data" in r.stderr or "holds the model_dir" in r.stderr
    assert sorted(os.listdir(data_dir)) == before
    assert open(trained["data"]).read() == data


def test_export_twice_needs_overwrite_and_replaces_only_an_export(trained, tmp_path):
    target = str(tmp_path / "export")
    api.export(trained["config"], export_dir=target)
    marker = json.load(open(os.path.join(target, "easyblocks_export.json")))
    assert marker["written_by"] == "easyblocks export" and marker["step"] == 10
    assert marker["outputs"] == ["probs_clk", "logits_clk"]
    with pytest.raises(ConfigError, match="already holds an easyblocks export; pass --overwrite"):
        api.export(trained["config"], export_dir=target)
    first = os.stat(os.path.join(target, "saved_model.pb")).st_mtime_ns
    api.export(trained["config"], export_dir=target, overwrite=True)
    assert os.stat(os.path.join(target, "saved_model.pb")).st_mtime_ns != first
    # nothing left beside it: no temporary or old folders
    assert sorted(os.listdir(tmp_path)) == ["export"]
    # an export someone added a file to is no longer recognisably ours: never replaced
    (tmp_path / "export" / "README").write_text("added by a user")
    with pytest.raises(ConfigError, match="is not an easyblocks export"):
        api.export(trained["config"], export_dir=target, overwrite=True)
    assert (tmp_path / "export" / "README").exists()


# ---- item 2: predict ----------------------------------------------------------------------

def test_predict_output_equal_to_input_is_refused_and_the_input_is_intact(trained, tmp_path):
    data = write_rows(tmp_path / "score.csv", rows(20, seed=3))
    before = open(data, "rb").read()
    with pytest.raises(ConfigError, match="is the input file"):
        api.predict(trained["config"], data, data)
    link = tmp_path / "link.csv"
    os.link(data, link)  # the same file under another name
    with pytest.raises(ConfigError, match="is the input file"):
        api.predict(trained["config"], data, str(link))
    r = cli("predict", "--config", trained["config"], "--input", data, "--output",
            os.path.join(tmp_path, ".", "score.csv"))
    assert r.returncode == 2 and "is the input file" in r.stderr, r.stderr
    assert open(data, "rb").read() == before


def test_a_failed_predict_leaves_the_previous_output_intact(trained, tmp_path):
    out = tmp_path / "scores.csv"
    out.write_text("previous,output\n1,2\n")
    lines = rows(5000, seed=4)
    lines[4500] = lines[4500].rsplit(",", 1)[0]  # a short row past the first batch of 4096
    data = write_rows(tmp_path / "rows.csv", lines)
    with pytest.raises(DataError, match=r"rows.csv:4501: expected 5 columns"):
        api.predict(trained["config"], data, str(out))
    assert out.read_text() == "previous,output\n1,2\n"
    assert sorted(os.listdir(tmp_path)) == ["rows.csv", "scores.csv"]  # no temporary left
    # a good file replaces it whole
    good = write_rows(tmp_path / "good.csv", rows(30, seed=5))
    assert api.predict(trained["config"], good, str(out)) == 30
    scored = list(csv.reader(open(out)))
    assert scored[0] == ["probs_clk"] and len(scored) == 31


# ---- item 9: eval_results.json ------------------------------------------------------------

def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_all_zero_eval_labels_give_null_auc_with_a_reason(trained, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="easyblocks")
    zeros = write_rows(tmp_path / "zeros.csv", rows(12, seed=6, label=0))
    results = api.evaluate(trained["config"], overrides=[f'eval_input_path: "{zeros}"'])
    overall = results["towers"]["clk"]["overall"]
    assert overall["count"] == 12 and overall["auc"] != overall["auc"]  # NaN in Python
    assert overall["undefined"] == {
        "auc": "only one class in the labels (all 0): AUC needs both"}
    saved = _strict(open(os.path.join(trained["model_dir"], "eval_results.json")).read())
    assert saved["towers"]["clk"]["overall"]["auc"] is None
    assert saved["towers"]["clk"]["overall"]["undefined"]["auc"].startswith("only one class")
    assert saved["towers"]["clk"]["overall"]["logloss"] > 0
    assert "auc n/a (only one class in the labels (all 0)" in caplog.text


def test_atomic_file_replaces_whole_or_keeps_the_earlier_file(tmp_path):
    from easyblocks.files import atomic_file

    target = tmp_path / "out.csv"
    target.write_text("earlier\n")
    other = tmp_path / "out.csv.tmp-1"  # a user's file with a temp-looking name
    other.write_text("mine\n")
    with pytest.raises(RuntimeError):
        with atomic_file(str(target)) as f:
            f.write("half")
            raise RuntimeError("fails mid-write")
    assert target.read_text() == "earlier\n"
    assert sorted(os.listdir(tmp_path)) == ["out.csv", "out.csv.tmp-1"]  # its temp file gone
    with atomic_file(str(target)) as f:
        f.write("new\n")
    assert target.read_text() == "new\n" and other.read_text() == "mine\n"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask
