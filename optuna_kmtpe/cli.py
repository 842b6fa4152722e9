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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmtpe",
        description="K-means TPE search for mixed-precision quantisation and layer widths.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMANDS:
        importlib.import_module(f"optuna_kmtpe._commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
