"""train_config.jit_compile: the train step compiled with XLA trains as without it; a block
that cannot compile is refused with one line naming it."""

import os

import pytest
from conftest import SAMPLES

from easyblocks import api
from easyblocks.errors import ConfigError
from easyblocks.train import xla

MLP_CONFIG = os.path.join(SAMPLES, "configs", "mlp_on_taobao.config")
JIT = ["train_config { jit_compile: true }"]


def _config(tmp_path, multi_value: bool) -> str:
    """The MLP sample on its first 2,000 training rows, batches of 256; without the two
    multi-value (TagFeature) features unless multi_value."""
    rows = open(os.path.join(SAMPLES, "data", "taobao_train.csv")).read().splitlines()[:2000]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    text = open(MLP_CONFIG).read()
    text = text.replace('"samples/data/taobao_train.csv"', f'"{tmp_path / "train.csv"}"')
    text = text.replace('"samples/data/taobao_test.csv"', f'"{tmp_path / "train.csv"}"')
    text = text.replace("batch_size: 1024", "batch_size: 256")
    if not multi_value:
        text = text.replace('    feature_names: "tag_category_list"\n', "")
        text = text.replace('    feature_names: "tag_brand_list"\n', "")
    path = tmp_path / "mlp.config"
    path.write_text(text)
    return str(path)


def test_jit_compile_trains_the_mlp_as_without_it(tmp_path):
    config = _config(tmp_path, multi_value=False)
    plain = api.train(config, model_dir=str(tmp_path / "plain"), num_steps=6)
    compiled = api.train(config, model_dir=str(tmp_path / "xla"), num_steps=6, overrides=JIT)
    assert compiled["step"] == plain["step"] == 6
    a, b = plain["towers"]["clk"]["overall"], compiled["towers"]["clk"]["overall"]
    # same initial weights and batches; XLA fuses float32 math differently (~1e-6 per step)
    assert b["logloss"] == pytest.approx(a["logloss"], abs=1e-4)
    assert b["auc"] == pytest.approx(a["auc"], abs=2e-3)
    assert a["logloss"] != pytest.approx(0.6931, abs=1e-3)  # it trained: not the initial loss


def test_a_block_that_cannot_compile_is_refused_with_one_line(tmp_path):
    config = _config(tmp_path, multi_value=True)
    with pytest.raises(ConfigError) as e:
        api.train(config, model_dir=str(tmp_path / "xla"), num_steps=2, overrides=JIT)
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith("train_config.jit_compile: block 'features'")
    assert "op Range" in line and "easyblocks/features/embedding.py" in line
    assert line.endswith("set jit_compile: false")
    assert not (tmp_path / "xla" / "ckpt-1.index").exists()  # refused before any update


def test_refusal_names_a_backbone_block_from_the_xla_error():
    error = ValueError(
        "Input 0 to node `model_1/backbone_1/dag/seq_1/Unique` with op Unique must be a "
        "compile-time constant.\n\nStack trace for op definition:\n"
        'File "work/wt/x/easyblocks/blocks/sequence.py", line 12, in call\n'
        "\ttf2xla conversion failed [Op:__inference_train_step_1]")
    assert xla.is_xla_error(error)
    assert str(xla.refusal(error)) == (
        "train_config.jit_compile: backbone block 'seq' cannot be compiled with XLA (op Unique, "
        "made at easyblocks/blocks/sequence.py:12 (call)): must be a compile-time constant.; "
        "set jit_compile: false")
