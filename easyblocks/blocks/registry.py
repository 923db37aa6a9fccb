"""The one block registry: built-in blocks, plugin blocks and every keras.layers class.

A block is a Keras layer class. It is named in a config by `class_name`, and its
parameters come from a typed message (for built-ins, e.g. `mlp {}`) or from
`st_params`; both are turned into constructor kwargs by easyblocks.config.kwargs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import textwrap
from collections.abc import Iterator
from typing import Any

import keras

from easyblocks.config.kwargs import check_kwargs, dict_to_kwargs, message_to_kwargs
from easyblocks.config.specs import LayerSpec
from easyblocks.errors import ConfigError, suggest

log = logging.getLogger("easyblocks")


@dataclasses.dataclass(frozen=True)
class RegisteredBlock:
    """A registered block class and where it came from."""

    name: str
    cls: type
    # "built-in", "plugin module <module>", "plugin file <path>", "entry point <name> = <value>
    # (distribution <dist>)" or "keras.layers"
    source: str
    # name of the typed params field in the KerasLayer message (e.g. "mlp"), if any
    params_field: str | None = None
    # the registration this one replaced with override=True, if any
    overrides: str | None = None


_REGISTRY: dict[str, RegisteredBlock] = {}
# set while a plugin file or an entry point is being loaded, so that its blocks say where
# they came from (see loading_source)
_loading_source: list[str] = []


@contextlib.contextmanager
def loading_source(source: str) -> Iterator[None]:
    """Blocks registered inside this context record `source` as where they came from
    (e.g. "plugin file /path/blocks.py")."""
    _loading_source.append(source)
    try:
        yield
    finally:
        _loading_source.pop()


def is_registered_class(cls: type) -> bool:
    """Whether cls is registered under some name."""
    return any(spec.cls is cls for spec in _REGISTRY.values())


def _is_builtin(cls: type) -> bool:
    return cls.__module__ == "easyblocks" or cls.__module__.startswith("easyblocks.")


def _source_of(cls: type) -> str:
    if _is_builtin(cls):
        return "built-in"
    if _loading_source:
        return _loading_source[-1]
    return f"plugin module {cls.__module__}"


def _describe(cls: type, source: str) -> str:
    if cls.__module__.startswith("easyblocks_plugin_"):  # a .py file: the source names it
        return f"{cls.__qualname__} ({source})"
    return f"{cls.__module__}.{cls.__qualname__} ({source})"


def register_block(
    name_or_cls: str | type | None = None,
    *,
    params: str | None = None,
    override: bool = False,
) -> Any:
    """Registers a Keras layer class as a block usable by `class_name` in configs.

    Usable as `@register_block`, `@register_block("Name")` or
    `@register_block("Name", override=True)`. Its constructor's keyword arguments are the
    block's parameters (given in a config as `st_params { ... }`).

    A name that is already registered (a built-in, another plugin) or that is a
    keras.layers class is an error naming both, unless override=True: then this class
    replaces the other one in every config (logged).

    Args:
      name_or_cls: the name to register (defaults to the class name), or the class.
      params: built-ins only: the typed params field of the KerasLayer message.
      override: replace an existing registration instead of raising.
    """
    if name_or_cls is not None and not isinstance(name_or_cls, str) \
            and not inspect.isclass(name_or_cls):
        raise TypeError(f"register_block expects a name or a class, got {name_or_cls!r}")

    def decorate(cls: type, name: str | None = None) -> type:
        if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
            raise TypeError(f"register_block expects a keras.layers.Layer subclass, got {cls!r}")
        name = name or cls.__name__
        if not name.strip() or name != name.strip():
            raise ValueError(f"register_block: bad block name {name!r}")
        source = _source_of(cls)
        old = _REGISTRY.get(name)
        replaced = None
        # the same class again, or its module imported again: not a collision
        same_class = old is not None and (old.cls is cls or (
            (old.cls.__module__, old.cls.__qualname__) == (cls.__module__, cls.__qualname__)))
        if old is not None:
            if same_class:
                replaced = old.overrides
            else:
                if not override:
                    raise ConfigError(
                        f"block name {name!r} is registered twice: by "
                        f"{_describe(old.cls, old.source)} and by {_describe(cls, source)}; "
                        f"rename one (@register_block(\"OtherName\")), or pass "
                        "override=True to the registration that should win"
                    )
                replaced = _describe(old.cls, old.source)
        elif not _is_builtin(cls):
            shadowed = _keras_layer_spec(name)
            if shadowed is not None:
                if not override:
                    raise ConfigError(
                        f"block name {name!r} of {_describe(cls, source)} is the name of "
                        f"keras.layers.{name}, which configs can use by that name; rename it "
                        f"(@register_block(\"OtherName\")), or pass override=True"
                    )
                replaced = f"keras.layers.{name}"
        _REGISTRY[name] = RegisteredBlock(name=name, cls=cls, source=source, params_field=params,
                                    overrides=replaced)
        if replaced and not same_class:
            log.info("block %r: %s overrides %s", name, _describe(cls, source), replaced)
        # so that a saved Keras model finds the class by name
        keras.saving.register_keras_serializable(package="easyblocks", name=name)(cls)
        return cls

    if inspect.isclass(name_or_cls):
        return decorate(name_or_cls)
    return lambda cls: decorate(cls, name_or_cls)


def _keras_layer_spec(name: str) -> RegisteredBlock | None:
    cls = getattr(keras.layers, name, None)
    if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
        return RegisteredBlock(name=name, cls=cls, source="keras.layers")
    return None


def get_block(name: str, where: str = "") -> RegisteredBlock:
    """Returns the spec registered under name, else keras.layers.<name>; ConfigError otherwise."""
    spec = _REGISTRY.get(name) or _keras_layer_spec(name)
    if spec is None:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown class_name {name!r}{suggest(name, _REGISTRY)}; registered blocks: "
            f"{', '.join(sorted(_REGISTRY))} (and every keras.layers class); "
            "run `easyblocks blocks` for details (a block from a plugin needs the plugin "
            "loaded: `plugins: \"module\"` in the config, --plugin, or an installed entry "
            "point)"
        )
    return spec


def registered_blocks() -> list[RegisteredBlock]:
    """Every registered block (not the keras.layers fallbacks), sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def block_params(cls: type) -> list[str]:
    """The keyword arguments cls.__init__ accepts, as "name" (required) or "name=default"
    (none for a class without its own constructor: the base Layer's are not parameters)."""
    if cls.__init__ is keras.layers.Layer.__init__:
        return []
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return ["(unknown)"]
    out = []
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            continue
        out.append(name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}")
    return out


def format_blocks(specs: list[RegisteredBlock] | None = None, width: int = 100) -> str:
    """What `easyblocks blocks` prints: per block, a line with its name, source and how it
    takes parameters, then its accepted parameters, indented."""
    specs = registered_blocks() if specs is None else specs
    lines = []
    for spec in specs:
        how = f"{spec.params_field} {{}} or st_params" if spec.params_field else "st_params"
        source = spec.source + (f", overrides {spec.overrides}" if spec.overrides else "")
        lines.append(f"{spec.name:<26} {source}  [{how}]")
        params = ", ".join(block_params(spec.cls)) or "(no parameters)"
        lines.extend(textwrap.wrap(params, width=width, initial_indent="    ",
                                   subsequent_indent="      ", break_long_words=False,
                                   break_on_hyphens=False))
    lines.append("(and every keras.layers class by its name, with st_params; a parameter "
                 "without =default is required)")
    return "\n".join(lines)


def _params_message_type(spec: RegisteredBlock) -> type | None:
    if spec.params_field is None:
        return None
    from easyblocks.protos import backbone_pb2

    field = backbone_pb2.KerasLayer.DESCRIPTOR.fields_by_name[spec.params_field]
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(field.message_type)


def layer_kwargs(layer: LayerSpec, spec: RegisteredBlock, where: str) -> dict[str, Any]:
    """Constructor kwargs of a configured layer (typed params, st_params or none)."""
    message_type = _params_message_type(spec)
    if layer.params_field is None:
        kwargs: dict[str, Any] = {}
        if message_type is not None:
            kwargs = message_to_kwargs(message_type())
    elif layer.params_field == "st_params":
        kwargs = dict_to_kwargs(layer.params, message_type, where)
    else:
        if layer.params_field != spec.params_field:
            expected = f"`{spec.params_field} {{}}` or `st_params {{}}`" if spec.params_field \
                else "`st_params {}`"
            raise ConfigError(
                f"{where}: `{layer.params_field} {{}}` parameters do not belong to class_name "
                f"{spec.name!r}; use {expected}"
            )
        kwargs = dict(layer.params)
    if spec.name != spec.cls.__name__:  # so that the error names the class_name too
        where = f"{where}: class_name {spec.name!r} ({spec.cls.__module__}." \
            f"{spec.cls.__qualname__})"
    check_kwargs(spec.cls, kwargs, where)
    return kwargs


def create_layer(layer: LayerSpec, name: str, where: str) -> keras.layers.Layer:
    """Instantiates a configured layer, named `name`."""
    spec = get_block(layer.class_name, where)
    kwargs = layer_kwargs(layer, spec, where)
    try:
        return spec.cls(name=name, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot create {spec.name}: {e}") from e
    except Exception as e:  # a plugin's constructor failing is the plugin's error, not ours
        if spec.source in ("built-in", "keras.layers"):
            raise
        raise ConfigError(f"{where}: cannot create {spec.name} "
                          f"({_describe(spec.cls, spec.source)}): {type(e).__name__}: {e}"
                          ) from e
