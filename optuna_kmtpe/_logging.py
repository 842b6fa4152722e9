"""The package's loggers, in Optuna's style (``optuna.logging``).

Every module logs through ``_logger = get_logger(__name__)``. The library root logger
``optuna_kmtpe`` gets one handler on first use that writes ``[kmtpe] message`` lines to the
current ``sys.stderr``, and does not propagate to the root logger (as Optuna's does not).
Silence it with ``logging.getLogger("optuna_kmtpe").setLevel(logging.WARNING)``; call
:func:`enable_propagation` to send the records to the root logger's handlers instead (e.g.
pytest's ``caplog``).

Example:
    >>> from optuna_kmtpe._logging import get_logger
    >>> get_logger("optuna_kmtpe.example").name
    'optuna_kmtpe.example'
"""

from __future__ import annotations

import logging
import sys
import threading


__all__ = ["disable_propagation", "enable_propagation", "get_logger", "set_tag"]

_LIBRARY = "optuna_kmtpe"
_lock = threading.Lock()
_handler: _StderrHandler | None = None


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _configure() -> None:
    global _handler
    with _lock:
        if _handler is not None:
            return
        _handler = _StderrHandler()
        _handler.setFormatter(logging.Formatter("[kmtpe] %(message)s"))
        root = logging.getLogger(_LIBRARY)
        root.addHandler(_handler)
        root.setLevel(logging.INFO)
        root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` (a module's ``__name__``), with the library handler installed."""
    _configure()
    return logging.getLogger(name)


def set_tag(tag: str) -> None:
    """Prefix the library handler's lines with ``[tag]`` (a worker process: ``kmtpe w1``)."""
    _configure()
    assert _handler is not None
    _handler.setFormatter(logging.Formatter(f"[{tag}] %(message)s"))


def enable_propagation() -> None:
    """Let the records reach the root logger's handlers too."""
    _configure()
    logging.getLogger(_LIBRARY).propagate = True


def disable_propagation() -> None:
    """Undo :func:`enable_propagation`."""
    _configure()
    logging.getLogger(_LIBRARY).propagate = False
