"""One trial budget shared by every process that works on a study.

Many processes (``kmtpe search --workers N``, other machines running the same command, or
``kmtpe bench --storage``) run one study together and must stop at ``target`` counted trials
in total, not each run their own share. A trial *counts* (:func:`is_counted`) when it is
COMPLETE or PRUNED, or FAIL with a ``fail_reason`` user attribute (the objective itself
failed, e.g. a diverged candidate). A trial failed by an interruption (a kill, a heartbeat)
does not count: it is re-run.

Two checks keep the total at ``target`` without any coordinator:

- :class:`StopAtTarget`, a study callback: after each trial a worker stops once the counted
  trials plus the RUNNING ones reach ``target`` (Optuna's ``MaxTrialsCallback`` with the
  in-flight trials added, so that no worker starts a trial the others already cover).
- :func:`claim`, called first in the objective: the trial goes on only if the counted trials
  plus the in-flight (RUNNING or WAITING) trials *numbered at or below it* leave room.
  Otherwise it is marked ``surplus`` and fails before suggesting anything (not counted, never
  re-run). Trial numbers are handed out in creation order, so of any ``target + 1`` trials the
  one numbered last sees the other ``target`` and steps back: the total cannot exceed
  ``target``. The callback makes this rare (two workers finishing at the same moment).
  "At or below", not "below": Optuna's RDB storage numbers a trial by counting the committed
  trials created before it, so two trials created at the same moment on PostgreSQL can share
  a number, and the one that commits first cannot see the other when it claims. Counting
  equal numbers as ahead makes the later one step back (two that see each other both do;
  the workers then ask again, so the budget is still filled).
"""

from __future__ import annotations

import os
import socket
from typing import Any
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna
    from optuna.trial import FrozenTrial


__all__ = [
    "FAIL_REASON",
    "SURPLUS",
    "StopAtTarget",
    "Surplus",
    "claim",
    "counted",
    "fail_stale",
    "is_counted",
    "open_slots",
]

FAIL_REASON = "fail_reason"
SURPLUS = "surplus"
WORKER = "worker"
_IN_FLIGHT = ("RUNNING", "WAITING")


class Surplus(Exception):
    """The budget has no room for this trial (other workers cover the rest of it)."""


def is_counted(trial: FrozenTrial) -> bool:
    """Whether ``trial`` counts towards the budget (see the module docstring)."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and FAIL_REASON in trial.user_attrs)


def counted(study: optuna.Study) -> int:
    """The number of counted trials of ``study``."""
    return sum(is_counted(t) for t in study.get_trials(deepcopy=False))


def _committed(trials: Sequence[FrozenTrial], states: Sequence[str]) -> int:
    return sum(is_counted(t) or t.state.name in states for t in trials)


def fail_stale(study: optuna.Study) -> None:
    """Fail the RUNNING trials whose heartbeat stopped (RDB storages with heartbeat)."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # experimental since v2.9, public and unchanged since
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def open_slots(study: optuna.Study, target: int) -> int:
    """``target`` minus the counted and the RUNNING trials (stale ones failed first)."""
    fail_stale(study)
    return target - _committed(study.get_trials(deepcopy=False), ("RUNNING",))


def claim(trial: optuna.Trial, target: int) -> None:
    """Let ``trial`` run, or mark it ``surplus`` and raise :class:`Surplus`.

    Call it first in the objective, before any ``suggest_*``. A trial that runs records
    ``host:pid`` of its process in the user attribute ``worker``.
    """
    own_id = trial._trial_id
    others = [t for t in trial.study.get_trials(deepcopy=False) if t._trial_id != own_id]
    done = sum(is_counted(t) for t in others)
    ahead = sum(t.state.name in _IN_FLIGHT and t.number <= trial.number for t in others)
    if done + ahead < target:
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
    else:
        trial.set_user_attr(SURPLUS, True)
        raise Surplus(
            f"trial {trial.number} not run: the other workers cover the {target} trials "
            f"({done} counted, {ahead} in flight)"
        )


class StopAtTarget:
    """Study callback: stop this worker once counted + RUNNING trials reach ``target``."""

    def __init__(self, target: int) -> None:
        self._target = target

    def __call__(self, study: optuna.Study, trial: Any) -> None:
        if _committed(study.get_trials(deepcopy=False), ("RUNNING",)) >= self._target:
            study.stop()
