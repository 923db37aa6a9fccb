"""The `easyblocks` command: train, evaluate, export, predict, validate, graph, blocks.

Errors caused by the input (config, data, plugins) are printed as one line and
exit with status 2; `--debug` shows the traceback (chained to the original error). A
training stopped by SIGTERM or SIGINT saves a checkpoint and exits with 128 + the signal.
"""

from __future__ import annotations

import argparse
import logging
import re
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
                            "'train_config { seed: 3 }'; a list it names replaces the "
                            "config's (repeatable)")
            sp.add_argument("--allow-config-plugins", action="store_true",
                            dest="allow_config_plugins",
                            help="let the config's `plugins` name .py files to run (by "
                            "default a config may name importable modules only)")
            sp.add_argument("--max_memory_gb", type=float, default=None,
                            help="limit on the embedding tables' memory, with the optimizer's "
                            "slots when training (default 8)")

    t = sub.add_parser("train", help="train (resuming from model_dir), then evaluate")
    common(t)
    t.add_argument("--num_steps", type=int, help="overrides train_config.num_steps")
    checkpoint_help = ("latest, best, or a checkpoint path (default: the best checkpoint when "
                       "the config keeps one, else the latest)")
    e = sub.add_parser("evaluate", help="evaluate a checkpoint of model_dir")
    common(e)
    e.add_argument("--checkpoint", help=checkpoint_help)
    x = sub.add_parser("export", help="export a checkpoint as a SavedModel")
    common(x)
    x.add_argument("--export_dir", help="default: export_config.export_dir or model_dir/export")
    x.add_argument("--checkpoint", help=checkpoint_help)
    x.add_argument("--overwrite", action="store_true",
                   help="replace an earlier easyblocks export in export_dir (a folder with "
                   "anything else in it is never replaced)")
    x.add_argument("--block", action="append", default=[], dest="blocks",
                   help="export this backbone block's output instead of the towers, from the "
                   "columns it needs alone (repeatable; e.g. a two-tower model's user tower)")
    p_ = sub.add_parser("predict", help="score a CSV file (labels not required)")
    common(p_)
    p_.add_argument("--input", required=True, help="CSV rows: with a header line, columns by "
                    "name; without, the config's columns (labels optional)")
    p_.add_argument("--output", required=True, help="CSV of kept columns and each tower's "
                    "prediction (probs_<tower>; y_<tower> for regression and ZILN; "
                    "probs_<tower>_<class> for a multi-class tower)")
    p_.add_argument("--keep", default="", help="comma-separated columns to copy (e.g. user_id)")
    p_.add_argument("--export_dir", help="score with this SavedModel instead of a checkpoint")
    p_.add_argument("--checkpoint", help=checkpoint_help)
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
    import keras

    import easyblocks.blocks  # noqa: F401  (registers the built-in blocks)

    # Keras rewrites an error raised inside a layer into a banner with the call's arguments
    # (and colours); errors here name the block and its config line themselves
    keras.config.disable_traceback_filtering()
    if args.debug:  # TensorFlow's filter re-raises `from None`: keep the chain to the cause
        import tensorflow as tf

        tf.debugging.disable_traceback_filtering()

    if args.command == "blocks":
        from easyblocks.blocks import plugins
        from easyblocks.blocks.registry import format_blocks

        plugins.load_plugins(args.plugin)
        print(format_blocks())  # per block: name, source, params form, accepted parameters
        from easyblocks.config.templates import format_model_classes

        print("\n" + format_model_classes())
        return 0

    from easyblocks import api

    opts = {"max_memory_gb": args.max_memory_gb,
            "allow_config_plugins": args.allow_config_plugins}
    if args.command == "train":
        api.train(args.config, args.model_dir, args.plugin, args.num_steps, args.overrides,
                  **opts)
    elif args.command == "evaluate":
        api.evaluate(args.config, args.model_dir, args.checkpoint, args.plugin, args.overrides,
                     **opts)
    elif args.command == "export":
        api.export(args.config, args.model_dir, args.export_dir, args.checkpoint, args.plugin,
                   args.overrides, args.blocks, overwrite=args.overwrite, **opts)
    elif args.command == "predict":
        keep = [c.strip() for c in args.keep.split(",") if c.strip()]
        api.predict(args.config, args.input, args.output, keep, args.model_dir, args.export_dir,
                    args.plugin, args.overrides, checkpoint=args.checkpoint, **opts)
    elif args.command == "validate":
        if args.explain:
            listing, refused = api.explain_config(args.config, args.overrides)
            print(listing)
            if refused:
                return 2
        if args.expand:
            print(api.expand_config(args.config, args.overrides, args.plugin,
                                    allow_config_plugins=args.allow_config_plugins))
        print(api.validate_config(args.config, args.plugin, args.overrides, **opts))
        print(f"{args.config}: OK")
    elif args.command == "graph":
        api.graph(args.config, args.output, args.plugin, args.overrides, **opts)
        print(f"wrote {args.output}")
    return 0


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(e: BaseException) -> str:
    """An exception's message as one line without terminal colours (Keras puts ANSI codes
    and a multi-line banner into errors raised inside a layer)."""
    text = _ANSI.sub("", str(e)).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Exception encountered when calling"):
            return line
    return ""


def _quiet_libraries() -> None:
    """Keras' and TensorFlow's Python warnings and log lines are noise around an error line;
    --debug keeps them."""
    import warnings

    warnings.filterwarnings("ignore", module=r"(keras|tensorflow|absl)(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in ("tensorflow", "absl", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)


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
        _quiet_libraries()
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
        text = _ANSI.sub("", str(e)).strip()
        if text.startswith("in user code:"):  # autograph's trace around the message
            prefix = f"{type(e).__name__}: "
            ours = [line.strip()[len(prefix):] for line in text.splitlines()
                    if line.strip().startswith(prefix)]
            text = ours[-1] if ours else text.splitlines()[-1].strip()
        if "Exception encountered when calling" in text:  # a Keras banner around it
            text = one_line(e)
        print(f"easyblocks: error: {text}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("easyblocks: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: still one line unless --debug
        if args.debug:
            raise
        print(f"easyblocks: internal error: {type(e).__name__}: {one_line(e)} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
