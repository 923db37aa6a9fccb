"""Python entry points mirroring the CLI: train, evaluate, export, predict, validate, graph."""

from __future__ import annotations

import os

from google.protobuf import text_format

from easyblocks.config.loader import LoadedConfig, load_config
from easyblocks.config.resolve import resolve as resolve_config
from easyblocks.config.specs import PipelineSpec
from easyblocks.errors import ConfigError


def _load(config_path: str, overrides: list[str] = ()) -> LoadedConfig:
    """The parsed config with the --set overrides merged in (not validated)."""
    loaded = load_config(config_path)
    for text in overrides:
        try:
            text_format.Merge(text, loaded.proto)
        except text_format.ParseError as e:
            raise ConfigError(f"--set {text!r}: {e}") from None
    return loaded


def resolve(config_path: str, extra_plugins: list[str] = (), num_steps: int | None = None,
            overrides: list[str] = ()) -> PipelineSpec:
    """Loads a config, applies overrides, resolves it into specs and loads its plugins.

    Each override is config text merged into the file's config, e.g.
    'train_config { seed: 3 }' (repeated fields are appended, scalars replaced).
    Every error of the config itself is found before TensorFlow is imported (by the
    plugins, which register Keras layers).
    """
    loaded = _load(config_path, overrides)
    if num_steps is not None:
        loaded.proto.train_config.num_steps = num_steps
    _load_plugins_for_model_class(loaded, extra_plugins)
    spec = resolve_config(loaded)
    from easyblocks.blocks import plugins  # registers the built-in blocks too

    plugins.load_plugins(spec.plugins + list(extra_plugins))
    return spec


def _load_plugins_for_model_class(loaded: LoadedConfig, extra_plugins) -> None:
    """A model_class that no template registered yet may come from a plugin: load the
    plugins (which imports TensorFlow) before the config is resolved."""
    from easyblocks.config import templates

    if templates.is_known(loaded.proto.model_config.model_class):
        return
    from easyblocks.blocks import plugins

    plugins.load_plugins(list(loaded.proto.plugins) + list(extra_plugins))


def train(config_path: str, model_dir: str | None = None, extra_plugins: list[str] = (),
          num_steps: int | None = None, overrides: list[str] = ()) -> dict:
    """Trains (resuming from model_dir) and evaluates; returns the evaluation results.

    The results hold "towers" -> tower -> {"overall": {...}, "domains": {...}}, and
    "train_examples_per_sec" (after the first logging window, which includes tracing).
    """
    from easyblocks.train.loop import Trainer

    trainer = Trainer(resolve(config_path, extra_plugins, num_steps, overrides),
                      model_dir=model_dir)
    return trainer.train()


def _restored_state(spec: PipelineSpec, model_dir: str | None, checkpoint: str | None):
    from easyblocks.models.state import ModelState

    state = ModelState(spec, model_dir)
    state.restore(checkpoint, required=True)
    return state


def evaluate(config_path: str, model_dir: str | None = None, checkpoint: str | None = None,
             extra_plugins: list[str] = (), overrides: list[str] = ()) -> dict:
    """Evaluates the latest (or given) checkpoint in model_dir."""
    from easyblocks.eval.evaluator import Evaluator

    spec = resolve(config_path, extra_plugins, overrides=overrides)
    return Evaluator(_restored_state(spec, model_dir, checkpoint)).evaluate()


def export(config_path: str, model_dir: str | None = None, export_dir: str | None = None,
           checkpoint: str | None = None, extra_plugins: list[str] = (),
           overrides: list[str] = (), blocks: list[str] = ()) -> str:
    """Exports the latest (or given) checkpoint as a SavedModel; returns its directory.

    With `blocks`, the SavedModel returns those backbone blocks' outputs and takes only
    the columns they need (e.g. one tower of a two-tower model, for retrieval).
    """
    from easyblocks.serving.export import export_blocks, export_saved_model

    spec = resolve(config_path, extra_plugins, overrides=overrides)
    state = _restored_state(spec, model_dir, checkpoint)
    export_dir = export_dir or spec.export.export_dir or os.path.join(state.model_dir, "export")
    if blocks:
        return export_blocks(state, list(blocks), export_dir)
    return export_saved_model(state, export_dir)


def predict(config_path: str, input_path: str, output_path: str, keep_columns: list[str] = (),
            model_dir: str | None = None, export_dir: str | None = None,
            extra_plugins: list[str] = (), overrides: list[str] = ()) -> int:
    """Scores a CSV file into output_path; returns the number of rows."""
    from easyblocks.models.state import ModelState
    from easyblocks.serving.predict import predict_file

    spec = resolve(config_path, extra_plugins, overrides=overrides)
    state = ModelState(spec, model_dir)
    if not export_dir:
        state.restore(None, required=True)
    return predict_file(state, input_path, output_path, list(keep_columns), export_dir)


def validate_config(config_path: str, extra_plugins: list[str] = (),
                    overrides: list[str] = ()) -> str:
    """Validates and builds the model on a synthetic batch; returns the blocks/towers table."""
    from easyblocks.tools.describe import describe, format_table

    return format_table(describe(resolve(config_path, extra_plugins, overrides=overrides)))


def expand_config(config_path: str, overrides: list[str] = ()) -> str:
    """The config's model_config with its model class expanded into a backbone and towers, as
    config text (`validate --expand`)."""
    from easyblocks.config import easyrec_check
    from easyblocks.config.templates import expanded_text

    loaded = _load(config_path, overrides)
    _load_plugins_for_model_class(loaded, ())
    easyrec_check.enforce(loaded)
    return expanded_text(loaded)


def explain_config(config_path: str, overrides: list[str] = ()) -> tuple[str, int]:
    """Every set field that easyblocks accepts without effect or refuses, with the reason
    (all of them, not only the first); returns (the listing, number refused)."""
    from easyblocks.config.easyrec_check import explain

    return explain(_load(config_path, overrides))


def graph(config_path: str, output_path: str, extra_plugins: list[str] = (),
          overrides: list[str] = ()) -> None:
    """Writes a picture of the model (.dot, .mmd, or .svg/.png/.pdf with Graphviz)."""
    from easyblocks.tools.describe import describe
    from easyblocks.tools.graph import write_graph

    write_graph(describe(resolve(config_path, extra_plugins, overrides=overrides)), output_path)
