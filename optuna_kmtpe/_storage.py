"""Open the Optuna storage that ``--storage`` names: an RDB URL or ``journal:PATH``.

- ``journal:PATH`` (``journal:///abs/path`` also works): a journal file,
  ``JournalStorage(JournalFileBackend(PATH))``. Several processes on one machine, or on
  machines sharing a file system with working file locks, can use it. It has no heartbeat
  in Optuna 5.0: a killed worker's trial stays RUNNING.
- Anything else: an RDB URL (``sqlite:///file.db``, ``postgresql+psycopg2://...``), with
  heartbeats (60 s, grace 180 s; a stale trial is failed and retried once). SQLite waits up
  to a minute for a lock another process holds instead of failing with "database is locked".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
import warnings


if TYPE_CHECKING:
    from optuna.storages import BaseStorage


__all__ = ["JOURNAL", "open_storage"]

JOURNAL = "journal:"
_SQLITE_TIMEOUT_S = 60


def open_storage(url: str) -> BaseStorage:
    """The storage ``url`` names (see the module docstring).

    Raises:
        FileNotFoundError: The folder of a journal file does not exist.
        Exception: Whatever Optuna / SQLAlchemy raise for a bad RDB URL or server.
    """
    return _journal(url) if url.startswith(JOURNAL) else _rdb(url)


def _journal(url: str) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(url[len(JOURNAL) :].removeprefix("//"))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {str(path.parent)!r} of the journal file is missing")
    return JournalStorage(JournalFileBackend(str(path)))


def _rdb(url: str) -> BaseStorage:
    import optuna

    engine_kwargs = (
        {"connect_args": {"timeout": _SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=60,
            grace_period=180,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )
