"""The `kbnn` command line: a thin layer that parses, calls library functions, formats.

Each subcommand lives in its own module `kbnn/cli/<name>.py` exposing
`register(subparsers)`; the parser it adds sets `func=run` with `run(args) -> int`.
Errors the user can fix (`KbnnError`, missing files, `ValueError`) print one line and exit 2.

Start-up: the command module tree is light (no TensorFlow); `main` installs the Ctrl-C
handler and TensorFlow's quiet logging first, then imports TensorFlow only for commands
that need it (`--help`, `--version` and `zoo list` never do). `-v/--verbose` keeps
TensorFlow's own logging.
"""

from __future__ import annotations

import argparse
import importlib
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
EXIT_INTERRUPTED = 130

# Commands that open user model files (they get --unsafe).
LOADS_MODELS = ("evaluate", "convert", "bench", "summary", "compress", "export-android", "export-c")


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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log output (hidden by default)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"kbnn.cli.{name}").register(subparsers)
    for name, sub in subparsers.choices.items():
        if name in LOADS_MODELS:
            sub.add_argument(
                "--unsafe",
                action="store_true",
                help="load model files without kbnn's safety checks: a Lambda "
                "layer in the file runs as Python code (docs/security.md)",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    from kbnn.cli import _startup

    in_own_process = argv is None and _is_kbnn_command()
    if in_own_process:
        _startup.install_sigint_handler()
    try:
        return _run(argv, _startup, in_own_process)
    except KeyboardInterrupt:
        from kbnn._io import remove_temporaries

        remove_temporaries()
        print("kbnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _is_kbnn_command() -> bool:
    import kbnn

    return kbnn._is_kbnn_command()


def _run(argv, startup, in_own_process: bool) -> int:
    raw = sys.argv[1:] if argv is None else list(argv)
    verbose = any(arg in ("-v", "--verbose") for arg in raw)
    startup.quiet_environment(verbose)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from kbnn._loading import allow_unsafe
    from kbnn.errors import KbnnError

    allow_unsafe(getattr(args, "unsafe", False))
    if getattr(args, "unsafe", False):
        from kbnn._loading import UNSAFE_WARNING

        print(
            f"kbnn {args.command}: warning: "
            + UNSAFE_WARNING.format(path=getattr(args, "model", "the model")),
            file=sys.stderr,
        )
    try:
        if getattr(args, "light", False):
            return int(startup.run_light(args.func, args) or 0)
        if in_own_process and not args.verbose:
            startup.filter_native_logs()
        startup.import_tensorflow(args.verbose)
        return int(args.func(args) or 0)
    except (KbnnError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError) as err:
        print(f"kbnn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        allow_unsafe(False)


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
