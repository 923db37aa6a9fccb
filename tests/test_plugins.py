"""Plugins: blocks registered outside easyblocks, loaded by the config's `plugins`, by
`--plugin`, or by an installed distribution's `easyblocks.blocks` entry point."""

from __future__ import annotations

import importlib
import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, SAMPLES, tiny_config

from easyblocks import api, cli
from easyblocks.blocks import plugins, registry
from easyblocks.errors import ConfigError

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
SAMPLE_PLUGIN = os.path.join(SAMPLES, "plugins")
TAOBAO = os.path.join(SAMPLES, "configs", "mlp_on_taobao.config")
# module names the tests create; removed from sys.modules after each test
OURS = ("eb_test_", "easyblocks_plugin_", "easyblocks_example_plugin", "ebtest_dist")

# A plugin module: a block with dropout (takes `training`) and an auxiliary loss, a block
# that returns a list and one that takes a list.
BLOCKS = '''
import keras
import tensorflow as tf
from easyblocks import register_block


@register_block("TestGated")
class GatedLayer(keras.layers.Layer):
    def __init__(self, units, aux_weight=0.0, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if units <= 0:
            raise ValueError(f"units must be positive, got {units}")
        self.units, self.aux_weight, self.rate = units, aux_weight, dropout
        self.dense = keras.layers.Dense(units, activation="tanh")
        self.gate = keras.layers.Dense(units, activation="sigmoid")
        self.drop = keras.layers.Dropout(dropout)

    def call(self, x, training=None):
        h = self.drop(self.gate(x) * self.dense(x), training=training)
        if self.aux_weight:
            self.add_loss(self.aux_weight * tf.reduce_mean(tf.square(h)))
        return h

    def get_config(self):
        return {**super().get_config(), "units": self.units, "aux_weight": self.aux_weight,
                "dropout": self.rate}


@register_block
class TestSplit(keras.layers.Layer):
    def __init__(self, parts=2, **kwargs):
        super().__init__(**kwargs)
        self.parts = parts

    def call(self, x):
        return tf.split(x, self.parts, axis=-1)


@register_block
class TestWeightedSum(keras.layers.Layer):
    def build(self, shapes):
        self.w = self.add_weight(shape=(len(shapes),), initializer="ones", name="w")

    def call(self, xs):
        assert isinstance(xs, (list, tuple)), type(xs)
        return tf.add_n([self.w[i] * x for i, x in enumerate(xs)])
'''


def st(**params) -> str:
    """st_params text for numbers."""
    return "st_params { " + " ".join(
        f'fields {{ key: "{k}" value {{ number_value: {v} }} }}' for k, v in params.items()) + " }"


def backbone(gated=None, extra: str = "", output: str = "mix") -> str:
    """gated -> split (a list) -> mix (takes the list) [-> extra blocks], output `output`."""
    gated = st(units=8, aux_weight=0.5, dropout=0.5) if gated is None else gated
    return f"""
  backbone {{
    blocks {{ name: "gated" inputs {{ feature_group_name: "all" }}
             keras_layer {{ class_name: "TestGated" {gated} }} }}
    blocks {{ name: "split" inputs {{ block_name: "gated" }}
             keras_layer {{ class_name: "TestSplit" {st(parts=2)} }} }}
    blocks {{ name: "mix" merge_inputs_into_list: true
             inputs {{ block_name: "split" input_slice: "[0]" }}
             inputs {{ block_name: "split" input_slice: "[1]" }}
             keras_layer {{ class_name: "TestWeightedSum" }} }}
    {extra}
    concat_blocks: "{output}"
  }}
"""


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Each test sees the registry, loaded entry points and plugin modules it started with."""
    monkeypatch.chdir(ROOT)
    saved = dict(registry._REGISTRY)
    loaded = set(plugins._loaded_entry_points)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    plugins._loaded_entry_points.clear()
    plugins._loaded_entry_points.update(loaded)
    for name in [m for m in sys.modules if m.startswith(OURS)]:
        del sys.modules[name]


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path; write(module, source) puts a module there."""
    folder = tmp_path / "pluginpath"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def write(module: str, source: str = BLOCKS) -> str:
        path = folder.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(folder).parents:
            if str(parent) != ".":
                (folder / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return str(path)

    write.folder = folder
    return write


def make_distribution(where, name: str, entry_points: dict[str, str], modules=None) -> str:
    """A distribution as pip would install it: modules plus <name>-0.1.dist-info with METADATA
    and entry_points.txt (group easyblocks.blocks), in folder `where`."""
    where.mkdir(parents=True, exist_ok=True)
    for module, source in (modules or {}).items():
        (where / f"{module}.py").write_text(textwrap.dedent(source))
    info = where / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\n{lines}")
    importlib.invalidate_caches()
    return str(where)


def tiny(model: str, plugins_line: str = "") -> str:
    return plugins_line + "\n" + tiny_config(model)


def taobao_config(tmp_path, model_backbone: str, plugins_line: str = "") -> str:
    """The shipped MLP sample with another backbone, a 2000-row eval file, a progress line
    every 5 steps and a checkpoint every 10."""
    text = open(TAOBAO).read()
    start, end = text.index("  backbone {"), text.index("  embedding_regularization")
    text = text[:start] + model_backbone + text[end:]
    eval_rows = tmp_path / "eval.csv"
    with open(os.path.join(SAMPLES, "data", "taobao_test.csv")) as f:
        eval_rows.write_text("".join(next(f) for _ in range(2000)))
    text = text.replace('"samples/data/taobao_test.csv"', f'"{eval_rows}"')
    text = text.replace("log_step_count_steps: 50", "log_step_count_steps: 5")
    text = text.replace("save_checkpoints_steps: 100", "save_checkpoints_steps: 10")
    path = tmp_path / "plugin.config"
    path.write_text(plugins_line + "\n" + text)
    return str(path)


# ---- the three routes ------------------------------------------------------------------------

def test_config_plugins_field_loads_a_module(plugin_dir, write_config):
    plugin_dir("eb_test_cfg.blocks")
    config = write_config(tiny(backbone(), 'plugins: "eb_test_cfg.blocks"'))
    table = api.validate_config(config)
    assert "TestGated" in table and "TestWeightedSum" in table
    spec = registry.get_block("TestGated")
    assert spec.cls.__name__ == "GatedLayer"
    assert spec.source == "plugin module eb_test_cfg.blocks"


def test_cli_plugin_flag_takes_a_py_file(write_config, tmp_path, capsys):
    config = write_config(tiny(backbone()))
    with pytest.raises(ConfigError, match="unknown class_name 'TestGated'.*plugins"):
        api.validate_config(config)
    # a .py file that is not on sys.path, through the command's own argument handling
    path = tmp_path / "elsewhere" / "my_blocks.py"
    path.parent.mkdir()
    path.write_text(BLOCKS)
    assert cli._run(cli._parser().parse_args(["validate", "--config", config,
                                               "--plugin", str(path)])) == 0
    assert "TestGated" in capsys.readouterr().out
    assert registry.get_block("TestSplit").source == f"plugin file {path}"
    # loading it again (another command in the same process) is a no-op, not a collision
    plugins.load_plugins([str(path), str(path)])
    api.validate_config(config, [str(path)])


def test_cli_plugin_flag_takes_modules_repeatedly(plugin_dir, capsys):
    plugin_dir("eb_test_cli_a", BLOCKS)
    plugin_dir("eb_test_cli_b", """
        import keras
        from easyblocks import register_block

        @register_block
        class Identity2(keras.layers.Layer):
            def call(self, x):
                return x
    """)
    args = cli._parser().parse_args(["blocks", "--plugin", "eb_test_cli_a", "--plugin",
                                     "eb_test_cli_b"])
    assert args.plugin == ["eb_test_cli_a", "eb_test_cli_b"]
    assert cli._run(args) == 0
    out = capsys.readouterr().out
    assert "plugin module eb_test_cli_a  [st_params]" in out
    assert "plugin module eb_test_cli_b  [st_params]" in out


def test_entry_point_of_an_installed_distribution(tmp_path, monkeypatch, write_config):
    dist = make_distribution(tmp_path / "site", "ebtest-dist",
                             {"blocks": "ebtest_dist_blocks",
                              "scale": "ebtest_dist_extra:Scale"},
                             {"ebtest_dist_blocks": BLOCKS,
                              "ebtest_dist_extra": """
                                  import keras
                                  class Scale(keras.layers.Layer):
                                      def __init__(self, factor=2.0, **kwargs):
                                          super().__init__(**kwargs)
                                          self.factor = factor
                                      def call(self, x):
                                          return x * self.factor
                              """})
    monkeypatch.syspath_prepend(dist)
    # no `plugins` line, no --plugin: found through the entry point
    config = write_config(tiny(backbone()))
    assert "TestGated" in api.validate_config(config)
    spec = registry.get_block("TestGated")
    assert spec.source == ("entry point blocks = ebtest_dist_blocks "
                           "(distribution ebtest-dist 0.1)")
    # an entry point naming a layer class registers it under the entry point's name
    scale = registry.get_block("scale")
    assert scale.cls.__name__ == "Scale" and scale.source.startswith("entry point scale = ")
    listing = registry.format_blocks()
    assert "scale" in listing and "    factor=2.0" in listing
    # loaded once per process: a second command does not import it again
    plugins.load_entry_points()
    assert registry.get_block("TestGated") is spec


def test_sample_package_entry_point_and_config(tmp_path, monkeypatch):
    """samples/plugins as pip would install it: its pyproject's entry points in a dist-info
    (a real `pip install samples/plugins` does the same), its package on sys.path."""
    text = open(os.path.join(SAMPLE_PLUGIN, "pyproject.toml")).read()
    try:
        import tomllib  # Python 3.11+

        project = tomllib.loads(text)["project"]
        name, eps = project["name"], project["entry-points"][plugins.ENTRY_POINT_GROUP]
    except ImportError:
        name = re.search(r'^name = "(.*)"', text, re.M).group(1)
        section = text.split(f'[project.entry-points."{plugins.ENTRY_POINT_GROUP}"]')[1]
        eps = dict(re.findall(r'^(\w+) = "(.*)"', section.split("\n[")[0], re.M))
    assert eps == {"gated_residual": "easyblocks_example_plugin.blocks"}
    monkeypatch.syspath_prepend(SAMPLE_PLUGIN)
    monkeypatch.syspath_prepend(make_distribution(tmp_path / "site", name, eps))
    config = os.path.join(SAMPLE_PLUGIN, "configs", "gated_residual_on_taobao.config")
    table = api.validate_config(config)
    assert "GatedResidual" in table
    spec = registry.get_block("GatedResidual")
    assert spec.source.startswith("entry point gated_residual = easyblocks_example_plugin.blocks")
    # its math: LayerNorm(skip(x) + sigmoid(W4 h + b4) * (W5 h + b5)), h = W1 ELU(W2 x + b2)
    layer = spec.cls(units=3, gate_l1=0.1, name="g")
    x = tf.random.stateless_normal([5, 4], seed=[1, 2])
    y = layer(x, training=False).numpy()
    h = layer.eta1(layer.eta2(x))
    gate = layer.gate(h)
    pre = (layer.skip(x) + gate * layer.value(h)).numpy()
    norm = (pre - pre.mean(-1, keepdims=True)) / np.sqrt(pre.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, norm, atol=1e-5)  # gamma 1, beta 0 at initialisation
    assert [float(v) for v in layer.losses] == pytest.approx([0.1 * float(tf.reduce_mean(gate))])
    same = spec.cls.from_config(layer.get_config())
    assert (same.units, same.hidden_units, same.gate_l1) == (3, 3, 0.1)


# ---- errors ----------------------------------------------------------------------------------

def test_name_collisions_name_both_sources(plugin_dir):
    plugin_dir("eb_test_mlp", """
        import keras
        from easyblocks import register_block

        @register_block
        class MLP(keras.layers.Layer):
            pass
    """)
    with pytest.raises(ConfigError) as e:
        plugins.load_plugins(["eb_test_mlp"])
    msg = str(e.value)
    assert "block name 'MLP' is registered twice" in msg
    assert "easyblocks.blocks.mlp.MLP (built-in)" in msg
    assert "eb_test_mlp.MLP (plugin module eb_test_mlp)" in msg and "override=True" in msg
    assert registry.get_block("MLP").source == "built-in"  # unchanged

    plugin_dir("eb_test_one", BLOCKS)
    plugin_dir("eb_test_two", """
        import keras
        from easyblocks import register_block

        @register_block("TestGated")
        class OtherGated(keras.layers.Layer):
            pass
    """)
    plugins.load_plugins(["eb_test_one"])
    with pytest.raises(ConfigError, match=r"'TestGated' is registered twice: by "
                                          r"eb_test_one.GatedLayer \(plugin module eb_test_one\) "
                                          r"and by eb_test_two.OtherGated \(plugin module "
                                          r"eb_test_two\)"):
        plugins.load_plugins(["eb_test_two"])

    plugin_dir("eb_test_dense", """
        import keras
        from easyblocks import register_block

        @register_block
        class Dense(keras.layers.Layer):
            pass
    """)
    with pytest.raises(ConfigError, match=r"'Dense' of eb_test_dense.Dense \(plugin module "
                                          r"eb_test_dense\) is the name of keras.layers.Dense"):
        plugins.load_plugins(["eb_test_dense"])


def test_explicit_override_wins_and_is_shown(plugin_dir, caplog):
    plugin_dir("eb_test_override", """
        import keras
        from easyblocks import register_block

        @register_block("MLP", override=True)
        class MyMLP(keras.layers.Layer):
            def __init__(self, hidden_units, **kwargs):
                super().__init__(**kwargs)
                self.dense = keras.layers.Dense(hidden_units[-1])

            def call(self, x):
                return self.dense(x)
    """)
    with caplog.at_level(logging.INFO, logger="easyblocks"):
        plugins.load_plugins(["eb_test_override"])
    spec = registry.get_block("MLP")
    assert spec.cls.__name__ == "MyMLP" and spec.overrides == "easyblocks.blocks.mlp.MLP (built-in)"
    assert "overrides easyblocks.blocks.mlp.MLP (built-in)" in caplog.text
    assert "MLP                        plugin module eb_test_override, overrides " \
        "easyblocks.blocks.mlp.MLP (built-in)" in registry.format_blocks()


def test_import_failure_is_reported_as_such(plugin_dir, write_config, tmp_path, monkeypatch):
    source = plugin_dir("eb_test_broken", "import keras\nimport eb_no_such_dependency\n")
    config = write_config(tiny(backbone(), 'plugins: "eb_test_broken"'))
    with pytest.raises(ConfigError) as e:
        api.validate_config(config)
    msg = str(e.value)
    assert msg.startswith("plugin 'eb_test_broken' failed to import: ModuleNotFoundError: "
                          "No module named 'eb_no_such_dependency'")
    assert f"(at {source}:2)" in msg and "unknown class_name" not in msg
    assert isinstance(e.value.__cause__, ModuleNotFoundError)  # --debug shows its traceback

    with pytest.raises(ConfigError, match=r"plugin 'eb_test_missing.blocks' failed to import: "
                                          r"ModuleNotFoundError: No module named "
                                          r"'eb_test_missing'; is the package installed"):
        plugins.load_plugin("eb_test_missing.blocks")
    with pytest.raises(ConfigError, match="plugin file not found: nowhere/blocks.py"):
        plugins.load_plugin("nowhere/blocks.py")
    bad = tmp_path / "syntax.py"
    bad.write_text("def f(:\n")
    with pytest.raises(ConfigError, match=r"plugin '.*syntax.py' failed to import: SyntaxError"):
        plugins.load_plugin(str(bad))

    monkeypatch.syspath_prepend(make_distribution(
        tmp_path / "site", "ebtest-broken", {"boom": "ebtest_dist_boom"},
        {"ebtest_dist_boom": "raise RuntimeError('no GPU here')\n"}))
    with pytest.raises(ConfigError, match=r"plugin entry point 'boom' = 'ebtest_dist_boom' "
                                          r"\(group easyblocks.blocks, distribution ebtest-broken "
                                          r"0.1\) failed to load: RuntimeError: no GPU here "
                                          r"\(at .*ebtest_dist_boom.py:1\)"):
        plugins.load_plugins([])


def test_st_params_validation_names_block_class_and_arguments(plugin_dir, write_config):
    plugin_dir("eb_test_params")
    pl = 'plugins: "eb_test_params"'
    cases = {
        st(units=8, unitz=3): r"block 'gated'.*class_name 'TestGated' \(eb_test_params."
                              r"GatedLayer\).*GatedLayer got unknown parameter\(s\) unitz; "
                              r"accepted: units, aux_weight, dropout",
        st(dropout=0.1): r"block 'gated'.*GatedLayer is missing required parameter\(s\) units; "
                         r"accepted: units, aux_weight, dropout",
        st(units=-1): r"block 'gated'.*cannot create TestGated: units must be positive, got -1",
    }
    for params, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            api.validate_config(write_config(tiny(backbone(params), pl)))
    # integral numbers arrive as ints, others as floats
    model = api.validate_config(write_config(tiny(backbone(st(units=6, dropout=0.25)), pl)))
    assert "gated" in model
    assert registry.block_params(registry.get_block("TestGated").cls) == \
        ["units", "aux_weight=0.0", "dropout=0.0"]
    assert registry.block_params(registry.get_block("TestSplit").cls) == ["parts=2"]
    assert registry.block_params(registry.get_block("TestWeightedSum").cls) == []


def test_training_flag_lists_and_aux_loss_in_compute_losses(plugin_dir, write_config):
    from easyblocks.models.build import build_and_initialize, dummy_columns

    plugin_dir("eb_test_losses")
    config = write_config(tiny(backbone(st(units=8, aux_weight=0.5, dropout=0.5)),
                               'plugins: "eb_test_losses"'))
    resolved = api.resolve(config)
    model, pre = build_and_initialize(resolved)
    features = pre(dummy_columns(resolved))
    out1, emb = model.forward(features, training=False)
    out2, _ = model.forward(features, training=False)
    np.testing.assert_array_equal(out1["logits_clk"], out2["logits_clk"])
    trained, _ = model.forward(features, training=True)  # dropout 0.5 only while training
    assert not np.allclose(trained["logits_clk"], out1["logits_clk"])
    out, emb = model.forward(features, training=False)
    terms = model.compute_losses({"clk": tf.constant([1.0, 0.0, 1.0, 0.0])}, out, emb)
    assert set(terms) == {"loss/clk/classification", "loss/gated", "loss/regularization",
                          "loss/total"}
    gated = model.backbone.dag.blocks["gated"].steps[0].layers[0]
    h = gated(model.feature_groups(features)["groups"]["all"], training=False)
    assert float(terms["loss/gated"]) == pytest.approx(0.5 * float(tf.reduce_mean(h ** 2)),
                                                       rel=1e-5)
    assert float(terms["loss/total"]) == pytest.approx(
        sum(float(v) for k, v in terms.items() if k != "loss/total"), rel=1e-6)


# ---- end to end ------------------------------------------------------------------------------

RELOAD = textwrap.dedent("""
    import csv, sys, numpy as np, tensorflow as tf
    export_dir, rows_file, out_file, plugin = sys.argv[1:5]
    try:
        __import__(plugin)
        sys.exit(f"the plugin {plugin} is importable here")
    except ModuleNotFoundError:
        pass
    assert "easyblocks" not in sys.modules
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    names = sys.argv[5].split(",")
    rows = list(csv.reader(open(rows_file)))
    inputs = {}
    for k, spec in specs.items():
        values = [r[names.index(k)] for r in rows]
        inputs[k] = tf.constant(values if spec.dtype == tf.string
                                else np.array(values).astype(spec.dtype.as_numpy_dtype))
    np.savez(out_file, **{k: v.numpy() for k, v in serve(**inputs).items()})
""")


@pytest.mark.slow
def test_plugin_block_trains_resumes_exports_and_serves_without_plugin(plugin_dir, tmp_path):
    from easyblocks.data.csv_input import CSVInput
    from easyblocks.models.checkpoints import checkpoint_key
    from easyblocks.models.state import ModelState

    plugin_dir("eb_test_e2e.blocks")
    # dropout 0: a Dropout's seed variable is named per process by Keras (seed_generator_1
    # in a second model), so resuming in the same process would not find it (loop.py)
    config = taobao_config(tmp_path, backbone(st(units=16, aux_weight=0.1)),
                           'plugins: "eb_test_e2e.blocks"')
    model_dir = str(tmp_path / "m")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("easyblocks")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        api.train(config, model_dir=model_dir, num_steps=10)
        progress = [x for x in lines if x.startswith("step 10 |")]
        assert progress and " | loss/gated " in progress[0] and " | loss/total " in progress[0]
        lines.clear()
        api.train(config, model_dir=model_dir, num_steps=15)
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    assert any(x.startswith("resumed from ") and x.endswith("at step 10") for x in lines)
    assert any(x.startswith("step 15 |") and "loss/gated" in x for x in lines)

    # the plugin's weights are in the checkpoint and restored from it
    reader = tf.train.load_checkpoint(model_dir)
    trainer = ModelState(api.resolve(config), model_dir=model_dir)
    trainer.restore(required=True)
    mix = trainer.model.backbone.dag.blocks["mix"].steps[0].layers[0]
    # model variables are checkpointed by stable names (see models/checkpoints.py)
    assert trainer.key_of(mix.w) == "backbone/dag/mix/w"
    key = checkpoint_key(trainer.key_of(mix.w))
    np.testing.assert_array_equal(reader.get_tensor(key), mix.w.numpy())
    assert not np.array_equal(mix.w.numpy(), np.ones(2))  # trained, not the initial value

    rows = open(os.path.join(SAMPLES, "data", "taobao_test.csv")).read().splitlines()[:100]
    columns = CSVInput(trainer.spec.data, trainer.preprocessor, []).parse(tf.constant(rows))
    expected = trainer.model(trainer.preprocessor(columns), training=False)["probs_clk"].numpy()
    export_dir = api.export(config, model_dir, str(tmp_path / "export"))

    rows_file = tmp_path / "rows.csv"
    rows_file.write_text("\n".join(rows) + "\n")
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    names = trainer.spec.data.field_names
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(script), export_dir, str(rows_file),
                        str(tmp_path / "out.npz"), "eb_test_e2e", ",".join(names)],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(got["probs_clk"], expected, atol=1e-5)


@pytest.mark.slow
def test_cli_blocks_and_validate_with_every_route(tmp_path, write_config):
    dist = make_distribution(tmp_path / "site", "ebtest-cli", {"blocks": "ebtest_dist_cli"},
                             {"ebtest_dist_cli": BLOCKS})
    script = tmp_path / "elsewhere" / "more_blocks.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent("""
        import keras
        from easyblocks import register_block

        @register_block("Twice")
        class Double(keras.layers.Layer):
            def __init__(self, scale=2.0, **kwargs):
                super().__init__(**kwargs)
                self.scale = scale

            def call(self, x):
                return self.scale * x
    """))
    env = dict(ENV, PYTHONPATH=dist)
    r = subprocess.run([sys.executable, "-m", "easyblocks.cli", "blocks", "--plugin", str(script)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    gated = next(i for i, x in enumerate(out) if x.startswith("TestGated "))
    assert "entry point blocks = ebtest_dist_cli (distribution ebtest-cli 0.1)  [st_params]" \
        in out[gated]
    assert out[gated + 1] == "    units, aux_weight=0.0, dropout=0.0"
    twice = next(i for i, x in enumerate(out) if x.startswith("Twice "))
    assert f"plugin file {script}  [st_params]" in out[twice] and out[twice + 1] == "    scale=2.0"
    mlp = next(i for i, x in enumerate(out) if x.startswith("MLP "))
    assert "built-in  [mlp {} or st_params]" in out[mlp] and "hidden_units" in out[mlp + 1]

    config = write_config(tiny(backbone(extra='blocks { name: "twice" inputs { block_name: '
                                              '"mix" } keras_layer { class_name: "Twice" } }',
                                        output="twice")))
    r = subprocess.run([sys.executable, "-m", "easyblocks.cli", "validate", "--config", config,
                        "--plugin", str(script)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Twice" in r.stdout and "TestGated" in r.stdout and r.stdout.strip().endswith("OK")
    broken = tmp_path / "broken.py"
    broken.write_text("import keras\nraise ImportError('needs team_lib >= 2')\n")
    r = subprocess.run([sys.executable, "-m", "easyblocks.cli", "validate", "--config", config,
                        "--plugin", str(broken)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"easyblocks: error: plugin '{broken}' failed to import: "
                                f"ImportError: needs team_lib >= 2 (at {broken}:2)")
