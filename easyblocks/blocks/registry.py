"""The one block registry: built-in blocks, plugin blocks and every keras.layers class.

A block is a Keras layer class. It is named in a config by `class_name`, and its
parameters come from a typed message (for built-ins, e.g. `mlp {}`) or from
`st_params`; both are turned into constructor kwargs by easyblocks.config.kwargs.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import keras

from easyblocks.config.kwargs import check_kwargs, message_to_kwargs, struct_to_kwargs
from easyblocks.errors import ConfigError, suggest


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A registered block class and where it came from."""

    name: str
    cls: type
    source: str
    # name of the typed params field in the KerasLayer message (e.g. "mlp"), if any
    params_field: str | None = None


_REGISTRY: dict[str, BlockSpec] = {}
# set while an entry point is being loaded, so its blocks say where they came from
_loading_source: list[str] = []


def _source_of(cls: type) -> str:
    if _loading_source:
        return _loading_source[-1]
    module = cls.__module__
    if module.startswith("easyblocks.") and not module.startswith("easyblocks_plugin"):
        return "built-in"
    return f"plugin module {module}"


def register_block(
    name_or_cls: str | type | None = None,
    *,
    params: str | None = None,
    override: bool = False,
) -> Any:
    """Registers a Keras layer class as a block usable by `class_name` in configs.

    Usable as `@register_block`, `@register_block("Name")` or
    `@register_block("Name", override=True)`.

    Args:
      name_or_cls: the name to register (defaults to the class name), or the class.
      params: built-ins only: the typed params field of the KerasLayer message.
      override: replace an existing registration instead of raising.
    """

    def decorate(cls: type, name: str | None = None) -> type:
        if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
            raise TypeError(f"register_block expects a keras.layers.Layer subclass, got {cls!r}")
        name = name or cls.__name__
        spec = BlockSpec(name=name, cls=cls, source=_source_of(cls), params_field=params)
        old = _REGISTRY.get(name)
        if old is not None and old.cls is not cls and not override:
            raise ConfigError(
                f"block name {name!r} is registered twice: by {old.cls.__module__}."
                f"{old.cls.__qualname__} ({old.source}) and by {cls.__module__}."
                f"{cls.__qualname__} ({spec.source}); rename one, or pass override=True"
            )
        _REGISTRY[name] = spec
        # so that a saved Keras model finds the class by name
        keras.saving.register_keras_serializable(package="easyblocks", name=name)(cls)
        return cls

    if inspect.isclass(name_or_cls):
        return decorate(name_or_cls)
    return lambda cls: decorate(cls, name_or_cls)


def _keras_layer_spec(name: str) -> BlockSpec | None:
    cls = getattr(keras.layers, name, None)
    if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
        return BlockSpec(name=name, cls=cls, source="keras.layers")
    return None


def get_block(name: str, where: str = "") -> BlockSpec:
    """Returns the spec registered under name, else keras.layers.<name>; ConfigError otherwise."""
    spec = _REGISTRY.get(name) or _keras_layer_spec(name)
    if spec is None:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown class_name {name!r}{suggest(name, _REGISTRY)}; registered blocks: "
            f"{', '.join(sorted(_REGISTRY))} (and every keras.layers class); "
            "run `easyblocks blocks` for details"
        )
    return spec


def registered_blocks() -> list[BlockSpec]:
    """Every registered block (not the keras.layers fallbacks), sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _params_message_type(spec: BlockSpec) -> type | None:
    if spec.params_field is None:
        return None
    from easyblocks.protos import backbone_pb2

    field = backbone_pb2.KerasLayer.DESCRIPTOR.fields_by_name[spec.params_field]
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(field.message_type)


def layer_kwargs(keras_layer_proto: Any, spec: BlockSpec, where: str) -> dict[str, Any]:
    """Constructor kwargs for a KerasLayer message (typed params or st_params)."""
    which = keras_layer_proto.WhichOneof("params")
    if which is None:
        kwargs: dict[str, Any] = {}
        if spec.params_field is not None:
            kwargs = message_to_kwargs(_params_message_type(spec)())
    elif which == "st_params":
        kwargs = struct_to_kwargs(keras_layer_proto.st_params, _params_message_type(spec), where)
    else:
        if which != spec.params_field:
            expected = f"`{spec.params_field} {{}}` or `st_params {{}}`" if spec.params_field \
                else "`st_params {}`"
            raise ConfigError(
                f"{where}: `{which} {{}}` parameters do not belong to class_name "
                f"{spec.name!r}; use {expected}"
            )
        kwargs = message_to_kwargs(getattr(keras_layer_proto, which))
    check_kwargs(spec.cls, kwargs, where)
    return kwargs


def create_layer(keras_layer_proto: Any, name: str, where: str) -> keras.layers.Layer:
    """Instantiates the block a KerasLayer message describes, named `name`."""
    spec = get_block(keras_layer_proto.class_name, where)
    kwargs = layer_kwargs(keras_layer_proto, spec, where)
    try:
        return spec.cls(name=name, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot create {spec.name}: {e}") from None


