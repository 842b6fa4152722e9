"""kmtpe bench --storage: studies in a shared storage, split between processes, resumable."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from optuna_kmtpe._bench.runner import run_benchmark
from optuna_kmtpe._bench.runner import run_shared_benchmark
from optuna_kmtpe._bench.runner import run_shared_study
from optuna_kmtpe._bench.runner import STUDY_NAME
from optuna_kmtpe._budget import SURPLUS
from optuna_kmtpe._storage import open_storage
from optuna_kmtpe.cli import main


REPO = Path(__file__).resolve().parents[1]
TASK = "synthetic-mixed-precision"
SAMPLERS = ["kmeans-tpe", "random"]
KW = dict(n_trials=8, n_startup_trials=3, progress=False)


def test_one_process_matches_the_in_memory_mode(tmp_path: Path) -> None:
    memory = run_benchmark(tmp_path / "mem", [TASK], SAMPLERS, range(2), **KW)  # type: ignore[arg-type]
    storage = f"sqlite:///{tmp_path / 'bench.db'}"
    shared = run_shared_benchmark(tmp_path / "sh", storage, [TASK], SAMPLERS, range(2), **KW)  # type: ignore[arg-type]
    key = ["task", "sampler", "seed", "trial"]
    memory, shared = memory.sort_values(key), shared.sort_values(key)
    cols = ["task", "sampler", "seed", "trial", "state", "value", "best_so_far", "params"]
    pd.testing.assert_frame_equal(
        memory[cols].reset_index(drop=True), shared[cols].reset_index(drop=True)
    )
    assert (shared["sampler_seconds"] > 0).all()
    assert pd.read_csv(tmp_path / "sh" / "trials.csv").shape == shared.shape


def test_a_study_cut_short_resumes_where_it_stopped(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'bench.log'}"
    run_shared_study(open_storage(storage), (TASK, "kmeans-tpe", 0), 3, 3)
    name = STUDY_NAME.format(task=TASK, sampler="kmeans-tpe", seed=0)
    before = [t.params for t in _study(name, storage).trials]
    frame = run_shared_benchmark(tmp_path, storage, [TASK], ["kmeans-tpe"], [0], **KW)  # type: ignore[arg-type]
    after = _study(name, storage).trials
    assert len(frame) == len(after) == 8 and [t.params for t in after[:3]] == before


def _study(name: str, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def test_processes_on_one_storage_split_the_studies_without_overshoot(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'bench.log'}"
    cmd = [sys.executable, "-m", "optuna_kmtpe.cli", "bench", "--storage", storage]
    cmd += ["--tasks", TASK, "--samplers", ",".join(SAMPLERS), "--seeds", "3"]
    cmd += ["--trials", "8", "--startup", "3", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([*cmd, "--out", str(tmp_path / f"m{i}"), *extra], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i, extra in enumerate([["--workers", "2"], []])
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for summary in optuna.get_all_study_summaries(open_storage(storage)):
        trials = _study(summary.study_name, storage).trials
        ran = [t for t in trials if SURPLUS not in t.user_attrs]
        assert [t.state.name for t in ran] == ["COMPLETE"] * 8, summary.study_name
    assert len(optuna.get_all_study_summaries(open_storage(storage))) == 6
    # Each command's table holds the studies that were complete when it finished; the last
    # one to finish sees all of them, with the in-memory mode's row counts.
    last = max((pd.read_csv(tmp_path / f"m{i}" / "trials.csv") for i in (0, 1)), key=len)
    assert last.groupby(["sampler", "seed"]).size().tolist() == [8] * 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "2"], "--workers needs --storage"),
        (["--storage", "sqlite:///{tmp}/b.db", "--jobs", "2"], "with --storage, use --workers"),
        (["--storage", "sqlite:///{tmp}/b.db", "--tasks", "quant"], "cannot share a storage"),
        (["--storage", "journal:{tmp}/none/b.log", "--tasks", "iris"], "journal file is missing"),
    ],
)
def test_cli_refuses_mixed_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["bench", "--out", str(tmp_path / "o"), "--seeds", "1", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kmtpe bench: error: ") and message in err, err
