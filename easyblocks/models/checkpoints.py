"""What a checkpoint holds and how it is found: stable variable names, the model's layout,
and the newest readable checkpoint of a model_dir.

Variables are keyed by names derived from the config (the table, block and tower names,
then each layer's own sub-layers), never by position and never by Keras' per-process
numbering of auto-named objects ("dense_3", "seed_generator_7"): two builds of one config
give the same keys, and a checkpoint of another config does not load into this one. Each
checkpoint also stores the model's layout (features, groups, towers, variables and their
shapes); a restore first compares it with this config's and names the first difference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable

from easyblocks.config.specs import PipelineSpec
from easyblocks.errors import ConfigError, DataError
from easyblocks.files import atomic_file

log = logging.getLogger("easyblocks")

LAYOUT_FORMAT = 1
_CKPT = re.compile(r"^ckpt-(\d+)\.index$")
STATE_FILE = "checkpoint"  # TensorFlow's checkpoint state file in model_dir


# ---- stable names -------------------------------------------------------------------------

def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _auto_named(layer) -> bool:
    """Whether a layer's name looks like Keras' automatic one ("dense", "dense_3")."""
    return re.fullmatch(rf"{re.escape(_snake(type(layer).__name__))}(_\d+)?", layer.name) \
        is not None


def _unique(names: list[str]) -> list[str]:
    """Appends "#k" to the second, third, ... occurrence of a name."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}#{k}")
    return out


def variable_keys(root, explicit: set[int] = frozenset()) -> list[tuple[str, object]]:
    """(stable key, variable) for every variable of a Keras layer tree, in tree order.

    A sub-layer is named by its own name when that name was given (`explicit`: the ids of
    layers named after the config, e.g. blocks; or a name that is not Keras' automatic one),
    else by its class and its rank among its siblings of that class ("dropout#1"); a seed
    generator by its rank in its layer. A layer reachable twice (a package called from two
    blocks) is named where it is first reached.
    """
    out: list[tuple[str, object]] = []
    seen_layers: set[int] = set()
    seen_vars: set[int] = set()

    def walk(layer, prefix: str) -> None:
        own = list(layer._trainable_variables) + list(layer._non_trainable_variables)
        for name, v in zip(_unique([v.name for v in own]), own):
            if id(v) not in seen_vars:
                seen_vars.add(id(v))
                out.append((f"{prefix}{name}", v))
        generators = list(layer._seed_generators)
        for i, gen in enumerate(generators):
            if id(gen.state) not in seen_vars:
                seen_vars.add(id(gen.state))
                tag = "seed_generator" if len(generators) == 1 else f"seed_generator#{i}"
                out.append((f"{prefix}{tag}/state", gen.state))
        children = [c for c in layer._layers if id(c) not in seen_layers]
        seen_layers.update(id(c) for c in children)
        counts: dict[str, int] = {}
        names = []
        for c in children:
            if id(c) in explicit or not _auto_named(c):
                names.append(c.name)
            else:
                base = _snake(type(c).__name__)
                names.append(f"{base}#{counts.get(base, 0)}")
                counts[base] = counts.get(base, 0) + 1
        for c, name in zip(children, _unique(names)):
            walk(c, f"{prefix}{name}/")

    seen_layers.add(id(root))
    walk(root, "")
    missing = [v for v in root.variables if id(v) not in seen_vars]
    for i, v in enumerate(missing):  # not reached through Keras' tracking: by position
        out.append((f"untracked#{i}", v))
    if missing:
        log.warning("%d variable(s) are not tracked as a layer's weights (%s); they are "
                    "checkpointed by position", len(missing), ", ".join(v.path for v in missing))
    return out


def checkpoint_key(key: str) -> str:
    """The name of a model variable's tensor in a checkpoint file, from its stable key
    (TensorFlow escapes "." as ".." and "/" as ".S" in object names)."""
    escaped = key.replace(".", "..").replace("/", ".S")
    return f"model/by_name/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


# ---- layout -------------------------------------------------------------------------------

def _digest(values) -> str:
    return hashlib.sha1(json.dumps(list(values)).encode()).hexdigest()[:12]


def model_layout(spec: PipelineSpec, keyed: list[tuple[str, object]]) -> dict:
    """What a checkpoint must match: each feature's column, kind and table (and a digest of
    its vocabulary or boundaries), each group's features in order, the towers and every
    variable's key and shape."""
    features = {}
    for f in spec.features.values():
        features[f.name] = {
            "column": f.column, "kind": f.kind, "table": f.table, "rows": f.num_ids,
            "dim": f.embedding_dim, "ids": _digest(f.vocab_list or f.boundaries)}
    return {
        "format": LAYOUT_FORMAT,
        "features": features,
        "groups": {g.name: {"features": list(g.features), "wide": g.wide}
                   for g in spec.groups.values()},
        "towers": {t.name: t.label for t in spec.towers},
        "variables": [[key, list(v.shape)] for key, v in keyed],
    }


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def layout_difference(saved: dict, current: dict) -> str | None:
    """The first difference between a checkpoint's layout and this config's, in words;
    None when they match."""
    if saved.get("format") != LAYOUT_FORMAT:
        return f"its layout has format {saved.get('format')!r}, this easyblocks writes " \
            f"{LAYOUT_FORMAT}"
    saved_vars = {k: s for k, s in saved["variables"]}
    current_vars = {k: s for k, s in current["variables"]}
    for key, shape in current["variables"]:
        if key not in saved_vars:
            others = [k for k in saved_vars if k not in current_vars]
            hint = f" (the checkpoint has {others[0]!r} instead)" if others else ""
            return f"variable {key!r} ({_shape(shape)}) of this config is not in the " \
                f"checkpoint{hint}"
        if saved_vars[key] != shape:
            return f"variable {key!r} is {_shape(saved_vars[key])} in the checkpoint, " \
                f"{_shape(shape)} in this config"
    for key, shape in saved["variables"]:
        if key not in current_vars:
            return f"the checkpoint has variable {key!r} ({_shape(shape)}), which this " \
                "config does not"
    for name, f in current["features"].items():
        old = saved["features"].get(name)
        if old is None:
            return f"feature {name!r} is not in the checkpoint"
        for attr, value in f.items():
            if old.get(attr) != value:
                what = "vocabulary or boundaries" if attr == "ids" else attr
                return f"feature {name!r}: its {what} differs ({old.get(attr)!r} in the " \
                    f"checkpoint, {value!r} in this config)"
    for name in saved["features"]:
        if name not in current["features"]:
            return f"the checkpoint has feature {name!r}, which this config does not"
    for name, g in current["groups"].items():
        old = saved["groups"].get(name)
        if old != g:
            was = "no such group" if old is None else ", ".join(old["features"])
            return f"feature group {name!r} is [{', '.join(g['features'])}] in this config, " \
                f"[{was}] in the checkpoint"
    if saved["towers"] != current["towers"]:
        return f"towers {saved['towers']} in the checkpoint, {current['towers']} in this config"
    return None


def check_layout(path: str, saved_text: str | None, current: dict) -> None:
    """ConfigError when a checkpoint's layout (None: the checkpoint has none) differs from
    this config's, naming the first difference."""
    if saved_text is None:
        raise ConfigError(f"checkpoint {path} does not fit this config: it has no layout "
                          "(written by an older easyblocks, whose checkpoints keyed variables "
                          "by position); train this config in a new model_dir")
    difference = layout_difference(json.loads(saved_text), current)
    if difference:
        raise ConfigError(f"checkpoint {path} does not fit this config: {difference}. It was "
                          "written by another config: train this one in a new model_dir (or "
                          "use the config that wrote it)")


# ---- finding checkpoints ------------------------------------------------------------------

def checkpoints_on_disk(model_dir: str) -> list[tuple[int, str]]:
    """(step, prefix) of every ckpt-N in model_dir that has its index file, oldest first."""
    if not os.path.isdir(model_dir):
        return []
    found = []
    for name in os.listdir(model_dir):
        m = _CKPT.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(model_dir, f"ckpt-{m.group(1)}")))
    return sorted(found)


def _state_latest(model_dir: str) -> tuple[str | None, bool]:
    """(the latest checkpoint the state file names, whether the file is readable)."""
    path = os.path.join(model_dir, STATE_FILE)
    if not os.path.exists(path):
        return None, True
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None, False
    m = re.search(r'^model_checkpoint_path:\s*"([^"\n]*)"\s*$', text, re.M)
    entries = re.findall(r'^\s*(\w+)\s*:', text, re.M)
    known = {"model_checkpoint_path", "all_model_checkpoint_paths",
             "all_model_checkpoint_timestamps", "last_preserved_timestamp"}
    if m is None or any(e not in known for e in entries):
        return None, False
    latest = m.group(1)
    if not os.path.isabs(latest):
        latest = os.path.join(model_dir, latest)
    return latest, True


def repair_state(model_dir: str) -> None:
    """Makes model_dir's checkpoint state file name the checkpoints on disk when it is
    unreadable (garbage) or names a checkpoint that is missing: the unreadable file is kept
    as `checkpoint.unreadable-<time>`, and a warning says so. Otherwise TensorFlow would see
    no checkpoint, train from step 0 and overwrite the existing ones."""
    latest, readable = _state_latest(model_dir)
    on_disk = checkpoints_on_disk(model_dir)
    if readable and (latest is None or os.path.exists(latest + ".index")):
        if latest is not None or not on_disk:
            return
    path = os.path.join(model_dir, STATE_FILE)
    if os.path.exists(path) and not readable:
        kept = f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while os.path.lexists(kept):  # never over an earlier kept file
            n += 1
            kept = f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
        os.replace(path, kept)
        log.warning("%s: the checkpoint state file is unreadable (kept as %s); rebuilt from "
                    "the checkpoints on disk: %s", model_dir, os.path.basename(kept),
                    ", ".join(os.path.basename(p) for _, p in on_disk) or "none")
    elif latest is not None:
        log.warning("%s: the checkpoint state file names %s, which is missing; rebuilt from "
                    "the checkpoints on disk: %s", model_dir, os.path.basename(latest),
                    ", ".join(os.path.basename(p) for _, p in on_disk) or "none")
    elif on_disk:
        log.warning("%s: checkpoints without a state file; rebuilt it from the checkpoints "
                    "on disk: %s", model_dir, ", ".join(os.path.basename(p) for _, p in on_disk))
    if not on_disk:
        return
    lines = [f'model_checkpoint_path: "{os.path.basename(on_disk[-1][1])}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for _, p in on_disk]
    with atomic_file(path) as f:
        f.write("\n".join(lines) + "\n")


def restore_newest_readable(model_dir: str, restore: Callable[[str], None]) -> str | None:
    """Restores the newest checkpoint of model_dir that can be read, with `restore(path)`;
    returns its path, or None when model_dir has no checkpoint.

    A checkpoint that fails to read (truncated, corrupt) is skipped with a warning and the
    next older one is tried; a ConfigError (the checkpoint does not fit the config) is
    raised at once. When checkpoints exist but none can be read, DataError: training from
    step 0 would overwrite them.
    """
    latest, _ = _state_latest(model_dir)
    candidates = [p for _, p in reversed(checkpoints_on_disk(model_dir))]
    if latest is not None and os.path.exists(latest + ".index"):
        candidates = [latest] + [p for p in candidates if p != latest]
    failures = []
    for path in candidates:
        try:
            restore(path)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001  (any failure to read: try an older one)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            failures.append(f"{os.path.basename(path)} ({type(e).__name__}: {reason[:200]})")
            log.warning("cannot read checkpoint %s (%s: %s); trying an older one", path,
                        type(e).__name__, reason[:200])
            continue
        if failures:
            log.warning("restored %s, the newest readable checkpoint; unreadable: %s", path,
                        "; ".join(failures))
        return path
    if failures:
        raise DataError(f"{model_dir}: none of its checkpoints can be read: "
                        f"{'; '.join(failures)}. Move them away (or use another model_dir) to "
                        "train from step 0")
    return None
