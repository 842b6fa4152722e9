"""Options several commands share, with one spelling and one help text.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_threads(p)
    >>> p.parse_args(["--threads", "2"]).threads
    2
"""

from __future__ import annotations

import argparse
from typing import Any


def positive_int(text: str) -> int:
    """argparse ``type``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_threads(parser: Any) -> None:
    """Add ``--threads`` (applied before anything trains: :mod:`optuna_kmtpe._runs.threads`)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads of this process and of each worker, set before anything trains "
        "(default 1: measured fastest on a shared machine, docs/threads.md)",
    )
