"""The ``kmtpe`` command line: one subcommand per module in :mod:`optuna_kmtpe._commands`.

Each command module defines ``register(subparsers) -> None``, which adds its parser and sets
``func`` (``argparse.Namespace -> int``) as the handler. Modules are imported only when the
command line is built, so ``import optuna_kmtpe`` stays light.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import importlib
import sys


# Subcommand name = module under optuna_kmtpe._commands.
_COMMANDS = ("search", "compare", "sensitivity", "cost", "bench", "figures", "export")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``kmtpe`` parser; ``only``: register that subcommand alone (a known name: what
    ``main`` does, so that a usage error imports nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="kmtpe",
        description="K-means TPE search for mixed-precision quantisation and layer widths.",
    )
    parser.add_argument("--version", action="version", version=f"kmtpe {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in (only,) if only in _COMMANDS else _COMMANDS:
        importlib.import_module(f"optuna_kmtpe._commands.{name}").register(subparsers)
    return parser


def _version() -> str:
    from optuna_kmtpe import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    if command is None and "--version" in args_list:  # before any subcommand module loads
        print(f"kmtpe {_version()}")
        return 0
    parser = build_parser(only=command)
    args = parser.parse_args(args_list)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
