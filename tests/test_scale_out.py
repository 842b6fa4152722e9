"""Many processes on one ``kmtpe search`` study: one shared ``--trials`` budget, one final
model; journal-file storage; the budget rule itself."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
from unittest import mock

import optuna
import pytest

from optuna_kmtpe._budget import claim
from optuna_kmtpe._budget import counted
from optuna_kmtpe._budget import FAIL_REASON
from optuna_kmtpe._budget import StopAtTarget
from optuna_kmtpe._budget import SURPLUS
from optuna_kmtpe._budget import Surplus
from optuna_kmtpe._runs.search_run import run_search
from optuna_kmtpe._runs.search_run import SearchError
from optuna_kmtpe._search.study import requeue_interrupted
from tests._logs import captured_logs
from tests.test_search import _tiny
from tests.test_search import REPO
from tests.test_search import TINY


NAME = "kmtpe-small_cnn-digits"


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=NAME, storage=storage).trials


def test_budget_counts_finished_and_earlier_in_flight_trials() -> None:
    study = optuna.create_study()
    first, second, third = study.ask(), study.ask(), study.ask()
    claim(first, 2)
    claim(second, 2)  # one RUNNING trial ahead of it: room for both
    with pytest.raises(Surplus, match="cover the 2 trials"):
        claim(third, 2)  # two ahead of it
    assert study.trials[2].user_attrs[SURPLUS] is True
    assert "worker" in study.trials[0].user_attrs
    study.tell(third, state=optuna.trial.TrialState.FAIL)
    second.set_user_attr(FAIL_REASON, "diverged")  # an objective failure counts ...
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    study.tell(first, 1.0)
    assert counted(study) == 2  # ... a surplus trial does not
    study.enqueue_trial({})  # a WAITING trial numbered first takes the slot of a later one
    fourth, fifth = study.ask(), study.ask()
    claim(fourth, 4)
    with pytest.raises(Surplus):
        claim(fifth, 3)


def test_budget_steps_back_for_an_in_flight_trial_with_the_same_number() -> None:
    # PostgreSQL can give two trials created at the same moment one number (Optuna counts the
    # committed trials before it); both workers could then run and the study hold 9 of 8.
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    mine, theirs = study.ask(), study.ask()
    seen = study.trials
    seen[theirs.number].number = mine.number  # the other worker's trial on such a storage
    with mock.patch.object(study, "get_trials", return_value=seen):
        with pytest.raises(Surplus, match="1 counted, 1 in flight"):
            claim(mine, 2)


def test_workers_stop_once_counted_plus_running_trials_reach_the_target() -> None:
    study = optuna.create_study()
    study.ask(), study.ask()  # two trials other workers are running
    study.optimize(lambda t: 0.0, n_trials=10, callbacks=[StopAtTarget(4)])
    assert [t.state.name for t in study.trials] == ["RUNNING"] * 2 + ["COMPLETE"] * 2


def test_requeue_skips_surplus_and_already_retried_trials() -> None:
    study = optuna.create_study()
    for _ in range(3):
        study.ask().suggest_int("w", 1, 8)
    study.trials  # 0: surplus, 1: retried by the heartbeat callback, 2: interrupted
    study._storage.set_trial_user_attr(study.trials[0]._trial_id, SURPLUS, True)
    for t in study.trials[:2]:
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    study.enqueue_trial(study.trials[1].params)
    study._storage.set_trial_system_attr(study.trials[3]._trial_id, "failed_trial", 1)
    assert requeue_interrupted(study, study._storage, fail_running=True) == 1
    assert study.trials[-1].user_attrs["retry_of"] == 2
    assert requeue_interrupted(study, study._storage, fail_running=True) == 0


def test_workers_share_the_budget_and_one_process_trains_the_final_model(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = _tiny(tmp_path, trials=10, epochs=4, workers=2)
    with captured_logs() as logs:
        result = run_search(config)
    trials = _trials(f"sqlite:///{tmp_path / 'study.db'}")
    ran = [t for t in trials if SURPLUS not in t.user_attrs]
    assert sum(t.state.name == "COMPLETE" for t in ran) == len(ran) == 10
    assert len({t.number for t in trials}) == len(trials)
    assert result.n_complete == 10 and result.test_accuracy is not None
    err = capfd.readouterr().err
    assert "[kmtpe w1] study" in err  # the spawned worker joined the study ...
    # Which worker claims which trial is a race (on an idle machine the launcher can finish
    # these tiny trials before the spawned process has imported torch); the budget is not.
    assert 1 <= len({t.user_attrs["worker"] for t in ran}) <= 2
    worker_lines = [line for line in err.splitlines() if line.startswith("[kmtpe w")]
    assert not any("final model" in line for line in worker_lines)
    assert sum("final model:" in m for m in logs) == 1
    assert (tmp_path / "final_model.pt").exists()  # ... and only the launcher finished


def test_two_commands_on_one_storage_run_trials_in_total(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Two machines: PostgreSQL where a server can be started here, else one SQLite file.
    try:
        storage, name = request.getfixturevalue("postgres_url"), f"two-{tmp_path.name}"[:60]
    except pytest.skip.Exception:
        storage, name = f"sqlite:///{tmp_path / 'shared.db'}", NAME
    first = _tiny(tmp_path / "m0", trials=2, final_epochs=0, storage=storage, study_name=name)
    run_search(first)  # creates the study and the base model
    cmd = [sys.executable, "-m", "optuna_kmtpe.cli", "search", *TINY, "--storage", storage]
    cmd += ["--study-name", name, "--resume", "--no-final", "--trials", "8", "--epochs", "3"]
    cmd += ["--checkpoint", str(tmp_path / "m0" / "base_model.pt")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(tmp_path / f"m{i}"), "--seed", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in (1, 2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(b"trials only (--no-final)" in out for out, _ in outputs)
    study = optuna.load_study(study_name=name, storage=storage)
    assert counted(study) == 8  # not 2 + 6 + 6
    # Both commands enqueue the warm starts at the same moment; Optuna's skip_if_exists can
    # then queue one twice (seen under load: a WAITING copy left over). It never runs here, and
    # a later resume would find the budget full and mark it surplus.
    started = [t for t in study.trials if t.state.name != "WAITING"]
    ran = [t for t in started if SURPLUS not in t.user_attrs]
    assert len(ran) == 8, [(t.number, t.state.name) for t in study.trials]
    assert all("warm_start" in t.user_attrs for t in study.trials if t.state.name == "WAITING")
    assert not any((tmp_path / f"m{i}" / "result.json").exists() for i in (1, 2))


def test_journal_file_storage(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'study.log'}"
    run_search(_tiny(tmp_path, trials=2, final_epochs=0, storage=storage))
    again = _tiny(tmp_path, trials=3, final_epochs=0, resume=True)
    again.storage = f"journal:///{(tmp_path / 'study.log').resolve()}"  # URL form, same file
    assert run_search(again).n_complete == 3
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
    )
    study = optuna.load_study(study_name=NAME, storage=journal)
    assert len(study.trials) == 3
    # A killed worker's trial stays RUNNING (no heartbeat) and counts as in flight ...
    study.ask().suggest_int("stale", 0, 1)
    again.trials = 4
    with captured_logs() as logs:
        run_search(again)
    assert counted(study) == 3 and any("without heartbeat" in m for m in logs)
    # ... until a resume with --requeue-running fails it and re-runs its parameters.
    again.requeue_running = True
    run_search(again)
    states = [t.state.name for t in study.trials]
    assert counted(study) == 4 and states[3] == "FAIL" and states.count("RUNNING") == 0
    assert study.trials[4].user_attrs["retry_of"] == 3
    missing = _tiny(tmp_path, storage=f"journal:{tmp_path / 'none' / 'study.log'}")
    with pytest.raises(SearchError, match="journal file is missing"):
        run_search(missing)
