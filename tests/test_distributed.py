"""Many worker processes on one study: PostgreSQL (RDB) and journal storages, killed workers.

The PostgreSQL server is a throwaway one on loopback (``tests/postgres.py``, fixture
``postgres_url``); the tests are skipped, saying how to install it, where none can be started.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
import signal
import time
from typing import Any
from typing import cast
from typing import TYPE_CHECKING
import uuid

import optuna
from optuna.storages import RDBStorage
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import BaseTrial
from optuna.trial import FrozenTrial
from optuna.trial import Trial
from optuna.trial import TrialState

from optuna_kmtpe import KMeansTPESampler
from optuna_kmtpe._split import split_trials_kmeans


if TYPE_CHECKING:
    from datetime import datetime


N_STARTUP = 10
HEARTBEAT_INTERVAL = 1
GRACE_PERIOD = 2

optuna.logging.set_verbosity(optuna.logging.WARNING)
_SPAWN = multiprocessing.get_context("spawn")
_RETRY = RetryHeartbeatStaleTrialCallback


def _objective(trial: BaseTrial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_int("y", 0, 8)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    # Rounded: ties, as on a flat loss landscape.
    return round((x - 1.0) ** 2 + abs(y - 3) + (c != "b"), 1)


def _storage(spec: str) -> optuna.storages.BaseStorage:
    # Every process builds its own storage object: connections do not cross fork / spawn.
    if spec.startswith("journal:"):
        return optuna.storages.JournalStorage(JournalFileBackend(spec.removeprefix("journal:")))
    return RDBStorage(
        spec,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        grace_period=GRACE_PERIOD,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
    )


def _run_worker(
    spec: str, study_name: str, seed: int, n_trials: int | None, target: int | None
) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=_storage(spec),
        sampler=KMeansTPESampler(n_startup_trials=N_STARTUP, seed=seed),
    )
    callbacks = (
        [] if target is None else [MaxTrialsCallback(target, states=(TrialState.COMPLETE,))]
    )
    study.optimize(_objective, n_trials=n_trials, timeout=120, callbacks=callbacks)


def _run_blocking_worker(spec: str, study_name: str, started: str) -> None:
    """A worker whose trial suggests its parameters, then blocks until it is killed."""
    os.environ["OMP_NUM_THREADS"] = "1"
    study = optuna.load_study(
        study_name=study_name,
        storage=_storage(spec),
        sampler=KMeansTPESampler(n_startup_trials=N_STARTUP, seed=99),
    )

    def blocking(trial: Trial) -> float:
        value = _objective(trial)
        Path(started).write_text(str(trial.number))
        while True:
            time.sleep(0.1)
        return value  # pragma: no cover

    study.optimize(blocking, n_trials=1)


def _start(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    process = _SPAWN.Process(target=target, args=args)
    process.start()
    return process


def _join_all(processes: list[multiprocessing.process.BaseProcess]) -> None:
    for p in processes:
        p.join(timeout=120)
    for p in processes:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in processes] == [0] * len(processes)


def _replay(study: optuna.Study, trials: list[FrozenTrial]) -> optuna.Study:
    """A fresh in-memory study holding copies of ``trials``, added in the given order."""
    replay = optuna.create_study(
        direction=study.direction, sampler=KMeansTPESampler(n_startup_trials=N_STARTUP, seed=0)
    )
    for t in trials:
        replay.add_trial(
            optuna.create_trial(
                state=t.state, value=t.value, params=t.params, distributions=t.distributions
            )
        )
    return replay


def test_four_workers_on_postgres_give_one_process_history(postgres_url: str) -> None:
    name = f"four-workers-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=postgres_url)
    workers = [_start(_run_worker, postgres_url, name, seed, 25, None) for seed in range(4)]
    _join_all(workers)

    study = optuna.load_study(study_name=name, storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(100))  # None lost, none duplicated.
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert len({t._trial_id for t in trials}) == 100

    # The k schedule: each model-based trial used what one process computes for the same
    # number of finished trials. That number is bounded by the clock (one machine, one clock):
    # it saw every trial completed before it started, and none completed after it did. At most
    # 3 other trials run at once, so trial n saw at least n - 3 finished ones and every trial
    # from number N_STARTUP + 3 on is model-based. (It may exceed n: a worker stalled between
    # creating trial n and sampling it can see later-numbered trials finish; this was seen here.)
    reference = KMeansTPESampler()
    model_based = [t for t in trials if "kmtpe:n_finished" in t.system_attrs]
    started = {t.number: cast("datetime", t.datetime_start) for t in trials}
    completed = {t.number: cast("datetime", t.datetime_complete) for t in trials}
    assert {t.number for t in model_based} >= set(range(N_STARTUP + 3, 100))
    for t in model_based:
        n_finished = t.system_attrs["kmtpe:n_finished"]
        done_before_start = sum(completed[u] < started[t.number] for u in completed)
        done_by_end = sum(completed[u] <= completed[t.number] for u in completed) - 1
        assert max(N_STARTUP, t.number - 3, done_before_start) <= n_finished <= done_by_end
        assert t.system_attrs["kmtpe:k"] == reference.n_clusters(n_finished - N_STARTUP)
    assert all("kmtpe:k" not in t.system_attrs for t in trials if t not in model_based)

    # Single-process replay in completion order: a fresh sampler on an in-memory study that
    # holds the first n finished trials proposes with the same (n_finished, k).
    by_completion = sorted(trials, key=lambda t: (t.datetime_complete, t.number))
    replay = _replay(study, [])
    for n, t in enumerate(by_completion):
        asked = replay.ask()
        asked.relative_params  # The sampler's sample_relative, as for a real trial.
        replay.tell(asked, state=TrialState.FAIL)
        attrs = replay.trials[-1].system_attrs
        expected = (n, reference.n_clusters(n - N_STARTUP)) if n >= N_STARTUP else (None, None)
        assert (attrs.get("kmtpe:n_finished"), attrs.get("kmtpe:k")) == expected
        replay.add_trial(
            optuna.create_trial(value=t.value, params=t.params, distributions=t.distributions)
        )

    # The split of the PostgreSQL history equals the split of an in-memory copy of it, for
    # every prefix: the values read back from PostgreSQL are the ones that were told.
    copy = _replay(study, trials).get_trials(deepcopy=False)
    for n in range(N_STARTUP, 101):
        k = reference.n_clusters(n - N_STARTUP)
        pg_below, pg_above = split_trials_kmeans(study, trials[:n], k)
        mem_below, mem_above = split_trials_kmeans(study, copy[:n], k)
        assert [t.number for t in pg_below] == [t.number for t in mem_below]
        assert [t.number for t in pg_above] == [t.number for t in mem_above]
        assert pg_below and pg_above


def test_worker_killed_mid_trial_is_failed_by_heartbeat_and_retried(
    postgres_url: str, tmp_path: Path
) -> None:
    name = f"killed-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=_storage(postgres_url))
    started = tmp_path / "started"
    victim = _start(_run_blocking_worker, postgres_url, name, str(started))
    bystander = _start(_run_worker, postgres_url, name, 1, 6, None)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the blocking worker never started its trial"
    _join_all([bystander])
    killed_number = int(started.read_text())

    study = optuna.load_study(study_name=name, storage=postgres_url)
    assert study.trials[killed_number].state == TrialState.RUNNING
    os.kill(cast("int", victim.pid), signal.SIGKILL)
    victim.join(timeout=30)
    assert victim.exitcode == -signal.SIGKILL
    # Past the grace period, the next worker to start a trial fails the stale one.
    time.sleep(HEARTBEAT_INTERVAL + GRACE_PERIOD + 0.5)
    target = 20
    _join_all([_start(_run_worker, postgres_url, name, seed, None, target) for seed in (2, 3)])

    trials = optuna.load_study(study_name=name, storage=postgres_url).trials
    killed = trials[killed_number]
    assert killed.state == TrialState.FAIL
    retried = [(t, _RETRY.retried_trial_number(t)) for t in trials]
    retries = [t for t, number in retried if number is not None]
    assert len(retries) == 1
    retry = retries[0]
    assert _RETRY.retried_trial_number(retry) == killed_number
    assert retry.state == TrialState.COMPLETE
    assert retry.params == killed.params
    assert retry.value == _objective(optuna.trial.FixedTrial(killed.params))
    assert [t.number for t in trials] == list(range(len(trials)))
    states = [t.state for t in trials]
    # Everything but the killed trial completed (two workers may overshoot the target by one).
    assert states.count(TrialState.FAIL) == 1
    assert target <= states.count(TrialState.COMPLETE) == len(trials) - 1 <= target + 1


def test_journal_storage_has_no_heartbeat_so_a_killed_trial_stays_running(
    tmp_path: Path,
) -> None:
    # Optuna 5.0's JournalStorage does not implement heartbeats (no BaseHeartbeat): a killed
    # worker's trial is never failed or retried automatically; the others are unaffected.
    assert not hasattr(_storage(f"journal:{tmp_path / 'j.log'}"), "record_heartbeat")
    spec = f"journal:{tmp_path / 'study.log'}"
    name = "journal-killed"
    optuna.create_study(study_name=name, storage=_storage(spec))
    started = tmp_path / "started"
    victim = _start(_run_blocking_worker, spec, name, str(started))
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the blocking worker never started its trial"
    os.kill(cast("int", victim.pid), signal.SIGKILL)
    victim.join(timeout=30)
    target = 15
    _join_all([_start(_run_worker, spec, name, seed, None, target) for seed in (2, 3)])

    study = optuna.load_study(study_name=name, storage=_storage(spec))
    states = [t.state for t in study.trials]
    assert [t.number for t in study.trials] == list(range(len(states)))
    assert states[int(started.read_text())] == TrialState.RUNNING
    assert states.count(TrialState.RUNNING) == 1
    assert target <= states.count(TrialState.COMPLETE) == len(states) - 1 <= target + 1
    # Recovery by hand: mark it failed (and enqueue its params again if wanted).
    killed = study.trials[int(started.read_text())]
    study._storage.set_trial_state_values(killed._trial_id, TrialState.FAIL)
    study.enqueue_trial(killed.params)
    assert study.trials[killed.number].state == TrialState.FAIL
    assert study.trials[-1].state == TrialState.WAITING
