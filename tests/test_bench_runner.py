"""kmtpe bench: every task runs, results resume, bad input is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from optuna_kmtpe._bench.runner import run_benchmark
from optuna_kmtpe._bench.runner import run_study
from optuna_kmtpe._bench.tasks import TASKS
from optuna_kmtpe.cli import main


@pytest.mark.parametrize("task", [n for n, t in TASKS.items() if not t.needs_data_dir])
def test_every_task_runs_with_a_tiny_budget(task: str) -> None:
    rows = run_study(task, "kmeans-tpe", seed=0, n_trials=4, n_startup_trials=2)
    frame = pd.DataFrame(rows)
    assert frame["trial"].tolist() == [1, 2, 3, 4]
    assert (frame["state"] == "COMPLETE").all()
    assert frame["best_so_far"].is_monotonic_increasing
    if TASKS[task].run is None:
        assert (frame["sampler_seconds"] > 0).all()
    else:  # The pipeline's sampler is not timed.
        assert frame["sampler_seconds"].isna().all()


def test_quant_cifar_needs_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="reads its dataset from --data-dir"):
        run_benchmark(tmp_path, ["quant-cifar100"], ["tpe"], [0], progress=False)
    code = main(
        [
            "bench",
            "--out",
            str(tmp_path),
            "--tasks",
            "quant",
            "--samplers",
            "tpe",
            "--seeds",
            "1",
            "--trials",
            "2",
            "--data-dir",
            str(tmp_path / "nowhere"),
        ]
    )
    assert code == 2
    assert "CIFAR-100 not found" in capsys.readouterr().err


def test_resume_skips_finished_studies_and_reruns_cut_ones(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(n_trials=5, n_startup_trials=2, progress=False)
    first = run_benchmark(
        tmp_path, ["synthetic-terraced-rosenbrock"], ["random", "tpe"], range(2), **kwargs
    )
    assert len(first) == 2 * 2 * 5
    # Simulate a kill in the middle of writing one study: drop its last rows.
    trials_csv = tmp_path / "trials.csv"
    cut = first[~((first["sampler"] == "tpe") & (first["seed"] == 1) & (first["trial"] > 2))]
    cut.to_csv(trials_csv, index=False)
    finished_rows = cut[cut["sampler"] == "random"].reset_index(drop=True)

    again = run_benchmark(
        tmp_path, ["synthetic-terraced-rosenbrock"], ["random", "tpe"], range(2), **kwargs
    )
    assert len(again) == 20
    assert again.groupby(["sampler", "seed"]).size().eq(5).all()
    # Finished studies were kept as they were, not rerun.
    kept = again[again["sampler"] == "random"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, finished_rows, check_dtype=False)
    # The rerun study reproduces the original (same seed).
    redo = again[(again["sampler"] == "tpe") & (again["seed"] == 1)]["value"].tolist()
    orig = first[(first["sampler"] == "tpe") & (first["seed"] == 1)]["value"].tolist()
    assert redo == orig


def test_other_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "kmtpe-bench/0"}))
    with pytest.raises(ValueError, match="format 'kmtpe-bench/0'"):
        run_benchmark(tmp_path, ["iris"], ["tpe"], [0], progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "trials.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no manifest.json"):
        run_benchmark(other, ["iris"], ["tpe"], [0], progress=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "mnist"], "Unknown benchmark task 'mnist'. Known tasks: iris"),
        (["--samplers", "cmaes"], "Unknown sampler 'cmaes'. Known samplers: kmeans-tpe"),
        (["--seeds", "0"], "must be positive"),
    ],
)
def test_cli_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["bench", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_json_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "--out",
            str(tmp_path),
            "--tasks",
            "synthetic-mixed-precision",
            "--seeds",
            "2",
            "--trials",
            "6",
            "--startup",
            "3",
            "--samplers",
            "kmeans-tpe,tpe",
            "--json",
            "--checkpoints",
            "3,6",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {r["checkpoint"] for r in result["spread"]} == {3, 6}
    assert "Mann-Whitney" in (tmp_path / "summary.md").read_text()


def test_every_registered_sampler_runs_and_model_based_ones_share_the_startup_trials() -> None:
    from optuna_kmtpe._sampler_registry import SAMPLERS

    values = {
        name: pd.DataFrame(run_study("synthetic-terraced-rosenbrock", name, 3, 8, 4))["value"]
        for name in SAMPLERS
    }
    startup = values["tpe"][:4].tolist()
    for name, v in values.items():
        assert len(v) == 8 and v.notna().all(), name
        if name not in ("random", "catcmawm"):  # CMA-ES has no random startup trials
            assert v[:4].tolist() == startup, name


def test_every_trial_keeps_its_params_as_sorted_json(tmp_path: Path) -> None:
    frame = run_benchmark(
        tmp_path, ["synthetic-terraced-rosenbrock"], ["tpe"], [0], n_trials=4,
        n_startup_trials=2, progress=False,
    )  # fmt: skip
    params = [json.loads(p) for p in frame["params"]]
    assert [list(p) for p in params] == [[f"x{i}" for i in range(6)]] * 4
    assert all(isinstance(v, float) for p in params for v in p.values())
    rows = run_study("synthetic-terraced-rosenbrock", "tpe", 0, n_trials=4, n_startup_trials=2)
    assert [r["params"] for r in rows] == frame["params"].tolist()


def test_a_folder_from_before_the_params_column_loads_and_resumes(tmp_path: Path) -> None:
    from optuna_kmtpe._bench.runner import open_results

    kwargs = dict(n_trials=3, n_startup_trials=2, progress=False)
    task = ["synthetic-terraced-rosenbrock"]
    first = run_benchmark(tmp_path, task, ["random"], [0], **kwargs)  # type: ignore[arg-type]
    first.drop(columns="params").to_csv(tmp_path / "trials.csv", index=False)
    assert open_results(tmp_path)["params"].isna().all()
    first.drop(columns=["params", "startup"]).to_csv(tmp_path / "trials.csv", index=False)
    assert open_results(tmp_path)[["params", "startup"]].isna().all().all()
    again = run_benchmark(tmp_path, task, ["random", "tpe"], [0], **kwargs)  # type: ignore[arg-type]
    assert again.columns.tolist()[-2:] == ["params", "startup"] and len(again) == 6
    assert again[again["sampler"] == "random"]["params"].isna().all()  # kept as it was
    assert again[again["sampler"] == "tpe"]["params"].str.startswith('{"x0": ').all()


def test_each_study_records_its_startup_and_another_startup_reruns_it(tmp_path: Path) -> None:
    task = ["synthetic-terraced-rosenbrock"]
    first = run_benchmark(
        tmp_path, task, ["tpe"], [0], n_trials=4, n_startup_trials=2, progress=False
    )
    assert first["startup"].tolist() == [2] * 4
    again = run_benchmark(
        tmp_path, task, ["tpe"], [0], n_trials=4, n_startup_trials=3, progress=False
    )
    assert again["startup"].tolist() == [3] * 4
