"""The ``arengine`` command. Each subcommand lives in ``arengine.commands.<name>``.

A command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Bad input
raises :class:`~arengine.errors.UserError`: it is printed as one line and the exit code is
2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from arengine.errors import UserError

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
