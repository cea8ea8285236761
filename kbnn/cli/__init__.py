"""The `kbnn` command line: a thin layer that parses, calls library functions, formats.

Each subcommand lives in its own module `kbnn/cli/<name>.py` exposing
`register(subparsers)`; the parser it adds sets `func=run` with `run(args) -> int`.
Errors the user can fix (`KbnnError`, missing files, `ValueError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand modules, in the order `kbnn --help` lists them.
COMMANDS = (
    "quickstart",
    "zoo",
    "train",
    "evaluate",
    "convert",
    "inspect",
    "bench",
    "summary",
    "compress",
    "export_android",
    "export_c",
)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line (no usage dump) with exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kbnn",
        description="Binarized, ternary and low-bit neural networks for Keras and LCE.",
    )
    from kbnn import __version__

    parser.add_argument("--version", action="version", version=f"kbnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"kbnn.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"kbnn.cli.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def main(argv: list[str] | None = None) -> int:
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from kbnn.errors import KbnnError

    try:
        return int(args.func(args) or 0)
    except (KbnnError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError) as err:
        print(f"kbnn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"kbnn {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
