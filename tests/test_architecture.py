"""The package structure: the spec layer is free of TensorFlow, evaluation and serving create
no optimizer state, and no package reads another package's private names."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_config

PACKAGE = os.path.join(ROOT, "easyblocks")


def test_config_layer_resolves_without_tensorflow(tmp_path):
    path = tmp_path / "t.config"
    path.write_text(tiny_config(
        'backbone { blocks { name: "mlp" inputs { feature_group_name: "all" } '
        'keras_layer { class_name: "MLP" mlp { hidden_units: [4] } } } concat_blocks: "mlp" }'))
    code = (
        "import sys\n"
        "from easyblocks.config.loader import load_config\n"
        "from easyblocks.config.resolve import resolve\n"
        f"spec = resolve(load_config({str(path)!r}))\n"
        "assert spec.model.backbone.dag.order == ['mlp'], spec.model.backbone.dag.order\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('HEAVY', heavy[:5])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_config_errors_are_found_before_tensorflow_loads(tmp_path):
    path = tmp_path / "t.config"
    path.write_text(tiny_config(
        'backbone { blocks { name: "mlp" inputs { feature_group_name: "al" } } }'))
    code = (
        "import sys\n"
        "from easyblocks.config.loader import load_config\n"
        "from easyblocks.config.resolve import resolve\n"
        "from easyblocks.errors import ConfigError\n"
        "try:\n"
        f"    resolve(load_config({str(path)!r}))\n"
        "except ConfigError as e:\n"
        "    print('ERROR', e)\n"
        "print('TF', 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert "ERROR" in out.stdout and "did you mean: all" in out.stdout, out.stdout + out.stderr
    assert "TF False" in out.stdout


@pytest.mark.slow
def test_evaluate_export_predict_create_no_optimizer_slots(tmp_path, monkeypatch):
    """ModelState restores a checkpoint written by the Trainer without building any
    optimizer: the checkpoint's slot variables are left alone."""
    import keras

    from easyblocks import api
    from easyblocks.train import optimizers

    config = os.path.join(ROOT, "samples", "configs", "mlp_on_taobao.config")
    model_dir = str(tmp_path / "m")
    api.train(config, model_dir=model_dir, num_steps=3)

    created = []
    real_init = optimizers.SparseTableOptimizer.__init__
    monkeypatch.setattr(optimizers.SparseTableOptimizer, "__init__",
                        lambda self, *a, **k: (created.append("table"),
                                               real_init(self, *a, **k))[1])
    real_build = keras.optimizers.Optimizer.build
    monkeypatch.setattr(keras.optimizers.Optimizer, "build",
                        lambda self, v: (created.append("dense"), real_build(self, v))[1])
    rows = tmp_path / "rows.csv"
    with open(os.path.join(ROOT, "samples", "data", "taobao_test.csv")) as f:
        rows.write_text("".join(f.readline() for _ in range(50)))
    api.evaluate(config, model_dir=model_dir,
                 overrides=[f'eval_input_path: "{rows}"'])
    api.export(config, model_dir=model_dir, export_dir=str(tmp_path / "export"))
    api.predict(config, str(rows), str(tmp_path / "scores.csv"), model_dir=model_dir)
    assert created == []


def _modules() -> list[tuple[str, str]]:
    out = []
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py") and not f.endswith("_pb2.py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out.append((rel.removesuffix(".__init__"), path))
    return out


def _package_of(module: str) -> str:
    """'easyblocks.config.dag' -> 'easyblocks.config'; top-level modules are their own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def private_name_uses(module: str, path: str) -> list[str]:
    """Uses in `module` of a private name (leading underscore, not dunder) of a module of
    another easyblocks package: `from easyblocks.x import _y` or `x_module._y`."""
    tree = ast.parse(open(path).read(), path)
    mine = _package_of(module)
    imported: dict[str, str] = {}  # local name -> easyblocks module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("easyblocks"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if _package_of(node.module) != mine and alias.name.startswith("_") \
                        and not alias.name.startswith("__"):
                    found.append(f"{path}:{node.lineno}: imports {target}")
                imported[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("easyblocks"):
                    imported[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in imported and node.attr.startswith("_") and \
                not node.attr.startswith("__"):
            target = imported[node.value.id]
            if _package_of(target) != mine:
                found.append(f"{path}:{node.lineno}: reads {target}.{node.attr}")
    return found


def test_no_package_reads_another_packages_private_names():
    found = [use for module, path in _modules() for use in private_name_uses(module, path)]
    assert found == []


def test_the_private_name_rule_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from easyblocks.blocks import registry\n"
                   "from easyblocks.config.dag import _no_locate\n"
                   "x = registry._REGISTRY\n")
    found = private_name_uses("easyblocks.serving.bad", str(bad))
    assert len(found) == 2 and "registry._REGISTRY" in found[1]
