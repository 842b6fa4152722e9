"""Run (task, sampler, seed) studies and keep their trials in a resumable CSV.

Layout of a results folder::

    manifest.json   {"format": "kmtpe-bench/1"}: refuses folders from other formats
    trials.csv      one row per trial: task, sampler, seed, trial, state, value,
                    best_so_far, sampler_seconds, params (the trial's parameters as JSON
                    with sorted keys), startup (the study's n_startup_trials); the last
                    two are empty in folders written before they existed

A study's rows are appended only once the study has finished, and the file is rewritten
atomically on resume, so a killed run loses at most the studies that were in flight; running
the same command again skips every study already in the file.

Shared-storage mode (:func:`run_shared_benchmark`, ``kmtpe bench --storage URL``): every study
lives in the storage under :data:`STUDY_NAME`, so it resumes mid-study, and any number of
processes or machines running the same command split the work: a process joins any study
that is not full, and the shared budget (:mod:`optuna_kmtpe._budget`) keeps each study at
exactly ``n_trials`` counted trials. ``trials.csv`` is rebuilt from the storage and holds the
studies that are complete.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from concurrent.futures import as_completed
from concurrent.futures import ProcessPoolExecutor
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
import pandas as pd
from tqdm.auto import tqdm

from optuna_kmtpe._bench.samplers import TimedSampler
from optuna_kmtpe._bench.tasks import get_task
from optuna_kmtpe._bench.tasks import Outcome
from optuna_kmtpe._budget import claim
from optuna_kmtpe._budget import FAIL_REASON
from optuna_kmtpe._budget import is_counted
from optuna_kmtpe._budget import open_slots
from optuna_kmtpe._budget import StopAtTarget
from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._sampler_registry import objective_recipe
from optuna_kmtpe._storage import open_storage


FORMAT = "kmtpe-bench/1"
COLUMNS = [
    "task",
    "sampler",
    "seed",
    "trial",
    "state",
    "value",
    "best_so_far",
    "sampler_seconds",
    "params",
    "startup",
]
# Columns that older folders of the same format may lack: read as empty (unknown).
_LATER_COLUMNS = ("params", "startup")
TRIALS_FILE = "trials.csv"
MANIFEST_FILE = "manifest.json"
SAMPLER_SECONDS = "sampler_seconds"

STUDY_NAME = "kmtpe-bench/{task}/{sampler}/{seed}"

Unit = tuple[str, str, int]


def run_study(
    task_name: str,
    sampler_name: str,
    seed: int,
    n_trials: int,
    n_startup_trials: int,
    data_dir: str | None = None,
) -> list[dict[str, object]]:
    """One study of ``n_trials`` trials; returns its CSV rows.

    ``sampler_seconds`` is the sampler's own time per trial; it is NaN for pipeline tasks
    (``quant-*``), whose sampler lives inside ``kmtpe search``.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = get_task(task_name)
    if task.run is not None:
        outcomes = task.run(sampler_name, seed, n_trials, n_startup_trials, data_dir)
        seconds = [math.nan] * len(outcomes)
    else:
        sampler = TimedSampler(make_sampler(sampler_name, seed, n_startup_trials))
        study = optuna.create_study(direction=task.direction, sampler=sampler)
        objective = objective_recipe(sampler_name)(task.objective(seed))
        # A failing evaluation is a FAIL trial in the table, not the end of the benchmark.
        study.optimize(objective, n_trials=n_trials, catch=(Exception,))
        outcomes = [_outcome(t) for t in study.trials]
        seconds = [sampler.seconds.get(t.number, 0.0) for t in study.trials]

    unit = (task_name, sampler_name, seed)
    return _rows(unit, task.direction, outcomes, seconds, n_startup_trials)


def _outcome(trial: optuna.trial.FrozenTrial) -> Outcome:
    return (
        trial.state.name,
        trial.value if trial.value is not None else math.nan,
        trial.params,
    )


def _rows(
    unit: Unit,
    direction: str,
    outcomes: list[Outcome],
    seconds: list[float],
    n_startup_trials: int,
) -> list[dict[str, object]]:
    """CSV rows of one study: its trials' (state, value, params) in order and sampler
    seconds."""
    task_name, sampler_name, seed = unit
    sign = 1.0 if direction == "maximize" else -1.0
    best = -math.inf
    rows: list[dict[str, object]] = []
    for number, ((state, value, params), spent) in enumerate(zip(outcomes, seconds)):
        if state != "COMPLETE":
            value = math.nan
        if not math.isnan(value):
            best = max(best, sign * value)
        rows.append(
            {
                "task": task_name,
                "sampler": sampler_name,
                "seed": seed,
                "trial": number + 1,
                "state": state,
                "value": value,
                "best_so_far": sign * best if best > -math.inf else math.nan,
                "sampler_seconds": spent,
                "params": json.dumps(params, sort_keys=True),
                "startup": n_startup_trials,
            }
        )
    return rows


def open_results(out: Path) -> pd.DataFrame:
    """The trials already in ``out`` (an empty frame for a new folder)."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST_FILE
    trials = out / TRIALS_FILE
    if manifest.exists():
        found = json.loads(manifest.read_text()).get("format")
        if found != FORMAT:
            raise ValueError(
                f"{out} holds benchmark results in format {found!r}, but this version reads "
                f"{FORMAT!r}. Use a new --out folder, or rerun into an empty one."
            )
    elif trials.exists():
        raise ValueError(
            f"{out} has a {TRIALS_FILE} but no {MANIFEST_FILE}: it was not written by this "
            "version of `kmtpe bench`. Use a new --out folder."
        )
    else:
        manifest.write_text(json.dumps({"format": FORMAT}) + "\n")
    if not trials.exists():
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(trials)
    for column in _LATER_COLUMNS:
        if column not in frame.columns:
            frame[column] = math.nan
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(
            f"{trials} lacks the columns {sorted(missing)}; it is from another format. "
            "Use a new --out folder."
        )
    # Rows are appended in COLUMNS order: keep the file's columns in that order too.
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


def run_benchmark(
    out: Path,
    tasks: Iterable[str],
    samplers: Iterable[str],
    seeds: Iterable[int],
    *,
    n_trials: int | None = None,
    n_startup_trials: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    data_dir: str | None = None,
) -> pd.DataFrame:
    """Run every missing (task, sampler, seed) study into ``out``; returns all trials.

    ``n_trials`` / ``n_startup_trials`` default to each task's paper budget. Studies already
    complete in ``out`` with the same trial and startup counts are skipped.
    """
    tasks, samplers = list(tasks), list(samplers)
    budgets = _budgets(tasks, samplers, n_trials, n_startup_trials, data_dir)
    frame = open_results(out)
    if (out / TRIALS_FILE).exists() and _header(out / TRIALS_FILE) != list(frame.columns):
        # An older file without the later columns: rewrite it before appending new rows.
        _write_atomically(frame, out / TRIALS_FILE)
    counts = frame.groupby(["task", "sampler", "seed"]).size()
    # The startup count each study recorded (NaN in older folders: taken as matching).
    startups = frame.groupby(["task", "sampler", "seed"])["startup"].first()
    done = {
        u
        for u, n in counts.items()
        if u[0] in budgets
        and n == budgets[u[0]][0]
        and (pd.isna(startups[u]) or int(startups[u]) == budgets[u[0]][1])
    }
    stale = {u for u in counts.index if u[0] in budgets and u not in done}
    if stale:
        # Studies of these tasks run with another budget or cut short: drop and rerun them.
        units = frame[["task", "sampler", "seed"]].itertuples(index=False, name=None)
        frame = frame[[u not in stale for u in units]]
        _write_atomically(frame, out / TRIALS_FILE)

    todo = [u for u in _units(tasks, samplers, seeds) if u not in done]
    bar = tqdm(total=len(todo), desc="studies", disable=not progress)

    def append(rows: list[dict[str, object]]) -> None:
        path = out / TRIALS_FILE
        pd.DataFrame(rows, columns=COLUMNS).to_csv(
            path, mode="a", header=not path.exists() or path.stat().st_size == 0, index=False
        )
        bar.update(1)

    if jobs <= 1:
        for t, s, seed in todo:
            append(run_study(t, s, seed, *budgets[t], data_dir))
    else:
        _run_parallel(todo, budgets, jobs, append, data_dir)
    bar.close()
    return open_results(out) if (out / TRIALS_FILE).exists() else frame


def run_shared_benchmark(
    out: Path,
    storage: str,
    tasks: Iterable[str],
    samplers: Iterable[str],
    seeds: Iterable[int],
    *,
    n_trials: int | None = None,
    n_startup_trials: int | None = None,
    workers: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Fill every (task, sampler, seed) study in ``storage`` with ``workers`` local processes,
    then rebuild ``out/trials.csv`` from the storage; returns its trials.

    Other processes or machines may run the same call at the same time: they share the
    studies and no study goes past its ``n_trials``. A process joining a study seeds its
    sampler with ``seed`` plus the number of trials already in it (a study run start to end
    by one process matches the in-memory mode).
    """
    tasks, samplers = list(tasks), list(samplers)
    for name in tasks:
        if get_task(name).run is not None:
            raise ValueError(
                f"Task {name!r} runs a whole `kmtpe search` per study and cannot share a "
                "storage; leave it out of --tasks, or run it without --storage."
            )
    budgets = _budgets(tasks, samplers, n_trials, n_startup_trials, None)
    opened = open_storage(storage)
    open_results(out)
    units = _units(tasks, samplers, seeds)
    if workers <= 1:
        for unit in tqdm(units, desc="studies", disable=not progress):
            run_shared_study(opened, unit, *budgets[unit[0]])
    else:
        with ProcessPoolExecutor(workers, initializer=_single_threaded) as pool:
            # Worker i starts with every workers-th study from i, then helps with the rest.
            orders = [units[i::workers] + units[:i] for i in range(workers)]
            for future in [pool.submit(_fill, storage, order, budgets) for order in orders]:
                future.result()
    frame = shared_trials(opened, units, budgets)
    _write_atomically(frame, out / TRIALS_FILE)
    return frame


def _fill(storage: str, units: list[Unit], budgets: dict[str, tuple[int, int]]) -> None:
    opened = open_storage(storage)
    for unit in units:
        run_shared_study(opened, unit, *budgets[unit[0]])


def run_shared_study(
    storage: BaseStorage, unit: Unit, n_trials: int, n_startup_trials: int
) -> None:
    """Run trials of the study ``unit`` in ``storage`` until it holds ``n_trials`` counted
    trials (with whatever other processes run in it meanwhile)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task_name, sampler_name, seed = unit
    task = get_task(task_name)
    study = optuna.create_study(
        study_name=STUDY_NAME.format(task=task_name, sampler=sampler_name, seed=seed),
        storage=storage,
        direction=task.direction,
        load_if_exists=True,
    )
    slots = open_slots(study, n_trials)
    if slots <= 0:
        return
    sampler = TimedSampler(make_sampler(sampler_name, seed + len(study.trials), n_startup_trials))
    study.sampler = sampler
    study.optimize(
        _SharedObjective(
            objective_recipe(sampler_name)(task.objective(seed + len(study.trials))),
            sampler,
            n_trials,
        ),
        n_trials=slots,
        catch=(Exception,),  # a failing evaluation is a FAIL row, as in the in-memory mode
        callbacks=[StopAtTarget(n_trials)],
    )


class _SharedObjective:
    """The task's objective under the shared budget: failures are marked as counted
    (``fail_reason``), and the sampler's seconds so far are kept in the trial."""

    def __init__(self, objective: Callable[[Any], float], sampler: TimedSampler, target: int):
        self._objective = objective
        self._sampler = sampler
        self._target = target

    def __call__(self, trial: optuna.Trial) -> float:
        claim(trial, self._target)
        try:
            value = self._objective(trial)
        except Exception as e:
            trial.set_user_attr(FAIL_REASON, f"{type(e).__name__}: {e}")
            raise
        finally:
            trial.set_user_attr(SAMPLER_SECONDS, self._sampler.seconds.get(trial.number, 0.0))
        if value is None or math.isnan(value):  # Optuna fails the trial; it still counts
            trial.set_user_attr(FAIL_REASON, f"objective returned {value}")
        return value


def shared_trials(
    storage: BaseStorage, units: list[Unit], budgets: dict[str, tuple[int, int]]
) -> pd.DataFrame:
    """CSV rows of the studies of ``units`` that hold their ``n_trials`` counted trials."""
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    rows: list[dict[str, object]] = []
    for unit in units:
        task_name, sampler_name, seed = unit
        name = STUDY_NAME.format(task=task_name, sampler=sampler_name, seed=seed)
        if name not in names:
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        trials = [t for t in study.get_trials(deepcopy=False) if is_counted(t)]
        if len(trials) != budgets[task_name][0]:
            continue
        outcomes = [_outcome(t) for t in trials]
        seconds = [float(t.user_attrs.get(SAMPLER_SECONDS, math.nan)) for t in trials]
        direction = get_task(task_name).direction
        rows += _rows(unit, direction, outcomes, seconds, budgets[task_name][1])
    return pd.DataFrame(rows, columns=COLUMNS)


def _budgets(
    tasks: list[str],
    samplers: list[str],
    n_trials: int | None,
    n_startup_trials: int | None,
    data_dir: str | None,
) -> dict[str, tuple[int, int]]:
    """(n_trials, n_startup_trials) per task; refuses unknown names and missing data."""
    budgets = {}
    for name in tasks:
        task = get_task(name)
        if task.needs_data_dir and data_dir is None:
            raise ValueError(
                f"Task {name!r} reads its dataset from --data-dir; pass the folder that holds "
                "it (e.g. CIFAR-100's cifar-100-python/), or run the offline proxy task "
                "'quant-digits' instead."
            )
        budgets[name] = (
            n_trials or task.n_trials,
            task.n_startup_trials if n_startup_trials is None else n_startup_trials,
        )
    for name in samplers:
        make_sampler(name, 0, 0)  # Fail on an unknown name before any work.
    return budgets


def _units(tasks: list[str], samplers: list[str], seeds: Iterable[int]) -> list[Unit]:
    # Seed-major order: a run stopped early still has every sampler on the same seeds.
    return [(t, s, int(seed)) for seed, t, s in itertools.product(seeds, tasks, samplers)]


def _run_parallel(
    todo: list[Unit],
    budgets: dict[str, tuple[int, int]],
    jobs: int,
    append: Callable[[list[dict[str, object]]], None],
    data_dir: str | None,
) -> None:
    with ProcessPoolExecutor(jobs, initializer=_single_threaded) as pool:
        futures = [
            pool.submit(run_study, t, s, seed, *budgets[t], data_dir) for t, s, seed in todo
        ]
        for future in as_completed(futures):
            append(future.result())


def _single_threaded() -> None:
    # Processes side by side: one BLAS / torch thread each is much faster than contention.
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _header(path: Path) -> list[str]:
    return list(pd.read_csv(path, nrows=0).columns)


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
