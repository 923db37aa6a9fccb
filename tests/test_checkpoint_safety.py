"""Issue 11, items 3, 4, 6 and 10: checkpoints keyed by config names and matched in full, a
garbage state file or a corrupt checkpoint never restarts training at step 0 over existing
checkpoints, a non-finite loss stops training before anything is saved, one training per
model_dir."""

import dataclasses
import logging
import math
import os
import re
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from reliability_helpers import ENV, checkpoint_files, make_run

from easyblocks import api
from easyblocks.errors import ConfigError, DataError
from easyblocks.models.state import ModelState
from easyblocks.train.guards import LOCK_FILE, TrainingStopped, model_dir_lock
from easyblocks.train.loop import Trainer


@pytest.fixture
def trained(tmp_path):
    run = make_run(tmp_path, num_steps=10, save_every=5, keep=2)
    api.train(run["config"])
    return run


def _variant(run, tmp_path, old: str, new: str, name: str) -> str:
    text = open(run["config"]).read()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return str(path)


# ---- item 3: state file and corrupt checkpoints -------------------------------------------

def test_garbage_state_file_keeps_every_checkpoint_and_resumes(trained, caplog):
    caplog.set_level(logging.INFO, logger="easyblocks")
    model_dir = trained["model_dir"]
    before = checkpoint_files(model_dir)
    assert {"ckpt-5.index", "ckpt-10.index"} <= set(before)
    with open(os.path.join(model_dir, "checkpoint"), "w") as f:
        f.write("this is not { a checkpoint state\x00\n")
    results = api.train(trained["config"], num_steps=12)
    assert results["step"] == 12
    assert f"resumed from {model_dir}/ckpt-10 at step 10" in caplog.text
    assert "the checkpoint state file is unreadable" in caplog.text
    after = checkpoint_files(model_dir)
    assert {k: v for k, v in after.items() if k in before} == before  # none rewritten
    assert "ckpt-12.index" in after
    kept = [f for f in os.listdir(model_dir) if f.startswith("checkpoint.unreadable-")]
    assert len(kept) == 1


def test_corrupt_latest_checkpoint_falls_back_to_the_newest_readable(trained, caplog):
    caplog.set_level(logging.INFO, logger="easyblocks")
    model_dir = trained["model_dir"]
    data = os.path.join(model_dir, "ckpt-10.data-00000-of-00001")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    state = ModelState(api.resolve(trained["config"]))
    assert state.restore() == os.path.join(model_dir, "ckpt-5")
    assert int(state.step.numpy()) == 5
    assert "cannot read checkpoint" in caplog.text and "ckpt-10" in caplog.text
    # and when none is readable: an error, never a silent start from step 0
    data5 = os.path.join(model_dir, "ckpt-5.data-00000-of-00001")
    with open(data5, "r+b") as f:
        f.truncate(8)
    before = checkpoint_files(model_dir)
    with pytest.raises(DataError, match="none of its checkpoints can be read"):
        api.train(trained["config"], num_steps=20)
    assert checkpoint_files(model_dir) == before


# ---- item 4: non-finite loss --------------------------------------------------------------

def test_nan_learning_rate_stops_before_saving_and_keeps_the_good_checkpoints(trained):
    """A NaN learning rate is refused when the config resolves (test_static_checks); a spec
    built in Python can still carry one: the guard stops the run at the first non-finite
    loss, before any checkpoint (rotation keeps 2) replaces the good ones."""
    model_dir = trained["model_dir"]
    before = checkpoint_files(model_dir)
    state_file = open(os.path.join(model_dir, "checkpoint")).read()
    spec = api.resolve(trained["config"], num_steps=30)
    nan_lr = dataclasses.replace(spec.train.optimizer.learning_rate, learning_rate=math.nan)
    spec.train.optimizer = dataclasses.replace(spec.train.optimizer, learning_rate=nan_lr)
    with pytest.raises(TrainingStopped, match=r"a non-finite loss at step 12 "
                                              r"\(loss/clk/classification nan.*last good "
                                              rf"checkpoint is {model_dir}/ckpt-10"):
        Trainer(spec).train()
    assert checkpoint_files(model_dir) == before
    assert open(os.path.join(model_dir, "checkpoint")).read() == state_file
    state = ModelState(api.resolve(trained["config"]))
    state.restore()
    assert int(state.step.numpy()) == 10
    assert all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in state.model.variables
               if "float" in v.dtype)


# ---- item 6: checkpoints keyed by names ---------------------------------------------------

def test_two_builds_of_one_config_have_the_same_keys(trained):
    spec = api.resolve(trained["config"])
    first, second = ModelState(spec), ModelState(spec)
    keys = [k for k, _ in first.keyed_variables]
    assert keys == [k for k, _ in second.keyed_variables]
    assert "backbone/dag/mlp/dropout#1/seed_generator/state" in keys
    assert "features/embedding_user" in keys and "tower_clk/logits/kernel" in keys
    # Keras' own paths differ between the two builds (its per-process numbering)
    assert [v.path for v in first.model.variables] != [v.path for v in second.model.variables]


def test_feature_swap_between_same_shaped_tables_is_refused_on_resume(trained, tmp_path):
    swapped = _variant(trained, tmp_path,
                       'features { input_names: "user" feature_type: IdFeature',
                       'features { input_names: "buy" feature_name: "cate" feature_type: '
                       'IdFeature', "swap.config")
    text = open(swapped).read().replace('feature_names: ["user", "tags", "price"]',
                                        'feature_names: ["cate", "tags", "price"]')
    open(swapped, "w").write(text.replace('feature_names: "user"', 'feature_names: "cate"'))
    message = (r"does not fit this config: variable 'features/embedding_cate' \(100x4\) of "
               r"this config is not in the checkpoint \(the checkpoint has "
               r"'features/embedding_user' instead\)")
    with pytest.raises(ConfigError, match=message):
        api.train(swapped, num_steps=15)
    with pytest.raises(ConfigError, match=message):
        api.evaluate(swapped)
    # the same feature name on another column: the layout names it
    column = _variant(trained, tmp_path, 'features { input_names: "user" feature_type: '
                      'IdFeature', 'features { input_names: "buy" feature_name: "user" '
                      'feature_type: IdFeature', "column.config")
    with pytest.raises(ConfigError, match=r"feature 'user': its column differs \('user' in "
                                          r"the checkpoint, 'buy' in this config\)"):
        api.train(column, num_steps=15)
    assert "ckpt-15.index" not in os.listdir(trained["model_dir"])


def test_reordered_group_renamed_block_and_added_block_are_refused(trained, tmp_path):
    reordered = _variant(trained, tmp_path, 'feature_names: ["user", "tags", "price"]',
                         'feature_names: ["tags", "user", "price"]', "reorder.config")
    with pytest.raises(ConfigError, match=r"feature group 'all' is \[tags, user, price\] in "
                                          r"this config, \[user, tags, price\] in the checkpoint"):
        api.train(reordered, num_steps=15)
    renamed = _variant(trained, tmp_path, 'name: "mlp"', 'name: "deep"', "rename.config")
    text = open(renamed).read()
    open(renamed, "w").write(text.replace('concat_blocks: "mlp"', 'concat_blocks: "deep"'))
    with pytest.raises(ConfigError, match=r"variable 'backbone/dag/deep/dense#0/kernel' \(9x8\) "
                                          "of this config is not in the checkpoint"):
        api.train(renamed, num_steps=15)
    added = _variant(trained, tmp_path, 'concat_blocks: "mlp"',
                     'blocks { name: "side" inputs { feature_group_name: "user" } keras_layer { '
                     'class_name: "Dense" st_params { fields { key: "units" value { '
                     'number_value: 2 } } } } }\n  concat_blocks: ["mlp", "side"]', "add.config")
    with pytest.raises(ConfigError, match=r"checkpoint .*ckpt-10 does not fit this config: "
                                          r"variable 'backbone/dag/side/kernel' \(4x2\)"):
        api.train(added, num_steps=15)


# ---- item 10: one training per model_dir --------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from easyblocks.train.guards import model_dir_lock
    with model_dir_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_second_training_into_a_model_dir_is_refused_naming_the_holder(tmp_path):
    run = make_run(tmp_path, num_steps=4)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, run["model_dir"]], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"model_dir {run['model_dir']} is in use by "
                                              rf"another training \(pid {holder.pid} on "):
            api.train(run["config"])
    finally:
        holder.kill()
        holder.wait()
    assert not [f for f in os.listdir(run["model_dir"]) if f.startswith("ckpt-")]
    # the holder died without releasing: its lock is stale, and taken over
    assert open(os.path.join(run["model_dir"], LOCK_FILE)).read().startswith(
        f"pid {holder.pid} ")
    assert api.train(run["config"])["step"] == 4


def test_lock_in_one_process_and_a_read_only_model_dir(tmp_path):
    with model_dir_lock(str(tmp_path / "m")):
        with pytest.raises(ConfigError, match=rf"in use by another training \(pid {os.getpid()}"):
            with model_dir_lock(str(tmp_path / "m")):
                pass
    with model_dir_lock(str(tmp_path / "m")):  # released: taken again
        pass
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = make_run(tmp_path, num_steps=2)
    with pytest.raises(ConfigError, match=r"model_dir .*file/m is not writable"):
        api.train(run["config"], model_dir=str(blocker / "m"))


def test_unchanged_config_still_resumes_with_its_optimizer_state(trained):
    model_dir = trained["model_dir"]
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "ckpt-10"))
    names = reader.get_variable_to_shape_map()
    assert "model/by_name/features.Sembedding_user/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert "table_optimizer/slots_by_table/features.Sembedding_user/0/.ATTRIBUTES/" \
           "VARIABLE_VALUE" in names
    assert not any("learning_rate" in n for n in names)  # the config's rate applies on resume
    results = api.train(trained["config"], num_steps=12)
    assert results["step"] == 12



@pytest.mark.parametrize("name", ["din_on_taobao", "star_on_taobao", "apg_on_taobao",
                                  "wide_and_deep_on_taobao", "mmoe_on_taobao"])
def test_every_variable_of_the_samples_has_a_unique_stable_name(name, monkeypatch):
    from conftest import ROOT, SAMPLES

    monkeypatch.chdir(ROOT)
    spec = api.resolve(os.path.join(SAMPLES, "configs", f"{name}.config"))
    state = ModelState(spec, model_dir="unused")
    keys = [k for k, _ in state.keyed_variables]
    assert len(keys) == len(set(keys)) == len(state.model.variables)
    assert not [k for k in keys if k.startswith("untracked")]
    auto = re.compile(r"^(seed_generator|dense|dropout|batch_normalization)_\d+$")
    assert not [k for k in keys if any(auto.match(part) for part in k.split("/"))]


def test_a_second_unreadable_state_file_is_kept_beside_the_first(tmp_path):
    from easyblocks.models.checkpoints import repair_state

    for n in (5, 10):  # checkpoint files on disk (their contents are not read here)
        for suffix in (".index", ".data-00000-of-00001"):
            (tmp_path / f"ckpt-{n}{suffix}").write_bytes(b"x")
    for garbage in ("first \x00", "second \x00"):  # twice within the same second
        (tmp_path / "checkpoint").write_text(garbage)
        repair_state(str(tmp_path))
    kept = sorted(f for f in os.listdir(tmp_path) if f.startswith("checkpoint.unreadable-"))
    assert len(kept) == 2
    assert sorted((tmp_path / k).read_text() for k in kept) == ["first \x00", "second \x00"]
    assert 'model_checkpoint_path: "ckpt-10"' in (tmp_path / "checkpoint").read_text()
