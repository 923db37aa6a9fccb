"""Python entry points mirroring the CLI: train, evaluate, export, predict, validate, graph."""

from __future__ import annotations

import glob
import os

from easyblocks.config.checks import check_memory
from easyblocks.config.loader import LoadedConfig, apply_override, load_config
from easyblocks.config.resolve import resolve as resolve_config
from easyblocks.config.specs import PipelineSpec
from easyblocks.errors import ConfigError


def _load(config_path: str, overrides: list[str] = ()) -> LoadedConfig:
    """The parsed config with the --set overrides merged in (not resolved)."""
    loaded = load_config(config_path)
    for text in overrides:
        apply_override(loaded, text)
    return loaded


def resolve(config_path: str, extra_plugins: list[str] = (), num_steps: int | None = None,
            overrides: list[str] = (), max_memory_gb: float | None = None,
            training: bool = False, allow_config_plugins: bool = False) -> PipelineSpec:
    """Loads a config, applies overrides, resolves it into specs and loads its plugins.

    Each override is config text merged into the file's config, e.g.
    'train_config { seed: 3 }': scalars are replaced, messages merged, and a list it
    names (an optimizer_config, hidden_units) replaces the file's list.
    max_memory_gb: the limit on the embedding tables' memory (None: 8 GiB), with the
    optimizer's slots counted when `training`. allow_config_plugins: let the config's
    `plugins` name .py files (by default modules only).
    Every error of the config itself is found before TensorFlow is imported (by the
    plugins, which register Keras layers).
    """
    spec = resolve_without_plugins(config_path, extra_plugins, num_steps, overrides,
                                   max_memory_gb, training, allow_config_plugins)
    from easyblocks.blocks import plugins  # registers the built-in blocks too

    plugins.load_plugins(spec.plugins + list(extra_plugins))
    return spec


def resolve_without_plugins(config_path: str, extra_plugins: list[str] = (),
                            num_steps: int | None = None, overrides: list[str] = (),
                            max_memory_gb: float | None = None, training: bool = False,
                            allow_config_plugins: bool = False,
                            num_ps: int | None = None) -> PipelineSpec:
    """`resolve` without loading the plugins of the blocks: the config's specs, checked,
    without importing TensorFlow (unless its model_class comes from a plugin). num_ps: the
    parameter servers training will have (None: TF_CONFIG's), for the memory limit."""
    loaded = _load(config_path, overrides)
    if num_steps is not None:
        loaded.proto.train_config.num_steps = num_steps
    _load_plugins_for_model_class(loaded, extra_plugins, allow_config_plugins)
    spec = resolve_config(loaded, allow_plugin_files=allow_config_plugins)
    check_memory(spec, max_memory_gb, training, num_ps)
    return spec


def cluster_local(config_path: str, workers: int, ps: int, train_args: list[str],
                  num_steps: int | None = None, overrides: list[str] = (),
                  extra_plugins: list[str] = (), **options) -> int:
    """Runs `easyblocks train train_args` as a cluster of local processes (TF_CONFIG on
    127.0.0.1); returns the job's exit status. The config is checked once here first."""
    from easyblocks.tools import cluster_local as local

    spec = resolve_without_plugins(config_path, extra_plugins, num_steps, overrides,
                                   training=True, num_ps=ps, **options)
    return local.run(train_args, spec.train.strategy, workers, ps)


def _load_plugins_for_model_class(loaded: LoadedConfig, extra_plugins,
                                  allow_config_plugins: bool = False) -> None:
    """A model_class that no template registered yet may come from a plugin: load the
    plugins (which imports TensorFlow) before the config is resolved; the config's own
    `plugins` only if they pass the plugin policy (modules, or files when allowed)."""
    from easyblocks.config import templates
    from easyblocks.config.resolve import check_plugins

    if templates.is_known(loaded.proto.model_config.model_class):
        return
    check_plugins(loaded, allow_config_plugins)
    from easyblocks.blocks import plugins

    plugins.load_plugins(list(loaded.proto.plugins) + list(extra_plugins))


def train(config_path: str, model_dir: str | None = None, extra_plugins: list[str] = (),
          num_steps: int | None = None, overrides: list[str] = (), **options) -> dict:
    """Trains (resuming from model_dir) and evaluates; returns the evaluation results.

    The results hold "towers" -> tower -> {"overall": {...}, "domains": {...}}, and
    the training phase's "train_examples_per_sec" (examples trained / the seconds from
    asking for the first batch to the end of the last step, tracing, input waits and
    checkpoint saves included, evaluation excluded), "steady_examples_per_sec" (the same after the first
    logging window), "train_phase_seconds", "first_step_seconds" (easyblocks/train/
    throughput.py: the one definition, also of the progress lines' examples/s).
    On a cluster (TF_CONFIG) only the chief evaluates; other workers return {}, and the
    worker and ps tasks of PSStrategy serve the chief until they are stopped.
    `options` (here and below): `resolve`'s max_memory_gb and allow_config_plugins.
    """
    from easyblocks.train.distribute import serve_if_server_task
    from easyblocks.train.loop import Trainer

    spec = resolve(config_path, extra_plugins, num_steps, overrides, training=True, **options)
    serve_if_server_task(spec.train.strategy)
    return Trainer(spec, model_dir=model_dir).train()


def _restored_state(spec: PipelineSpec, model_dir: str | None, checkpoint: str | None):
    from easyblocks.models.state import ModelState

    state = ModelState(spec, model_dir)
    state.restore(checkpoint, required=True)
    return state


def evaluate(config_path: str, model_dir: str | None = None, checkpoint: str | None = None,
             extra_plugins: list[str] = (), overrides: list[str] = (), **options) -> dict:
    """Evaluates a checkpoint of model_dir: "latest", "best", a path, or by default the best
    one when the config keeps one (export_config), else the newest readable one. The results
    name it ("checkpoint")."""
    from easyblocks.eval.evaluator import Evaluator

    spec = resolve(config_path, extra_plugins, overrides=overrides, **options)
    state = _restored_state(spec, model_dir, checkpoint)
    return Evaluator(state).evaluate({"checkpoint": state.restored},
                                     note=f" (checkpoint {state.restored})")


def _data_folders(spec: PipelineSpec) -> list[str]:
    folders = []
    for pattern in (spec.train_input_path, spec.eval_input_path):
        for part in filter(None, (p.strip() for p in pattern.split(","))):
            for f in glob.glob(part) or [part]:
                if os.path.exists(f):
                    folders.append(os.path.dirname(os.path.abspath(f)))
    return folders


def export(config_path: str, model_dir: str | None = None, export_dir: str | None = None,
           checkpoint: str | None = None, extra_plugins: list[str] = (),
           overrides: list[str] = (), blocks: list[str] = (), overwrite: bool = False,
           **options) -> str:
    """Exports a checkpoint as a SavedModel (which one: see `evaluate`); returns its
    directory.

    With `blocks`, the SavedModel returns those backbone blocks' outputs and takes only
    the columns they need (e.g. one tower of a two-tower model, for retrieval). The export
    goes into a new or empty folder; an earlier easyblocks export there is replaced only
    with `overwrite`, and a folder with anything else in it never.
    """
    from easyblocks.serving.export import check_export_dir, export_blocks, export_saved_model

    spec = resolve(config_path, extra_plugins, overrides=overrides, **options)
    model_dir = model_dir or spec.model_dir
    if not model_dir:
        raise ConfigError(f"{spec.path}: no model_dir (set it in the config or pass "
                          "--model_dir)")
    export_dir = export_dir or spec.export.export_dir or os.path.join(model_dir, "export")
    protected = {model_dir: "the model_dir", os.path.abspath(config_path): "the config"}
    protected.update({f: "the folder of the input data" for f in _data_folders(spec)})
    check_export_dir(export_dir, overwrite, protected)
    state = _restored_state(spec, model_dir, checkpoint)
    about = {"config": os.path.abspath(config_path), "checkpoint": state.restored_from,
             "step": int(state.step.numpy())}
    if blocks:
        return export_blocks(state, list(blocks), export_dir, about)
    return export_saved_model(state, export_dir, about)


def predict(config_path: str, input_path: str, output_path: str, keep_columns: list[str] = (),
            model_dir: str | None = None, export_dir: str | None = None,
            extra_plugins: list[str] = (), overrides: list[str] = (),
            checkpoint: str | None = None, **options) -> int:
    """Scores a CSV file into output_path (written whole, or not at all) from a SavedModel,
    or from a checkpoint (which one: see `evaluate`); returns the number of rows."""
    from easyblocks.models.state import ModelState
    from easyblocks.serving.predict import predict_file

    spec = resolve(config_path, extra_plugins, overrides=overrides, **options)
    state = ModelState(spec, model_dir)
    if not export_dir:
        state.restore(checkpoint, required=True)
    return predict_file(state, input_path, output_path, list(keep_columns), export_dir)


def validate_config(config_path: str, extra_plugins: list[str] = (),
                    overrides: list[str] = (), **options) -> str:
    """Validates and builds the model on a synthetic batch; returns the blocks/towers table."""
    from easyblocks.tools.describe import describe, format_table

    return format_table(describe(resolve(config_path, extra_plugins, overrides=overrides,
                                         **options)))


def expand_config(config_path: str, overrides: list[str] = (), extra_plugins: list[str] = (),
                  allow_config_plugins: bool = False) -> str:
    """The config's model_config with its model class expanded into a backbone and towers, as
    config text (`validate --expand`)."""
    from easyblocks.config import easyrec_check
    from easyblocks.config.templates import expanded_text

    loaded = _load(config_path, overrides)
    _load_plugins_for_model_class(loaded, extra_plugins, allow_config_plugins)
    easyrec_check.enforce(loaded)
    return expanded_text(loaded)


def explain_config(config_path: str, overrides: list[str] = ()) -> tuple[str, int]:
    """Every set field that easyblocks accepts without effect or refuses, with the reason
    (all of them, not only the first); returns (the listing, number refused)."""
    from easyblocks.config.easyrec_check import explain

    return explain(_load(config_path, overrides))


def graph(config_path: str, output_path: str, extra_plugins: list[str] = (),
          overrides: list[str] = (), **options) -> None:
    """Writes a picture of the model (.dot, .mmd, or .svg/.png/.pdf with Graphviz)."""
    from easyblocks.tools.describe import describe
    from easyblocks.tools.graph import write_graph

    write_graph(describe(resolve(config_path, extra_plugins, overrides=overrides, **options)),
                output_path)
