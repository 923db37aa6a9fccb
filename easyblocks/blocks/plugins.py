"""Loading plugin modules that register blocks: from the config, the CLI, entry points.

Three routes, all equivalent (each just imports a module whose `@register_block`
decorators run):

- the config's `plugins: "my_team.blocks"` (repeated; module names only: a config runs no
  file of its own unless the command line passes --allow-config-plugins);
- the command line's `--plugin my_team.blocks` or `--plugin path/to/blocks.py` (repeatable);
- an installed distribution's entry point in the group `easyblocks.blocks`, found
  automatically, e.g. in its pyproject.toml:
  `[project.entry-points."easyblocks.blocks"] my_blocks = "my_team.blocks"`.
  The entry point names a module, or a Keras layer class (`"my_team.blocks:Gated"`),
  which is registered under the entry point's name unless its module registers it.

A plugin that fails to import is reported as that (the plugin, the original error and
where it was raised), never as an unknown class_name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from importlib import metadata

from easyblocks.blocks import registry
from easyblocks.errors import ConfigError

ENTRY_POINT_GROUP = "easyblocks.blocks"
# entry points loaded in this process, by (distribution, name, value)
_loaded_entry_points: set[tuple[str, str, str]] = set()
_HERE = os.path.abspath(__file__)


def _is_path(name: str) -> bool:
    return name.endswith(".py") or os.sep in name or bool(os.altsep and os.altsep in name)


def _package_root(module: str) -> str | None:
    """The folder (or file) of module's top-level package, if it can be found."""
    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return os.path.abspath(list(spec.submodule_search_locations)[0])
    return os.path.abspath(spec.origin) if spec.origin else None


def _raised_at(e: BaseException, root: str | None) -> str:
    """' (at file:line)': the innermost frame of e's traceback inside the plugin (root: its
    file or package folder), else the innermost one outside importlib; '' if none."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.startswith("<") and os.path.abspath(f.filename) != _HERE
              and "importlib" not in f.filename.replace("\\", "/").split("/")]
    if root:
        mine = [f for f in frames if os.path.abspath(f.filename) == root
                or os.path.abspath(f.filename).startswith(root + os.sep)]
        frames = mine or frames
    if isinstance(e, SyntaxError):  # the message already says where
        return ""
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _error(what: str, verb: str, e: BaseException, root: str | None,
           hint: str = "") -> ConfigError:
    return ConfigError(f"{what} failed to {verb}: {type(e).__name__}: {e}"
                       f"{_raised_at(e, root)}{hint}")


def _load_file(path: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f"plugin file not found: {path}")
    path = os.path.abspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    # one module per file: two files named blocks.py are two plugins
    mod_name = f"easyblocks_plugin_{stem}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugin file {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    with registry.loading_source(f"plugin file {path}"):
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]
            raise


def load_plugin(name: str) -> None:
    """Imports a module by dotted name, or a .py file by path (relative to the current
    directory); ConfigError naming the plugin and the original error on failure."""
    name = name.strip()
    if not name:
        raise ConfigError("empty plugin name")
    try:
        if _is_path(name):
            _load_file(name)
        else:
            importlib.import_module(name)
    except ConfigError:  # e.g. a block name registered twice: already names both
        raise
    except SystemExit as e:  # a plugin must not end the process
        root = os.path.abspath(name) if _is_path(name) else _package_root(name)
        raise ConfigError(f"plugin {name!r} called sys.exit({e.code!r}) while being imported"
                          f"{_raised_at(e, root)}; a plugin module defines and registers "
                          "blocks, it must not exit") from e
    except Exception as e:  # report the plugin's own error, not "unknown class_name"
        hint = ""
        if isinstance(e, ModuleNotFoundError) and e.name and \
                (name == e.name or name.startswith(e.name + ".")):
            hint = ("; is the package installed, or its folder on PYTHONPATH? (or give the "
                    "path of a .py file)")
        root = os.path.abspath(name) if _is_path(name) else _package_root(name)
        raise _error(f"plugin {name!r}", "import", e, root, hint) from e


def _entry_points() -> list:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_entry_points() -> None:
    """Imports every installed distribution's `easyblocks.blocks` entry point that is not
    loaded yet (so a distribution that appears on sys.path later is found too)."""
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        dist_name = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"
        key = (dist_name, ep.name, ep.value)
        if key in _loaded_entry_points:
            continue
        source = f"entry point {ep.name} = {ep.value} (distribution {dist_name})"
        with registry.loading_source(source):
            try:
                obj = ep.load()
                if inspect.isclass(obj) and not registry.is_registered_class(obj):
                    registry.register_block(ep.name)(obj)
            except ConfigError:
                raise
            except (Exception, SystemExit) as e:
                raise _error(
                    f"plugin entry point {ep.name!r} = {ep.value!r} (group "
                    f"{ENTRY_POINT_GROUP}, distribution {dist_name})", "load", e,
                    _package_root(ep.module), "; fix or uninstall that distribution") from e
        _loaded_entry_points.add(key)


def load_plugins(names: list[str]) -> None:
    """Loads the installed entry points, then each named plugin (module or .py file)."""
    load_entry_points()
    for name in dict.fromkeys(names):
        load_plugin(name)
