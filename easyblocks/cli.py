"""The `easyblocks` command: train, evaluate, export, predict, validate, graph, blocks.

Errors caused by the input (config, data, plugins) are printed as one line and
exit with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="easyblocks", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, config=True):
        if config:
            sp.add_argument("--config", required=True, help="the .config file")
            sp.add_argument("--model_dir", help="overrides model_dir of the config")
        sp.add_argument("--plugin", action="append", default=[],
                        help="module or .py file registering blocks (repeatable)")
        sp.add_argument("--debug", action="store_true", help="show tracebacks")
        if config:
            sp.add_argument("--set", action="append", default=[], dest="overrides",
                            metavar="TEXT", help="config text merged into the config, e.g. "
                            "'train_config { seed: 3 }' (repeatable)")

    t = sub.add_parser("train", help="train (resuming from model_dir), then evaluate")
    common(t)
    t.add_argument("--num_steps", type=int, help="overrides train_config.num_steps")
    e = sub.add_parser("evaluate", help="evaluate the latest checkpoint in model_dir")
    common(e)
    e.add_argument("--checkpoint", help="a checkpoint path instead of the latest")
    x = sub.add_parser("export", help="export the latest checkpoint as a SavedModel")
    common(x)
    x.add_argument("--export_dir", help="default: export_config.export_dir or model_dir/export")
    x.add_argument("--checkpoint", help="a checkpoint path instead of the latest")
    x.add_argument("--block", action="append", default=[], dest="blocks",
                   help="export this backbone block's output instead of the towers, from the "
                   "columns it needs alone (repeatable; e.g. a two-tower model's user tower)")
    p_ = sub.add_parser("predict", help="score a CSV file (labels not required)")
    common(p_)
    p_.add_argument("--input", required=True, help="CSV rows in the config's column layout")
    p_.add_argument("--output", required=True, help="CSV of kept columns and probs_<tower>")
    p_.add_argument("--keep", default="", help="comma-separated columns to copy (e.g. user_id)")
    p_.add_argument("--export_dir", help="score with this SavedModel instead of a checkpoint")
    v = sub.add_parser("validate", help="check a config and print its blocks and towers")
    common(v)
    v.add_argument("--explain", action="store_true",
                   help="first list every field that is accepted but not applicable here, or "
                   "refused, with the reason (all of them); exit 2 if any is refused")
    v.add_argument("--expand", action="store_true",
                   help="first print the model_config with its model class (DeepFM, DBMTL, ...) "
                   "expanded into the backbone and towers it builds, as config text")
    g = sub.add_parser("graph", help="draw the model (.dot, .mmd; .svg/.png need Graphviz)")
    common(g)
    g.add_argument("--output", required=True)
    b = sub.add_parser("blocks", help="list every registered block")
    common(b, config=False)
    return p


def _run(args) -> int:
    import easyblocks.blocks  # noqa: F401  (registers the built-in blocks)

    if args.command == "blocks":
        from easyblocks.blocks import plugins
        from easyblocks.blocks.registry import format_blocks

        plugins.load_plugins(args.plugin)
        print(format_blocks())  # per block: name, source, params form, accepted parameters
        from easyblocks.config.templates import format_model_classes

        print("\n" + format_model_classes())
        return 0

    from easyblocks import api

    if args.command == "train":
        api.train(args.config, args.model_dir, args.plugin, args.num_steps, args.overrides)
    elif args.command == "evaluate":
        api.evaluate(args.config, args.model_dir, args.checkpoint, args.plugin, args.overrides)
    elif args.command == "export":
        api.export(args.config, args.model_dir, args.export_dir, args.checkpoint, args.plugin,
                   args.overrides, args.blocks)
    elif args.command == "predict":
        keep = [c.strip() for c in args.keep.split(",") if c.strip()]
        api.predict(args.config, args.input, args.output, keep, args.model_dir, args.export_dir,
                    args.plugin, args.overrides)
    elif args.command == "validate":
        if args.explain:
            listing, refused = api.explain_config(args.config, args.overrides)
            print(listing)
            if refused:
                return 2
        if args.expand:
            print(api.expand_config(args.config, args.overrides))
        print(api.validate_config(args.config, args.plugin, args.overrides))
        print(f"{args.config}: OK")
    elif args.command == "graph":
        api.graph(args.config, args.output, args.plugin, args.overrides)
        print(f"wrote {args.output}")
    return 0


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ runtime prints start-up notices (oneDNN, CUDA) on fd 2 before
    its log level applies; hide them so that an error stays one line."""
    import os

    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe prints here, once
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.debug:
        _import_tensorflow_quietly()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log = logging.getLogger("easyblocks")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    from easyblocks.errors import EasyblocksError

    try:
        return _run(args)
    except EasyblocksError as e:
        if args.debug:
            raise
        print(f"easyblocks: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("easyblocks: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: still one line unless --debug
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"easyblocks: internal error: {type(e).__name__}: {msg} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
