"""Trials in this process and in ``workers - 1`` spawned processes, one budget for all.

Each spawned worker receives the prepared, picklable objective
(:class:`~optuna_kmtpe._search.objective.TrialObjective`: trained model, data, space, cost
model) and only joins the study and runs ``study.optimize`` on it; it repeats none of the
setup (no data loading, base training or Hessian traces).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
import multiprocessing
import os
import time
from typing import Any

import optuna
import torch

from optuna_kmtpe._budget import counted
from optuna_kmtpe._budget import open_slots
from optuna_kmtpe._budget import StopAtTarget
from optuna_kmtpe._budget import Surplus
from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._logging import set_tag
from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._search.objective import TrialObjective
from optuna_kmtpe._search.pruning import make_pruner
from optuna_kmtpe._storage import open_storage


__all__ = ["WorkerJob", "run_trials"]

_logger = get_logger(__name__)
Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass
class WorkerJob:
    """What a spawned worker needs: where the study is, its sampler and pruner (names), and
    the objective."""

    objective: TrialObjective
    storage_url: str
    study_name: str
    sampler: str
    seed: int
    startup: int
    target: int
    threads: int
    callbacks: Sequence[Callback] = ()
    pruner: str = "none"


def run_trials(
    study: optuna.Study,
    job: WorkerJob,
    *,
    slots: int,
    workers: int,
    threads: int | None,
    show_progress_bar: bool,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run trials here and in ``workers - 1`` spawned processes until the study holds
    ``job.target`` counted trials (:mod:`optuna_kmtpe._budget`), then wait for the workers.

    This process starts its own trials once every spawned worker is ready (or has died), so
    that all workers share the budget from the first trial on."""
    if slots <= 0:
        return
    procs = [_spawn(job, i) for i in range(1, min(workers, slots))]
    _wait_until_ready(procs)
    if threads is not None:
        torch.set_num_threads(threads)
    if ready is not None:
        ready()
    try:
        _run_trials(study, job, slots, show_progress_bar=show_progress_bar)
    finally:
        for i, (process, _) in enumerate(procs, start=1):
            process.join()
            if process.exitcode != 0:
                _logger.info(f"worker {i} exited with status {process.exitcode}; see its log")


def _spawn(job: WorkerJob, index: int) -> tuple[Any, Any]:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(
        target=_worker_main, args=(job, index, ready), name=f"kmtpe-worker-{index}"
    )
    process.start()
    return process, ready


def _wait_until_ready(procs: list[tuple[Any, Any]], timeout_s: float = 600.0) -> None:
    """Wait until every worker is ready to run trials, has died, or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    for process, ready in procs:
        while not ready.wait(0.2) and process.is_alive() and time.monotonic() < deadline:
            pass


def _worker_main(job: WorkerJob, index: int, ready: Any) -> None:
    """Entry point of a spawned worker: join the study, run its share of the trials."""
    os.environ.setdefault("OMP_NUM_THREADS", str(job.threads))
    torch.set_num_threads(job.threads)
    set_tag(f"kmtpe w{index}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=open_storage(job.storage_url),
        pruner=make_pruner(job.pruner, job.objective.epochs),
    )
    study.sampler = make_sampler(job.sampler, job.seed + index + len(study.trials), job.startup)
    slots = max(open_slots(study, job.target), 0)
    _logger.info(
        f"study {job.study_name!r} in {job.storage_url}: {counted(study)} trials done, "
        f"{slots} to go; worker {index} joins"
    )
    ready.set()
    if slots <= 0:
        return
    _run_trials(study, job, slots, show_progress_bar=False)


def _run_trials(
    study: optuna.Study, job: WorkerJob, slots: int, *, show_progress_bar: bool
) -> None:
    """``slots`` trials of the prepared objective: a diverged or surplus trial fails and the
    study goes on; the shared budget stops every process at the target."""
    study.optimize(
        job.objective,
        n_trials=slots,
        catch=(DivergenceError, Surplus),
        callbacks=[*job.callbacks, StopAtTarget(job.target)],
        show_progress_bar=show_progress_bar,
        gc_after_trial=False,
    )
