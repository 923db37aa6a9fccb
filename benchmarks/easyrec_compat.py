"""EasyRec's own configs through `easyblocks validate`, unchanged; writes docs/easyrec.md.

Reads every .config in EasyRec's `examples/configs` and `samples/model_config`, from a
checkout or straight from a bare git mirror (`git show`), writes each to a temporary
file (EasyRec's files are never copied into this repository) and validates it in this
process exactly as `easyblocks validate` does (parse, field table, feature and backbone
checks, the model built on a synthetic batch: no data file is read). docs/easyrec.md
gets the field table (from easyblocks/config/easyrec_fields.py) and the measured
section: how many configs validate unchanged, the first error of every other one grouped
by reason, and every refused field over all configs (`validate --explain`).

    python benchmarks/easyrec_compat.py --easyrec /work/.mirror/alibaba+EasyRec/repo
    python benchmarks/easyrec_compat.py            # the field table only
    python benchmarks/easyrec_compat.py --smoke    # CI: three small configs of our own
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from easyblocks.config import easyrec_fields  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "easyrec.md")
FOLDERS = ("examples/configs", "samples/model_config")
TABLE_BEGIN, TABLE_END = "<!-- field table: begin -->", "<!-- field table: end -->"
MEASURED_BEGIN, MEASURED_END = "<!-- measured: begin -->", "<!-- measured: end -->"

# used only when docs/easyrec.md does not exist yet; the prose there is edited by hand
INTRO = "# EasyRec configs in easyblocks\n"

# --smoke: a tiny EasyRec-style folder written here (our own configs in EasyRec's language,
# nothing of EasyRec's): one that validates, one with a refused field, one that does not parse
_SMOKE_INPUTS = """
train_input_path: "train.csv"
eval_input_path: "test.csv"
train_config { optimizer_config { adam_optimizer { learning_rate {
  constant_learning_rate { learning_rate: 0.001 } } } } num_steps: 10 }
eval_config { metrics_set { auc {} } }
data_config {
  batch_size: 32
  input_fields { input_name: "label" input_type: INT32 }
  input_fields { input_name: "user" input_type: STRING }
  input_fields { input_name: "item" input_type: STRING }
  label_fields: "label"%s
}
feature_config {
  features { input_names: "user" feature_type: IdFeature embedding_dim: 4 hash_bucket_size: 50 }
  features { input_names: "item" feature_type: IdFeature embedding_dim: 4 hash_bucket_size: 50 }
}
"""
_SMOKE_DEEPFM = """model_config {
  model_class: "DeepFM"
  feature_groups { group_name: "wide" feature_names: ["user", "item"] wide_deep: WIDE }
  feature_groups { group_name: "deep" feature_names: ["user", "item"] wide_deep: DEEP }
  deepfm { dnn { hidden_units: [8] } final_dnn { hidden_units: [4] } wide_output_dim: 2 }
}
"""
SMOKE_CONFIGS = {
    "examples/configs/deepfm_smoke.config": _SMOKE_INPUTS % "" + _SMOKE_DEEPFM,
    "samples/model_config/deepfm_label_dim_smoke.config":
        _SMOKE_INPUTS % "\n  label_dim: 2" + _SMOKE_DEEPFM,
    "examples/configs/unparsable_smoke.config": "model_config { model_class: \"DeepFM\"\n",
}


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True).stdout


def easyrec_configs(path: str) -> tuple[str, list[tuple[str, str]]]:
    """(where they came from, [(relative path, text)]) for every config in FOLDERS."""
    is_git = subprocess.run(["git", "-C", path, "rev-parse", "--git-dir"],
                            capture_output=True).returncode == 0
    out = []
    if is_git and not os.path.isdir(os.path.join(path, FOLDERS[0])):  # a bare mirror
        commit = _git(path, "rev-parse", "HEAD").strip()
        names = _git(path, "ls-tree", "-r", "--name-only", "HEAD", *FOLDERS).split()
        for name in sorted(n for n in names if n.endswith(".config")):
            out.append((name, _git(path, "show", f"HEAD:{name}")))
        return f"EasyRec at commit {commit[:12]} (git mirror)", out
    for folder in FOLDERS:
        base = os.path.join(path, folder)
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.endswith(".config"):
                    full = os.path.join(dirpath, f)
                    with open(full, encoding="utf-8") as fh:
                        out.append((os.path.relpath(full, path), fh.read()))
    commit = _git(path, "rev-parse", "HEAD").strip()[:12] if is_git else "unknown"
    return f"EasyRec checkout {path} (commit {commit})", sorted(out)


def _reason(message: str, path: str) -> str:
    """An error message without its location, for grouping: 'file:line[:col]: ' and the
    refused field's path go; quoted names of the user's own things become '…'."""
    message = message.replace(path, "<config>")
    message = re.sub(r"^<config>(:\d+)*:\s*", "", message)
    message = re.sub(r" \(and \d+ more: .*\)$", "", message)
    m = re.match(r"^[\w.\[\]]+( = \S+)?: (.*)$", message)
    if m and not message.startswith(("block ", "tower ", "feature ")):
        return m.group(2)  # a refused field: its reason
    message = re.sub(r"; registered blocks: .*", "", message)
    message = re.sub(r"^block '[^']*'", "block '…'", message)
    if "unknown class_name" not in message:
        message = re.sub(r"'[^']*'", "'…'", message)
    return re.sub(r"\(did you mean: [^)]*\)", "(did you mean: …)", message)


def measure(configs: list[tuple[str, str]]) -> list[dict]:
    """Validates every config as `easyblocks validate` does; one result dict per config."""
    import keras

    from easyblocks import api
    from easyblocks.cli import one_line
    from easyblocks.config import easyrec_check
    from easyblocks.config.loader import load_config
    from easyblocks.errors import EasyblocksError

    logging.getLogger("easyblocks").setLevel(logging.ERROR)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, text) in enumerate(configs):
            path = os.path.join(tmp, os.path.basename(name))
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            result = {"name": name, "ok": False, "error": "", "refused": []}
            try:
                loaded = load_config(path)
                result["refused"] = sorted({
                    f.reason for f in easyrec_check.check_fields(loaded)
                    if f.state == easyrec_fields.REFUSED})
                api.validate_config(path)
                result["ok"] = True
            except EasyblocksError as e:
                result["error"] = _reason(one_line(e), path)
            except Exception as e:  # an internal error: reported as such
                result["error"] = f"internal error: {type(e).__name__}: " + \
                    _reason(one_line(e), path)
            keras.backend.clear_session()
            print(f"[{i + 1}/{len(configs)}] {name}: {'OK' if result['ok'] else result['error']}",
                  file=sys.stderr, flush=True)
            results.append(result)
    return results


def _input_or_class(reason: str) -> bool:
    return reason.startswith(easyrec_fields.NOT_HERE) or "is not available yet (" \
        f"{easyrec_fields.ZOO})" in reason or reason.endswith(f"({easyrec_fields.ZOO})") or \
        reason.startswith("model_class ") and " is not available yet: " in reason


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def measured_section(source: str, results: list[dict]) -> str:
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    lines = [f"Measured on {source}: every `.config` in `{'` and `'.join(FOLDERS)}`, "
             "validated unchanged (`python benchmarks/easyrec_compat.py --easyrec PATH`).", "",
             f"**{len(ok)} of {len(results)} validate unchanged.**", ""]
    only = [r for r in failed if r["refused"] and all(_input_or_class(x) for x in r["refused"])
            and _input_or_class(r["error"])]
    lines += [f"{len(only)} more fail only on an input source not available here or a model "
              "class the model zoo has not added yet (their error line says so).", ""]
    if ok:
        lines += ["Validate unchanged: " + ", ".join(f"`{r['name']}`" for r in ok) + ".", ""]
    lines += ["### First error of each other config, by reason", "",
              "| configs | reason (the error line without its location) | files |",
              "|---:|---|---|"]
    groups = collections.defaultdict(list)
    for r in failed:
        groups[r["error"]].append(r["name"])
    for reason, names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        files = ", ".join(os.path.basename(n) for n in sorted(names))
        lines.append(f"| {len(names)} | {_cell(reason)} | {files} |")
    counts = collections.Counter(x for r in results for x in r["refused"])
    lines += ["", "### Every refused field, over all configs (`validate --explain`)", "",
              "A config can have several; configs that do not parse (block parameters of the "
              "model zoo) are not counted here.", "",
              "| configs | reason |", "|---:|---|"]
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {n} | {_cell(reason)} |")
    return "\n".join(lines)


def _replace(doc: str, begin: str, end: str, body: str) -> str:
    block = f"{begin}\n{body}\n{end}"
    if begin in doc:
        return doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    return doc.rstrip("\n") + "\n\n" + block + "\n"


def write_smoke_configs(folder: str) -> str:
    for name, text in SMOKE_CONFIGS.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return folder


def write_doc(measured: str | None, out: str = DOC) -> None:
    """Updates the field table and (with measured) the measured section of out (docs/easyrec.md
    by default; a new file starts from INTRO)."""
    doc = INTRO
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            doc = f.read()
    doc = _replace(doc, TABLE_BEGIN, TABLE_END,
                   "## Field states\n\n" + easyrec_fields.markdown_table())
    if measured is not None:
        doc = _replace(doc, MEASURED_BEGIN, MEASURED_END,
                       "## EasyRec's own configs\n\n" + measured)
    elif MEASURED_BEGIN not in doc:
        doc = _replace(doc, MEASURED_BEGIN, MEASURED_END, "## EasyRec's own configs\n\n"
                       "Not measured yet: run with `--easyrec PATH`.")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(doc)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--easyrec", help="EasyRec checkout or bare git mirror; without it only "
                   "the field table is regenerated")
    p.add_argument("--limit", type=int, default=0, help="only the first N configs (a check)")
    p.add_argument("--out", default=DOC, help="the document to update (default docs/easyrec.md)")
    p.add_argument("--smoke", action="store_true",
                   help="CI: without --easyrec, a folder of three small EasyRec-style configs "
                        "of our own; the document goes to a temporary file unless --out")
    args = p.parse_args(argv[1:])
    tmp = None
    if args.smoke:
        tmp = tempfile.mkdtemp(prefix="easyrec_compat_")
        if not args.easyrec:
            args.easyrec = write_smoke_configs(os.path.join(tmp, "easyrec"))
        given = any(a == "--out" or a.startswith("--out=") for a in argv[1:])
        args.out = args.out if given else os.path.join(tmp, "easyrec.md")
    measured = None
    if args.easyrec:
        source, configs = easyrec_configs(args.easyrec)
        if args.limit:
            configs = configs[:args.limit]
        results = measure(configs)
        measured = measured_section(source, results)
        ok = sum(r["ok"] for r in results)
        print(f"{ok} of {len(results)} validate unchanged", file=sys.stderr)
    write_doc(measured, args.out)
    if tmp:
        shutil.rmtree(os.path.join(tmp, "easyrec"), ignore_errors=True)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
