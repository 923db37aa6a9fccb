"""EasyRec's model classes as templates: `model_class: "DeepFM"` expands into a backbone.

A model class is not a second code path. Its template takes the config's model_config (the
feature groups and the class's parameter message, e.g. `deepfm { ... }`) and returns a plain
`RankModel` or `MultiTaskModel` model_config: a backbone of registered blocks, task towers
and `model_params`. Resolution then goes on as for a config written that way, so
validation, building, training, export, `easyblocks graph` and `validate` are unchanged and
show the expanded DAG; `easyblocks validate --expand` prints it as config text, to copy and
edit.

Templates register like blocks: `register_model_class("DeepFM", "deepfm", expand)` (or as a
decorator), from easyblocks itself or from a plugin module (a model class that the config
names and that is not registered yet makes the command load the plugins first). Pure
Python: nothing here imports TensorFlow.

A MultiTaskModel whose towers have `relation_dnn` (DBMTL's Bayesian task relations) is
expanded too: the towers' `dnn` and `relation_dnn` become backbone blocks
(`expand_relation_towers`).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

from easyblocks.config.loader import LoadedConfig
from easyblocks.errors import ConfigError, suggest
from easyblocks.protos import model_pb2, pipeline_pb2

# the model classes that are not templates: built from model_params and the backbone
BASE_CLASSES = ("RankModel", "MultiTaskModel")


@dataclasses.dataclass(frozen=True)
class ModelClass:
    """A registered model class template.

    Attributes:
      name: the model_class value ("DeepFM").
      params: the field of EasyRecModel's `oneof model` holding its parameters ("deepfm").
      expand: (TemplateInput) -> an EasyRecModel message with model_class RankModel or
        MultiTaskModel.
      source: "built-in" or "plugin module <module>".
    """

    name: str
    params: str
    expand: Callable[[TemplateInput], Any]
    source: str

    @property
    def summary(self) -> str:
        """The first sentence of the template's docstring."""
        doc = inspect.getdoc(self.expand) or ""
        text = " ".join(doc.split("\n\n")[0].split())
        return text.split(". ")[0].rstrip(".")


@dataclasses.dataclass
class TemplateInput:
    """What a template reads.

    Attributes:
      model: a copy of the config's model_config (the template may change and return it).
      params: the class's parameter message inside `model` (e.g. model.deepfm).
      label_fields: data_config.label_fields.
      feature_dims: feature name -> its width in a DEEP group (embedding_dim, or the raw
        width of a raw feature without one).
      path: the config file.
    """

    model: Any
    params: Any
    label_fields: list[str]
    feature_dims: dict[str, int]
    path: str
    loaded: LoadedConfig

    @property
    def name(self) -> str:
        return self.model.model_class

    def where(self, field: str | None = None, value: str | None = None) -> str:
        """'file:line' of `field` (of `field: "value"`) inside model_config, else of the
        model_class line, else the file."""
        lines = self.loaded.text.splitlines()
        start = next((i for i, line in enumerate(lines) if re.match(r"\s*model_config\b", line)),
                     0)
        patterns = []
        if field and value is not None:
            patterns.append(rf"\b{field}\s*:\s*[\"']{re.escape(value)}[\"']")
        if field:
            patterns.append(rf"\b{field}\b")
        patterns.append(rf"\bmodel_class\s*:\s*[\"']{re.escape(self.name)}[\"']")
        for pattern in patterns:
            for i in range(start, len(lines)):
                if re.search(pattern, lines[i]):
                    return f"{self.path}:{i + 1}"
        return self.path

    def error(self, message: str, field: str | None = None, value: str | None = None):
        """A ConfigError 'file:line: model_class X: message' to raise."""
        return ConfigError(f"{self.where(field, value)}: model_class {self.name}: {message}")

    @property
    def groups(self) -> dict[str, Any]:
        return {g.group_name: g for g in self.model.feature_groups}

    def group_features(self, name: str) -> list[str]:
        """The feature names of group `name`, name ranges (`field[1-3]`) expanded as
        resolution expands them."""
        from easyblocks.config.features import expand_names

        return [n for f in self.groups[name].feature_names for n in expand_names(f)]

    def require_groups(self, *names: str) -> None:
        missing = [n for n in names if n not in self.groups]
        if missing:
            raise self.error(
                f"needs the feature group(s) {', '.join(repr(n) for n in missing)} (EasyRec's "
                f"{self.name} reads groups {', '.join(repr(n) for n in names)}); the config has "
                f"{', '.join(repr(g) for g in self.groups) or 'none'}", "feature_groups")


_REGISTRY: dict[str, ModelClass] = {}
_PARAM_FIELDS = {f.name for f in model_pb2.EasyRecModel.DESCRIPTOR.oneofs_by_name["model"].fields}


def register_model_class(name: str, params: str, expand: Callable | None = None, *,
                         override: bool = False):
    """Registers `expand` as the template of model_class `name`; also a decorator.

    Args:
      name: the model_class value.
      params: the EasyRecModel `oneof model` field that holds its parameters (e.g. "deepfm";
        "model_params" for a class configured like RankModel / MultiTaskModel).
      expand: (TemplateInput) -> EasyRecModel message with model_class RankModel or
        MultiTaskModel.
      override: replace an existing registration on purpose.
    """
    if params not in _PARAM_FIELDS:
        raise ConfigError(f"register_model_class({name!r}): params {params!r} is not a field "
                          f"of EasyRecModel's `oneof model`{suggest(params, _PARAM_FIELDS)}")

    def register(fn: Callable) -> Callable:
        if name in BASE_CLASSES:
            raise ConfigError(f"register_model_class: {name} is easyblocks' own model class")
        module = getattr(fn, "__module__", "") or ""
        source = "built-in" if module.startswith("easyblocks.") else f"plugin module {module}"
        old = _REGISTRY.get(name)
        if old is not None and not override and old.expand is not fn:
            raise ConfigError(f"model class {name!r} is already registered ({old.source}); "
                              "pass override=True to replace it")
        _REGISTRY[name] = ModelClass(name, params, fn, source)
        return fn

    return register(expand) if expand is not None else register


def get_model_class(name: str) -> ModelClass | None:
    _load_builtins()
    return _REGISTRY.get(name)


def registered_model_classes() -> dict[str, ModelClass]:
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def format_model_classes() -> str:
    """What `easyblocks blocks` prints after the blocks: every model class template."""
    lines = ["model classes (templates; `easyblocks validate --expand` shows what one builds):"]
    for name, mc in registered_model_classes().items():
        lines.append(f"{name:<26} {mc.source}  [{mc.params} {{}}]  {mc.summary}")
    return "\n".join(lines)


def is_known(name: str) -> bool:
    """A model class easyblocks can build now (a base class or a registered template)."""
    return name in BASE_CLASSES or get_model_class(name) is not None


_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        from easyblocks.config.templates import match, multitask, rank  # noqa: F401


# ---- expansion ---------------------------------------------------------------------------

def _feature_dims(loaded: LoadedConfig) -> dict[str, int]:
    """Feature name -> its width in a DEEP group, read as resolution reads the features
    (shared_names copies, ComboFeature, ExprFeature, pooled sequences included)."""
    from easyblocks.config.features import build_feature_specs

    return {name: spec.output_dim for name, spec in build_feature_specs(loaded).items()}


def expand(loaded: LoadedConfig) -> LoadedConfig:
    """The config with its model class expanded into RankModel / MultiTaskModel and a backbone
    (`loaded` itself when there is nothing to expand). The result's `expanded_from` names the
    template's model class (None when none applied)."""
    from easyblocks.config.templates.build import expand_relation_towers, has_relation_towers

    model = loaded.proto.model_config
    template = get_model_class(model.model_class)
    if template is None and not has_relation_towers(model):
        loaded.expanded_from = None
        return loaded
    proto = pipeline_pb2.EasyRecConfig()
    proto.CopyFrom(loaded.proto)
    out = LoadedConfig(loaded.path, loaded.text, proto)
    ctx_model = proto.model_config
    if template is not None:
        which = ctx_model.WhichOneof("model")
        where = loaded.locate(rf"\bmodel_class\s*:\s*[\"']{model.model_class}[\"']")
        if which != template.params:
            got = f"{which} {{}}" if which else "none"
            raise ConfigError(f"{where}: model_class {model.model_class} takes its parameters "
                              f"from {template.params} {{}}, got {got}")
        ctx = TemplateInput(model=ctx_model, params=getattr(ctx_model, template.params),
                            label_fields=list(proto.data_config.label_fields),
                            feature_dims=_feature_dims(out), path=loaded.path, loaded=loaded)
        result = template.expand(ctx)
        if not isinstance(result, model_pb2.EasyRecModel) or \
                result.model_class not in BASE_CLASSES:
            raise ConfigError(f"{where}: the template of model class {model.model_class} "
                              f"({template.source}) must return an EasyRecModel with model_class "
                              f"{' or '.join(BASE_CLASSES)}")
        if result is not ctx_model:
            ctx_model.CopyFrom(result)
    if has_relation_towers(ctx_model):
        expand_relation_towers(ctx_model, loaded)
    out.expanded_from = template.name if template is not None else None
    return out


def expanded_text(loaded: LoadedConfig) -> str:
    """`validate --expand`: the expanded model_config as config text (with a header)."""
    from google.protobuf import text_format

    result = expand(loaded)
    model = result.proto.model_config
    source = loaded.proto.model_config.model_class
    template = get_model_class(source)
    if template is not None:
        head = (f"# model_class {source} ({template.source} template), expanded by easyblocks "
                f"into a {model.model_class}:\n# use this model_config in place of the one in "
                f"{loaded.path} to change it\n")
    elif result is loaded:
        head = f"# model_class {source}: nothing to expand\n"
    else:
        head = (f"# {source}: the towers' dnn / relation_dnn expanded into backbone blocks\n")
    body = text_format.MessageToString(model, use_short_repeated_primitives=True)
    return head + "model_config {\n" + "".join(
        f"  {line}\n" if line else "\n" for line in body.rstrip("\n").split("\n")) + "}\n"
