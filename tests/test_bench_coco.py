"""COCO tasks in kmtpe bench: names, variables, values, budgets and errors."""

from __future__ import annotations

from pathlib import Path
import sys

import optuna
import pandas as pd
import pytest

from optuna_kmtpe._bench import coco
from optuna_kmtpe._bench.runner import run_study
from optuna_kmtpe._bench.tasks import expand_task_names
from optuna_kmtpe._bench.tasks import get_task
from optuna_kmtpe._bench.tasks import TASKS
from optuna_kmtpe.cli import main


def test_every_coco_task_is_known_with_the_paper_budget() -> None:
    names = expand_task_names(["bbob", "bbob-mixint"])
    assert len(names) == 96 and names[0] == "bbob/f01-d5" and names[-1] == "bbob-mixint/f24-d10"
    for name in names:
        task = get_task(name)
        assert (task.name, task.direction) == (name, "minimize")
        assert (task.n_trials, task.n_startup_trials) == (100, 10)
    assert not set(names) & set(TASKS)  # --help and the default run stay as they were


@pytest.mark.parametrize(
    "name",
    [
        "bbob/f00-d5",
        "bbob/f25-d5",
        "bbob-mixint/f01-d7",
        "bbob/f1-d5",
        "bbob/f01-d5-i0",
        "bbob-mixint/f01-d5-i16",
        "bbob/f01-d5-2",
    ],
)
def test_unknown_coco_names_are_refused_compactly(name: str) -> None:
    with pytest.raises(ValueError, match="bbob/fNN-dD, bbob-mixint/fNN-dD") as info:
        get_task(name)
    assert "f02" not in str(info.value)


def test_group_names_expand() -> None:
    assert expand_task_names(["bbob-mixint/d10"]) == [
        f"bbob-mixint/f{f:02d}-d10" for f in range(1, 25)
    ]
    assert expand_task_names(["iris", "bbob/f03-d5", "bbob/d5"])[:3] == [
        "iris",
        "bbob/f03-d5",
        "bbob/f01-d5",
    ]
    assert len(expand_task_names(["bbob/d5", "bbob/f03-d5"])) == 24
    assert expand_task_names(["bbob/d7"]) == ["bbob/d7"]  # left for get_task to refuse


def test_mixint_variables_are_ints_then_floats_within_cocos_bounds() -> None:
    import cocoex

    objective = get_task("bbob-mixint/f21-d5").make_objective()  # type: ignore[misc]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=5)
    suite = cocoex.Suite("bbob-mixint", "", "function_indices:21 dimensions:5 instance_indices:1")
    problem = suite[0]
    assert problem.number_of_integer_variables == 4
    for trial in study.trials:
        x = [trial.params[f"x{i}"] for i in range(5)]
        assert [type(v) for v in x] == [int] * 4 + [float]
        bounds = zip(problem.lower_bounds, problem.upper_bounds)
        assert all(lo <= v <= hi for v, (lo, hi) in zip(x, bounds))
        assert trial.value == problem(x)


def test_bbob_variables_are_floats_in_the_box() -> None:
    objective = get_task("bbob/f01-d5").make_objective()  # type: ignore[misc]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    dists = study.trials[0].distributions
    assert list(dists) == [f"x{i}" for i in range(5)]
    assert all(d == optuna.distributions.FloatDistribution(-5.0, 5.0) for d in dists.values())


def test_a_coco_study_minimises() -> None:
    rows = pd.DataFrame(run_study("bbob-mixint/f01-d5", "tpe", 0, n_trials=6, n_startup_trials=3))
    assert (rows["state"] == "COMPLETE").all()
    assert rows["best_so_far"].is_monotonic_decreasing
    assert rows["best_so_far"].iloc[-1] == rows["value"].min()


def test_missing_cocoex_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cocoex", None)
    with pytest.raises(ImportError, match=r"coco-experiment.*optuna-kmtpe\[bench\]"):
        coco.CocoObjective(suite="bbob", function=1, dimension=5)


def test_cli_runs_a_coco_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "--out", str(tmp_path), "--tasks", "bbob/f01-d5,bbob-mixint/f21-d5"]
    args += ["--samplers", "random", "--seeds", "1", "--trials", "3", "--json"]
    assert main(args) == 0
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert sorted(trials["task"].unique()) == ["bbob-mixint/f21-d5", "bbob/f01-d5"]
    assert "bbob-mixint/f21-d5" in (tmp_path / "summary.md").read_text()


def test_smoke_peers_on_a_mixint_task(  # GP is slow: 2 model-based trials each
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "--out", str(tmp_path), "--tasks", "bbob-mixint/f01-d5", "--seeds", "1"]
    args += ["--samplers", "tpe,hyperopt,random,gp", "--trials", "8", "--startup", "6"]
    assert main(args) == 0
    summary = (tmp_path / "summary.md").read_text()
    for section in (
        "### Mean rank across tasks",
        "### Distinct configurations per study",
        "### Each sampler vs tpe at 8 trials",
        "### Wins / ties / losses against tpe",
    ):
        assert section in summary, section
    assert "| hyperopt  | 0/1/0" in summary and "| gp        | 0/1/0" in summary
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert trials.groupby("sampler").size().to_dict() == dict.fromkeys(
        ["gp", "hyperopt", "random", "tpe"], 8
    )
    assert (trials["startup"] == 6).all() and trials["params"].str.contains('"x4": ').all()


def test_an_instance_suffix_gives_the_same_function_shifted_and_rotated() -> None:
    import cocoex

    assert get_task("bbob-mixint/f06-d5-i2").description.endswith("instance 2, minimised")
    assert get_task("bbob-mixint/f06-d5").description.endswith("instance 1, minimised")
    x = [1, 1, 1, 1, 0.25]  # inside every coordinate's bounds
    params = {f"x{i}": v for i, v in enumerate(x)}
    values = {}
    for name in ("bbob-mixint/f06-d5", "bbob-mixint/f06-d5-i1", "bbob-mixint/f06-d5-i2"):
        objective = get_task(name).make_objective()  # type: ignore[misc]
        study = optuna.create_study()
        study.enqueue_trial(params)
        study.optimize(objective, n_trials=1)
        values[name] = study.trials[0].value
    assert values["bbob-mixint/f06-d5"] == values["bbob-mixint/f06-d5-i1"]
    assert values["bbob-mixint/f06-d5-i2"] != values["bbob-mixint/f06-d5"]
    options = "function_indices:6 dimensions:5 instance_indices:2"
    problem = cocoex.Suite("bbob-mixint", "", options)[0]
    assert values["bbob-mixint/f06-d5-i2"] == problem(x)


def test_coco_objective_refuses_an_unknown_instance() -> None:
    with pytest.raises(ValueError, match="`instance` must be in 1..15"):
        coco.CocoObjective(suite="bbob", function=1, dimension=5, instance=0)
