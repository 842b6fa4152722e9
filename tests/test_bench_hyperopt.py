"""The hyperopt peer sampler: Optuna types and bounds, seeds, and it optimises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import sys
from typing import Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
import pandas as pd
import pytest

from optuna_kmtpe._bench.hyperopt_sampler import HyperoptSampler
from optuna_kmtpe.cli import main


optuna.logging.set_verbosity(optuna.logging.WARNING)


def _mixed(trial: optuna.Trial) -> float:
    a = trial.suggest_float("a", -2.0, 3.0)
    b = trial.suggest_float("b", 1e-4, 1.0, log=True)
    c = trial.suggest_float("c", 0.0, 1.0, step=0.1)
    d = trial.suggest_int("d", -5, 5)
    e = trial.suggest_int("e", 1, 1000, log=True)
    f = trial.suggest_int("f", 0, 10, step=5)
    g = trial.suggest_categorical("g", ["x", None, 3, 2.5])
    return a**2 + np.log(b) ** 2 + c + abs(d) + np.log(e) + f + (g == "x")


def _in(dist: BaseDistribution, value: object) -> bool:
    return dist._contains(dist.to_internal_repr(value))


def _study(seed: int, n_trials: int = 14, **kwargs: object) -> optuna.Study:
    sampler = HyperoptSampler(seed=seed, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler, **kwargs)  # type: ignore[arg-type]
    study.optimize(_mixed, n_trials=n_trials)
    return study


def test_values_are_python_scalars_inside_the_distributions() -> None:
    study = _study(0)
    types = {"a": float, "b": float, "c": float, "d": int, "e": int, "f": int}
    for trial in study.trials[4:]:
        for name, value in trial.params.items():
            dist = trial.distributions[name]
            assert _in(dist, value), (name, value)
            if isinstance(dist, CategoricalDistribution):
                assert value in dist.choices and not isinstance(value, np.generic)
            else:
                assert type(value) is types[name], (name, value)
    # The model-based trials move away from the startup ones.
    assert len({tuple(t.params.items()) for t in study.trials}) == len(study.trials)


def test_same_seed_same_trials_other_seed_other_trials() -> None:
    first, again, other = _study(3), _study(3), _study(4)
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.params for t in first.trials][4:] != [t.params for t in other.trials][4:]


def test_startup_trials_are_optunas_random_sampler() -> None:
    random = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    random.optimize(_mixed, n_trials=4)
    assert [t.params for t in _study(5, n_trials=4).trials] == [t.params for t in random.trials]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_beats_random_search_on_a_quadratic(direction: Literal["minimize", "maximize"]) -> None:
    sign = 1.0 if direction == "minimize" else -1.0

    def quadratic(trial: optuna.Trial) -> float:
        x = [trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(3)]
        y = trial.suggest_int("y", -10, 10)
        return sign * (sum((v - 1.3) ** 2 for v in x) + (y + 4) ** 2)

    def mean_best(sampler: type[optuna.samplers.BaseSampler]) -> float:
        best = []
        for seed in range(6):
            if sampler is HyperoptSampler:
                made: optuna.samplers.BaseSampler = HyperoptSampler(seed=seed, n_startup_trials=5)
            else:
                made = optuna.samplers.RandomSampler(seed=seed)
            study = optuna.create_study(direction=direction, sampler=made)
            study.optimize(quadratic, n_trials=30)
            best.append(sign * study.best_value)
        return float(np.mean(best))

    # Fixed seeds, so the outcome is fixed: 4.83 against 9.89 after 30 trials.
    assert mean_best(HyperoptSampler) < 0.75 * mean_best(optuna.samplers.RandomSampler)


def test_parameters_outside_the_joint_space_are_random() -> None:
    def conditional(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number % 2:
            return x + trial.suggest_float("z", 0.0, 1.0)
        return x

    study = optuna.create_study(sampler=HyperoptSampler(seed=0, n_startup_trials=2))
    study.optimize(conditional, n_trials=8)
    assert all(0.0 <= t.params["x"] <= 1.0 for t in study.trials)
    assert sum("z" in t.params for t in study.trials) == 4


def test_bad_arguments_and_multi_objective_are_refused() -> None:
    with pytest.raises(ValueError, match="`n_startup_trials` must be non-negative, but got -1"):
        HyperoptSampler(n_startup_trials=-1)
    with pytest.raises(ValueError, match="`n_ei_candidates` must be positive, but got 0"):
        HyperoptSampler(n_ei_candidates=0)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=HyperoptSampler())
    with pytest.raises(ValueError):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


def test_reseed_rng_reseeds_both_random_states() -> None:
    sampler = HyperoptSampler(seed=0)
    state = sampler._rng.rng.get_state()[1].copy()  # type: ignore[index]
    inner = sampler._random_sampler._rng.rng.get_state()[1].copy()  # type: ignore[index]
    sampler.reseed_rng()
    assert not np.array_equal(sampler._rng.rng.get_state()[1], state)  # type: ignore[index]
    assert not np.array_equal(sampler._random_sampler._rng.rng.get_state()[1], inner)  # type: ignore[index]


def test_missing_hyperopt_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hyperopt", None)
    study = optuna.create_study(sampler=HyperoptSampler(seed=0, n_startup_trials=1))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(ImportError, match=r"`hyperopt` package.*optuna-kmtpe\[bench\]"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)


def test_runs_inside_kmtpe_bench_on_a_mixint_task(tmp_path: Path) -> None:
    args = ["bench", "--out", str(tmp_path), "--tasks", "bbob-mixint/f21-d5", "--json"]
    args += ["--samplers", "hyperopt,tpe", "--seeds", "1", "--trials", "8", "--startup", "3"]
    assert main(args) == 0
    trials = pd.read_csv(tmp_path / "trials.csv")
    hyperopt = trials[trials["sampler"] == "hyperopt"]
    tpe = trials[trials["sampler"] == "tpe"]
    assert len(hyperopt) == 8 and (hyperopt["state"] == "COMPLETE").all()
    assert hyperopt["value"][:3].tolist() == tpe["value"][:3].tolist()  # shared startup
    assert hyperopt["best_so_far"].is_monotonic_decreasing


_CONFIGURATIONS: list[Callable[[], BaseSampler]] = [
    lambda: HyperoptSampler(n_startup_trials=0, seed=0),
    lambda: HyperoptSampler(n_startup_trials=2, seed=1),
]


class TestBasicHyperopt(BasicSamplerTestCase):
    @pytest.fixture(params=_CONFIGURATIONS)
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param


class TestRelativeHyperopt(RelativeSamplerTestCase):
    @pytest.fixture(params=_CONFIGURATIONS[:1])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param


class TestMultiObjectiveHyperopt(MultiObjectiveSamplerTestCase):
    # Multi-objective studies get random values from sample_independent.
    @pytest.fixture(params=_CONFIGURATIONS[:1])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param
