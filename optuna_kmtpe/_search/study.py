"""The life cycle of a ``kmtpe search`` study: open, refuse to overwrite, resume, re-queue
interrupted trials, wait for other machines' trials."""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_kmtpe._budget import FAIL_REASON
from optuna_kmtpe._budget import fail_stale
from optuna_kmtpe._budget import SURPLUS
from optuna_kmtpe._compress.limits import pareto_directions
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._storage import open_storage


__all__ = [
    "ATTR",
    "StudyError",
    "check_study_name",
    "create_study",
    "note_running_without_heartbeat",
    "open_study_storage",
    "requeue_interrupted",
    "wait_for_running",
]

ATTR = "kmtpe:"
_POLL_S = 2.0
_logger = get_logger(__name__)


class StudyError(ValueError):
    """The study cannot be used as asked (the message says why and what to do)."""


def open_study_storage(url: str) -> BaseStorage:
    """The Optuna storage of ``url`` (:func:`optuna_kmtpe._storage.open_storage`)."""
    try:
        return open_storage(url)
    except Exception as e:
        raise StudyError(f"Cannot open the study storage {url!r}: {type(e).__name__}: {e}") from e


def check_study_name(
    storage: BaseStorage, storage_url: str, study_name: str, resume: bool
) -> None:
    """Refuse to overwrite an existing study, and to resume a missing one."""
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if study_name in existing and not resume:
        n = existing[study_name].n_trials
        raise StudyError(
            f"Study {study_name!r} already exists in {storage_url} ({n} trials). Pass --resume "
            "to continue it, or choose another --out / --study-name to start afresh."
        )
    if resume and study_name not in existing:
        raise StudyError(
            f"Nothing to resume: no study {study_name!r} in {storage_url}. Run without --resume."
        )


def create_study(
    storage: BaseStorage,
    study_name: str,
    objective: str,
    attrs: dict[str, Any],
    *,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """A new study whose user attributes (prefixed ``kmtpe:``) are ``attrs``, with ``pruner``
    (None: :class:`~optuna.pruners.NopPruner`, every trial trains in full)."""
    multi = objective == "pareto"
    directions = pareto_directions(attrs["pareto_metrics"]) if multi else ["maximize"]
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        pruner=pruner or optuna.pruners.NopPruner(),
        directions=directions,  # type: ignore[arg-type]
    )
    for key, value in attrs.items():
        study.set_user_attr(ATTR + key, value)
    return study


def requeue_interrupted(study: optuna.Study, storage: BaseStorage, fail_running: bool) -> int:
    """Enqueue a re-run of every interrupted trial that has none yet; returns how many.

    ``fail_running`` first marks RUNNING trials as interrupted FAIL: only for the run's own
    local storage before it starts workers, or on request (``--requeue-running``); elsewhere
    other workers may be running them, and Optuna's heartbeat fails the stale ones. A trial
    killed before its first suggestion has nothing to re-run (a fresh trial fills the count).
    Each enqueue re-reads the study first, so a resume that started at the same moment and
    already queued the retry is seen; two resumes re-checking in the same instant can still
    both enqueue one (the budget then keeps the total, one retry runs twice).
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    n = 0
    for t in study.get_trials(deepcopy=False):
        interrupted = t.state == TrialState.FAIL and not _failed_on_purpose(t)
        if t.state == TrialState.RUNNING and fail_running:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            interrupted = True
        if interrupted and t.params and not _has_retry(study, t.number):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            n += 1
    return n


def _failed_on_purpose(trial: FrozenTrial) -> bool:
    """A FAIL the run itself decided (diverged candidate, surplus trial): not a kill."""
    return FAIL_REASON in trial.user_attrs or SURPLUS in trial.user_attrs


def _has_retry(study: optuna.Study, number: int) -> bool:
    """Whether ``study`` (read afresh) holds a retry of trial ``number``: ours or Optuna's
    heartbeat callback's."""
    for t in study.get_trials(deepcopy=False):
        if number in (t.user_attrs.get("retry_of"), t.system_attrs.get("failed_trial")):
            return True
    return False


def note_running_without_heartbeat(study: optuna.Study, storage: BaseStorage) -> None:
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running and not isinstance(storage, optuna.storages.RDBStorage):
        _logger.info(
            f"note: {len(running)} trial(s) RUNNING in a storage without heartbeat "
            "(journal file); they count as in progress. If no process runs them any more "
            "(killed), stop every worker and rerun with --resume --requeue-running."
        )


def wait_for_running(study: optuna.Study, storage: BaseStorage) -> None:
    """Before the final steps, wait for trials other machines still run (RDB storages: a
    dead machine's trials are failed by the heartbeat; journal files have none: no wait)."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        return
    said = False
    while running := study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not said:
            _logger.info(f"waiting for {len(running)} trial(s) running in other processes")
            said = True
        time.sleep(_POLL_S)
        fail_stale(study)
