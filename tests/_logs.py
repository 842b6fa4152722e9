"""Capture the package's log messages in tests."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import logging


class _ListHandler(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__()
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """The messages logged to ``optuna_kmtpe`` loggers inside the block."""
    messages: list[str] = []
    handler = _ListHandler(messages)
    logger = logging.getLogger("optuna_kmtpe")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
