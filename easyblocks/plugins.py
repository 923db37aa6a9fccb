"""Loading plugin modules that register blocks: from the config, the CLI, entry points."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib import metadata

from easyblocks.blocks import registry
from easyblocks.errors import ConfigError

ENTRY_POINT_GROUP = "easyblocks.blocks"
_loaded_entry_points = False


def load_plugin(name: str) -> None:
    """Imports a module by dotted name, or a .py file by path; ConfigError on failure."""
    try:
        if name.endswith(".py") or os.sep in name:
            if not os.path.isfile(name):
                raise ConfigError(f"plugin file not found: {name}")
            mod_name = "easyblocks_plugin_" + os.path.splitext(os.path.basename(name))[0]
            if mod_name in sys.modules:
                return
            spec = importlib.util.spec_from_file_location(mod_name, name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_name]
                raise
        else:
            importlib.import_module(name)
    except ConfigError:
        raise
    except Exception as e:  # report the plugin's own error, not "unknown class_name"
        raise ConfigError(f"plugin {name!r} failed to import: {type(e).__name__}: {e}") from None


def load_entry_points() -> None:
    """Imports every installed distribution's `easyblocks.blocks` entry point (once)."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        registry._loading_source.append(f"entry point {ep.name} ({ep.value})")
        try:
            ep.load()
        except Exception as e:
            raise ConfigError(f"entry point {ep.name!r} ({ep.value}) of group "
                              f"{ENTRY_POINT_GROUP} failed to load: {type(e).__name__}: {e}"
                              ) from None
        finally:
            registry._loading_source.pop()


def load_plugins(names: list[str]) -> None:
    load_entry_points()
    for name in names:
        load_plugin(name)
