"""Issue 11, item 13: every error a user causes is one line with file:line (no Keras banner,
colours or warnings); --debug keeps the full chained traceback."""

import gzip

import pytest
from conftest import tiny_config
from reliability_helpers import cli, make_run

RAISES = """
import keras
from easyblocks import register_block


@register_block
class Raises(keras.layers.Layer):
    def call(self, x, training=None):
        if training:  # only in the traced training step
            raise ValueError("boom: this block cannot train")
        return x
"""


def _one_line(r, start: str) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(start), r.stderr
    assert "\x1b[" not in r.stderr and "Warning" not in r.stderr
    return lines[0]


@pytest.mark.slow
def test_error_inside_a_block_during_training_is_one_line_with_its_config_line(tmp_path):
    plugin = tmp_path / "raises.py"
    plugin.write_text(RAISES)
    run = make_run(tmp_path, num_steps=3, model='''backbone {
      blocks { name: "mlp" inputs { feature_group_name: "all" }
               keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } }
      blocks { name: "odd" inputs { block_name: "mlp" } keras_layer { class_name: "Raises" } }
      concat_blocks: "odd"
    }''')
    r = cli("train", "--config", run["config"], "--plugin", str(plugin))
    assert r.returncode == 2
    line = _one_line(r, f"easyblocks: error: {run['config']}:")
    assert "block 'odd' (Raises): ValueError: boom: this block cannot train" in line
    r = cli("train", "--config", run["config"], "--plugin", str(plugin), "--debug")
    assert r.returncode != 0
    assert "ValueError: boom" in r.stderr and "Traceback" in r.stderr
    assert "The above exception was the direct cause of the following exception" in r.stderr


def test_list_output_in_concat_blocks_suggests_output_blocks(tmp_path):
    config = tmp_path / "mmoe.config"
    config.write_text(tiny_config('''backbone {
      blocks { name: "mmoe" inputs { feature_group_name: "all" }
               keras_layer { class_name: "MMoE" mmoe { num_task: 2 num_expert: 2
                             expert_mlp { hidden_units: [4] } } } }
      concat_blocks: "mmoe"
    }'''))
    r = cli("validate", "--config", str(config))
    assert r.returncode == 2
    line = _one_line(r, f"easyblocks: error: {config}:")
    assert ": block 'mmoe': backbone concat_blocks: block 'mmoe' " in line
    assert "outputs a list of 2 tensors, which cannot be concatenated; name it in " \
           "output_blocks instead" in line


def test_config_and_plugin_faults_are_one_line_errors(tmp_path):
    packed = tmp_path / "c.config"
    packed.write_bytes(gzip.compress(b"model_dir: 'x'\n"))
    r = cli("validate", "--config", str(packed))
    assert r.returncode == 2
    _one_line(r, f"easyblocks: error: {packed}: a gzip file, not a text config")
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(0)\n")
    r = cli("blocks", "--plugin", str(exits))
    assert r.returncode == 2
    _one_line(r, f"easyblocks: error: plugin '{exits}' called sys.exit(0) while being imported")
