"""The ``arengine`` command. Each subcommand lives in ``arengine.commands.<name>``.

A command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Bad input
raises :class:`~arengine.errors.UserError`: it is printed as one line and the exit code is
2, never a traceback.

Every subcommand takes ``--verbose``; without it, native libraries' log noise (MediaPipe,
TFLite, absl) is filtered out of stderr for the whole run (:mod:`arengine.logs`), so
what a user sees there is arengine's own warnings and errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from arengine.errors import UserError
from arengine.logs import native_log_filter

COMMANDS = ("tryon", "serve", "simulate", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="arengine", description="Real-time AR for live-commerce streams.")
    parser.add_argument("--version", action="version", version="arengine 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"arengine.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"arengine.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    _add_verbose(parser)
    return parser


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` on ``parser`` and every subcommand below it, added here once for all.

    The default is suppressed, so a flag given before a nested subcommand (``bench
    --verbose compare``) is not reset by that subcommand's own default.
    """
    if "--verbose" not in parser._option_string_actions:
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="also show native libraries' log lines (MediaPipe, "
                                 "TFLite, absl) on stderr")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_verbose(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with native_log_filter(verbose=getattr(args, "verbose", False)):
            code = int(args.run(args) or 0)
    except UserError as e:
        print(f"arengine {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arengine {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
