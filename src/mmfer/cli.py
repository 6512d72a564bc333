"""The ``mmfer`` command line.

Every command takes ``-c CONFIG.yaml`` and any number of ``key=value``
overrides (``train.epochs=5 model.name=lstm``), validated against the config
dataclasses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mmfer.config import ExperimentConfig, dump_config, load_config
from mmfer.errors import MmferError

log = logging.getLogger("mmfer")


def _cfg(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config, args.overrides)


def cmd_list(args: argparse.Namespace) -> int:
    import mmfer.data
    import mmfer.data.splits
    import mmfer.models  # noqa: F401
    from mmfer.registry import CORPORA, MODELS, SPLITTERS

    print("corpora:  ", ", ".join(CORPORA.names()))
    print("models:   ", ", ".join(MODELS.names()))
    print("protocols:", ", ".join(SPLITTERS.names()))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(dump_config(_cfg(args)), end="")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from mmfer.experiment import prepare

    cfg = _cfg(args)
    table, path = prepare(cfg)
    print(f"{len(table)} samples, {table['speaker'].nunique()} speakers -> {path}")
    print(table.groupby("emotion").size().to_string())
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from mmfer.experiment import extract_all

    summary = extract_all(_cfg(args))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mmfer.experiment import train

    path = train(_cfg(args))
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes the model
        print(f"model written to {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mmfer.experiment import evaluate

    print(evaluate(_cfg(args)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mmfer.experiment import report

    paths = report(_cfg(args))
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: prepare, extract, report (all tables), train a final model."""
    from mmfer.experiment import run_all

    paths = run_all(_cfg(args))
    for k, p in paths.items():
        print(f"{k}: {p}")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "list": (cmd_list, "list registered corpora, models and protocols"),
    "config": (cmd_config, "print the resolved config as YAML"),
    "prepare": (cmd_prepare, "build the sample table of a corpus"),
    "extract": (cmd_extract, "extract and cache per-sample features"),
    "train": (cmd_train, "train one model on the whole corpus and save a checkpoint"),
    "evaluate": (cmd_evaluate, "cross-validate one model under the configured protocol"),
    "report": (cmd_report, "regenerate the paper's tables 1-6 (Markdown, CSV, HTML)"),
    "run": (cmd_run, "main job: prepare, extract, report, train a final model"),
}


def build_parser() -> argparse.ArgumentParser:
    from mmfer.inference import cli as cli_infer

    parser = argparse.ArgumentParser(prog="mmfer", description="Multimodal emotion recognition (RMLSTM).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.add_argument("-c", "--config", type=Path, default=None, help="YAML experiment config")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
        p.set_defaults(func=fn)
    cli_infer.register(sub)  # predict, serve, export, stream
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from mmfer.runtime import configure

    # Before any heavy library loads: threads sized to the cores free now (mmfer/runtime.py);
    # --threads (inference commands) fixes the count.
    configure(threads=int(getattr(args, "threads", 0) or 0))
    try:
        return int(args.func(args))
    except MmferError as e:
        print(f"mmfer {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; cached features and checkpoints written so far are kept", file=sys.stderr)
        return 130
    finally:
        from mmfer.training.ddp import cleanup

        cleanup()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
