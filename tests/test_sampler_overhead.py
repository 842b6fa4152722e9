"""The sampler's shortcuts give the results of the code they replace (benchmarks/
bench_sampler_overhead.py measures what they save)."""

from __future__ import annotations

import itertools
from pathlib import Path
import pickle
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_kmtpe import _repeats
from optuna_kmtpe import KMeansTPESampler
import optuna_kmtpe._sampler as sampler_module
from optuna_kmtpe._split import Partition


_NAN = float("nan")


@pytest.mark.parametrize(
    "dist, values",
    [
        (FloatDistribution(-1.0, 1.0), [0.5, -1, 1.0, np.float32(0.25)]),
        (FloatDistribution(1e-3, 1.0, log=True), [1e-3, 0.5, 1]),
        (FloatDistribution(0.0, 1.0, step=0.25), [0.0, 0.75]),
        (IntDistribution(0, 10), [0, 3, np.int64(7), True]),
        (IntDistribution(1, 1024, log=True), [1, 512]),
        (CategoricalDistribution(["a", "b", 3, None]), ["b", 3, None, "a", 3.0]),
        # Equal choices: ``choices.index`` finds the first one.
        (CategoricalDistribution([1, True, 1.0, 0.5]), [True, 1.0, 1, 0.5, np.float64(0.5)]),
        (CategoricalDistribution([0.0, -0.0, 2]), [-0.0, 0.0, 2]),
        # A NaN choice is found by Optuna's NaN-aware fallback, not by equality.
        (CategoricalDistribution([_NAN, 1.0]), [float("nan"), 1.0, _NAN]),
        (CategoricalDistribution([np.float64(0.75), 1.25]), [0.75, 1.25]),
        (CategoricalDistribution(["x"]), []),
    ],
)
@pytest.mark.parametrize("repeats", [1, sampler_module._MIN_VECTORISED])
def test_internal_repr_matches_optuna(
    dist: BaseDistribution, values: list[Any], repeats: int
) -> None:
    # Repeated past the length from which the conversion is vectorised.
    values = values * repeats
    column = sampler_module._internal_repr(dist, values)
    expected = [dist.to_internal_repr(v) for v in values]
    assert column.dtype == np.float64
    assert column.tolist() == expected


@pytest.mark.parametrize(
    "dist, values",
    [
        (FloatDistribution(-1.0, 1.0), [0.5, _NAN]),
        (FloatDistribution(1e-3, 1.0, log=True), [0.5, 0.0]),
        (IntDistribution(0, 10), [1, "not a number"]),
        (IntDistribution(0, 10), [1, None]),
        (CategoricalDistribution(["a", "b"]), ["a", "c"]),
        (CategoricalDistribution(["a", "b"]), ["a", ["unhashable"]]),
    ],
)
def test_internal_repr_raises_as_optuna(dist: BaseDistribution, values: list[Any]) -> None:
    values = values * sampler_module._MIN_VECTORISED
    with pytest.raises(ValueError) as expected:
        [dist.to_internal_repr(v) for v in values]
    with pytest.raises(ValueError) as got:
        sampler_module._internal_repr(dist, values)
    assert str(got.value) == str(expected.value)


def test_internal_repr_of_integers_beyond_float_precision() -> None:
    dist = IntDistribution(0, 2**60)
    values = [2**53 + 1, 2**60 - 1] * sampler_module._MIN_VECTORISED
    assert sampler_module._internal_repr(dist, values).tolist() == [float(v) for v in values]


def test_keys_of_samples_number_the_grid_in_order() -> None:
    space: dict[str, BaseDistribution] = {
        "c": CategoricalDistribution(["a", None, 3.5]),
        "i": IntDistribution(-4, 8, step=4),
        "f": FloatDistribution(0.1, 0.7, step=0.3),
        "l": IntDistribution(1, 4, log=True),
    }
    every = _repeats.unseen_configurations(space, set())
    expected = list(itertools.product(range(3), range(4), range(3), range(4)))
    assert _repeats.keys_of_samples(every, space) == expected
    assert all(isinstance(i, int) for key in expected for i in key)
    params = {name: dist.to_external_repr(every[name][-1]) for name, dist in space.items()}
    assert _repeats.key_of_params(params, space) == expected[-1]


def _interleaved_workers(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """Two samplers on one study: trials RUNNING across proposals, finished out of order (one
    stays RUNNING while a dozen later ones finish), pruned, infeasible, and a parameter that
    joins the space half-way."""
    sampler_a = KMeansTPESampler(seed=1, n_startup_trials=4)
    sampler_b = KMeansTPESampler(seed=2, n_startup_trials=4)
    study_a = optuna.create_study(storage=storage, sampler=sampler_a, study_name="shared")
    study_b = optuna.load_study(storage=storage, sampler=sampler_b, study_name="shared")
    pending: list[tuple[optuna.Study, optuna.Trial, float]] = []
    long_running: tuple[optuna.Study, optuna.Trial, float] | None = None
    for i in range(36):
        study = study_a if i % 3 else study_b
        trial = study.ask()
        x = trial.suggest_float("x", -2.0, 2.0)
        y = trial.suggest_int("y", 0, 6)
        c = trial.suggest_categorical("c", ["a", "b", "c"])
        if i >= 18:
            trial.suggest_int("z", 0, 3)
        trial.set_constraint("c0", 1.0 if i % 11 == 5 else 0.0)
        value = round(x * x + abs(y - 2) + (c == "b"), 1) + i % 2
        if i == 8:
            long_running = (study, trial, value)
        else:
            pending.append((study, trial, value))
        if i == 26 and long_running is not None:
            pending.append(long_running)
        # Three in flight: the middle one finishes first, then the oldest, then the newest.
        if len(pending) >= 3:
            for study_of, t, v in [pending[1], pending[0], *pending[2:]]:
                if t.number % 7 == 3:
                    study_of.tell(t, state=optuna.trial.TrialState.PRUNED)
                else:
                    study_of.tell(t, v)
            pending = []
    return [t.params for t in study_a.trials]


@pytest.mark.parametrize("storage_kind", ["memory", "sqlite"])
def test_kept_observations_change_no_proposal(
    storage_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make_storage(name: str) -> optuna.storages.BaseStorage:
        if storage_kind == "memory":
            return optuna.storages.InMemoryStorage()
        return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / name}.db")

    # Trials observed afresh, and trials in the histories, over the whole run.
    counts = {"observed": 0, "history": 0}
    observe_some = sampler_module._observe
    observe = KMeansTPESampler._observations

    def count_observed(trials: Any, params: Any, space: Any) -> sampler_module._Observations:
        counts["observed"] += len(trials)
        return observe_some(trials, params, space)

    def count_history(
        self: KMeansTPESampler, study: optuna.Study, trials: Any, space: Any
    ) -> sampler_module._Observations:
        counts["history"] += len(trials)
        return observe(self, study, trials, space)

    with monkeypatch.context() as patch:
        patch.setattr(sampler_module, "_observe", count_observed)
        patch.setattr(KMeansTPESampler, "_observations", count_history)
        kept = _interleaved_workers(make_storage("kept"))
    # Both storages return the same objects for finished trials, so most rows are reused.
    assert counts["observed"] < counts["history"] / 3

    def observe_afresh(
        self: KMeansTPESampler, study: optuna.Study, trials: Any, space: Any
    ) -> sampler_module._Observations:
        # Each proposal splits, then observes: the next split starts afresh too.
        self._finished_observations = {}
        self._finished_partition = sampler_module._FinishedPartition([], Partition([], [], []))
        return observe(self, study, trials, space)

    monkeypatch.setattr(KMeansTPESampler, "_observations", observe_afresh)
    assert _interleaved_workers(make_storage("afresh")) == kept


def _columns_of(
    sampler: KMeansTPESampler, study: optuna.Study, space: dict[str, BaseDistribution]
) -> dict[str, list[float]]:
    history = sampler._history(study, study.ask())
    columns = sampler_module._columns(sampler._observations(study, history, space), history, space)
    return {name: column.tolist() for name, column in columns.items()}


def test_kept_observations_are_dropped_when_the_trials_differ() -> None:
    space: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}
    sampler = KMeansTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    for x in [0.1, 0.2, 0.3]:
        study.add_trial(optuna.create_trial(params={"x": x}, distributions=space, value=x))
    assert _columns_of(sampler, study, space) == {"x": [0.1, 0.2, 0.3]}
    kept = sampler._finished_observations[("x",)]
    assert len(kept.trials) == 3
    # Fewer trials than the kept ones: only those are observed.
    fewer = sampler._observations(study, study.get_trials(deepcopy=False)[:2], space)
    assert sorted(fewer.columns) == [0, 1] and fewer.table.shape == (1, 2)
    # Another study, on another storage, whose trials carry the same numbers.
    other = optuna.create_study(sampler=sampler)
    for x in [0.7, 0.8, 0.9, 1.0]:
        other.add_trial(optuna.create_trial(params={"x": x}, distributions=space, value=x))
    assert _columns_of(sampler, other, space) == {"x": [0.7, 0.8, 0.9, 1.0]}
    # Back to the first study (its storage returns the same trial objects as before), and a
    # different search space over the same trials.
    assert _columns_of(sampler, study, space) == {"x": [0.1, 0.2, 0.3]}
    step: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0, step=0.1)}
    assert _columns_of(sampler, study, step) == {"x": [0.1, 0.2, 0.3]}
    assert sampler._finished_observations[("x",)].search_space == list(step.items())
    # Same names, other internal representation: the choices in another order.
    sampler = KMeansTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    ab: dict[str, BaseDistribution] = {"c": CategoricalDistribution(["a", "b"])}
    for c in ["a", "b", "b"]:
        study.add_trial(optuna.create_trial(params={"c": c}, distributions=ab, value=1.0))
    assert _columns_of(sampler, study, ab) == {"c": [0.0, 1.0, 1.0]}
    ba: dict[str, BaseDistribution] = {"c": CategoricalDistribution(["b", "a"])}
    assert _columns_of(sampler, study, ba) == {"c": [1.0, 0.0, 0.0]}


def test_kept_observations_are_not_pickled() -> None:
    sampler = KMeansTPESampler(seed=0, n_startup_trials=2)
    optuna.create_study(sampler=sampler).optimize(
        lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=4
    )
    assert sampler._finished_observations
    assert pickle.loads(pickle.dumps(sampler))._finished_observations == {}


@pytest.mark.parametrize("seed", range(20))
def test_first_unseen_agrees_with_a_set_of_keys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_params = int(rng.integers(1, 4))
    seen = rng.integers(0, 3, size=(n_params, int(rng.integers(0, 30))))
    candidates = rng.integers(0, 3, size=(n_params, 24))
    order = rng.permutation(24)
    keys = set(zip(*seen.tolist()))
    expected = next((int(i) for i in order if tuple(candidates[:, i].tolist()) not in keys), None)
    assert _repeats.first_unseen(candidates, seen, order) == expected
