"""The no-repeat rule of KMeansTPESampler on fully discrete search spaces."""

from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.samplers import TPESampler
from optuna.trial import Trial
from optuna.trial import TrialState
import pytest

from optuna_kmtpe import _repeats
from optuna_kmtpe import KMeansTPESampler
import optuna_kmtpe._sampler as sampler_module


# 3 x 3 x 2 = 18 configurations, a flat landscape with a plateau of ties at the optimum.
def _small_discrete(trial: Trial) -> float:
    bits = trial.suggest_categorical("bits", [2, 4, 8])
    width = trial.suggest_float("width", 0.75, 1.25, step=0.25)
    depth = trial.suggest_int("depth", 1, 2)
    return float(min(bits, 4) + (width != 1.0) + depth)


# 4 layers x (bit subset x 5 widths), shaped like the pruned quantisation search: 12,000 points.
_BITS = [[8, 6], [6, 4, 3], [4, 3, 2], [3, 2]]
_WIDTHS = [0.75, 0.875, 1.0, 1.125, 1.25]


def _quant_like(trial: Trial) -> float:
    score = 0.0
    for i, bits in enumerate(_BITS):
        b = trial.suggest_categorical(f"bits_{i}", bits)
        w = trial.suggest_categorical(f"width_{i}", _WIDTHS)
        score += -abs(np.log2(b) - 2.2) * (i + 1) * 0.3 + 0.2 * w - 0.5 * (w - 1) ** 2
    return round(score, 1)


def _configurations(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [tuple(sorted(t.params.items())) for t in study.trials]


@pytest.mark.parametrize("split", ["paper", "dead-zone"])
def test_no_repeat_until_the_space_is_exhausted(split: str) -> None:
    study = optuna.create_study(sampler=KMeansTPESampler(n_startup_trials=5, seed=0, split=split))
    study.optimize(_small_discrete, n_trials=18)
    assert len(set(_configurations(study))) == 18  # every configuration exactly once


def test_repeats_today_without_the_rule() -> None:
    # The failure the rule prevents: the same study with the rule off repeats configurations.
    study = optuna.create_study(
        sampler=KMeansTPESampler(n_startup_trials=5, seed=0, avoid_repeats=False)
    )
    study.optimize(_small_discrete, n_trials=18)
    assert len(set(_configurations(study))) < 18


def test_exhausted_space_repeats_the_best_candidate_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    study = optuna.create_study(sampler=KMeansTPESampler(n_startup_trials=5, seed=0))
    study.optimize(_small_discrete, n_trials=18)
    with caplog.at_level(logging.INFO, logger=sampler_module.__name__):
        study.optimize(_small_discrete, n_trials=3)
    assert len(study.trials) == 21 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert "Every configuration of the search space has been evaluated" in caplog.text


def test_no_repeat_on_a_quantisation_shaped_space() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=KMeansTPESampler(n_startup_trials=40, seed=0)
    )
    study.optimize(_quant_like, n_trials=160)
    assert len(set(_configurations(study))) == 160


def test_large_space_falls_back_to_extra_candidates() -> None:
    # Forces the path of spaces too large to enumerate on the 18-point space.
    with mock.patch.object(sampler_module, "_MAX_ENUMERATED", 0):
        study = optuna.create_study(sampler=KMeansTPESampler(n_startup_trials=5, seed=1))
        study.optimize(_small_discrete, n_trials=18)
    assert len(set(_configurations(study))) == 18


def test_startup_is_tpes_random_startup_when_no_repeat_is_drawn() -> None:
    ours = optuna.create_study(
        direction="maximize", sampler=KMeansTPESampler(n_startup_trials=20, seed=3)
    )
    ours.optimize(_quant_like, n_trials=20)
    tpe = optuna.create_study(
        direction="maximize", sampler=TPESampler(n_startup_trials=20, seed=3)
    )
    tpe.optimize(_quant_like, n_trials=20)
    assert len(set(_configurations(tpe))) == 20  # no collision among 12,000 points
    assert _configurations(ours) == _configurations(tpe)


@pytest.mark.parametrize("constant_liar", [True, False])
def test_two_workers_on_one_storage_do_not_share_a_configuration(
    tmp_path: Any, constant_liar: bool
) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="s").optimize(_small_discrete, n_trials=6)

    def worker(avoid_repeats: bool) -> optuna.Study:
        # Same seed in both workers: without the rule they would propose the same point.
        sampler = KMeansTPESampler(
            n_startup_trials=5, seed=0, constant_liar=constant_liar, avoid_repeats=avoid_repeats
        )
        return optuna.load_study(study_name="s", storage=storage, sampler=sampler)

    def in_flight_pair(avoid_repeats: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        a, b = worker(avoid_repeats), worker(avoid_repeats)
        first, second = a.ask(), b.ask()  # both RUNNING at once
        _small_discrete(first)
        _small_discrete(second)
        a.tell(first, state=TrialState.FAIL)
        b.tell(second, state=TrialState.FAIL)
        return first.params, second.params

    first, second = in_flight_pair(avoid_repeats=True)
    assert first != second
    # The running trial's configuration is read from storage, not from the sampler object.
    if not constant_liar:
        assert in_flight_pair(avoid_repeats=False)[0] == in_flight_pair(False)[1]


def test_rule_is_off_in_a_space_with_a_continuous_parameter() -> None:
    sampler = KMeansTPESampler(n_startup_trials=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 0, 1), n_trials=3)
    space: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1), "n": IntDistribution(0, 1)}
    assert not sampler._no_repeat_applies(sampler._history(study, study.ask()), space)


def test_rule_is_off_when_trials_have_parameters_outside_the_joint_space() -> None:
    # Conditional parameters make the joint space a projection: a repeat there is no repeat.
    sampler = KMeansTPESampler(n_startup_trials=2, seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: Trial) -> float:
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return float(trial.suggest_int(f"n_{kind}", 0, 3))

    study.optimize(objective, n_trials=6)
    space: dict[str, BaseDistribution] = {"kind": CategoricalDistribution(["a", "b"])}
    assert not sampler._no_repeat_applies(sampler._history(study, study.ask()), space)


def test_avoid_repeats_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="`avoid_repeats` must be a bool"):
        KMeansTPESampler(avoid_repeats="yes")  # type: ignore[arg-type]


def test_grid_keys_agree_between_storage_values_and_candidates() -> None:
    space = {
        "c": CategoricalDistribution(["x", 3, None]),
        "n": IntDistribution(2, 10, step=4),
        "w": FloatDistribution(0.1, 0.7, step=0.3),
        "lg": IntDistribution(1, 8, log=True),
    }
    params = {"c": None, "n": 6, "w": 0.4, "lg": 5}
    internal = {n: np.array([d.to_internal_repr(params[n])]) for n, d in space.items()}
    assert _repeats.keys_of_samples(internal, space) == [_repeats.key_of_params(params, space)]
    assert _repeats.key_of_params(params, space) == (2, 1, 1, 4)
    assert _repeats.n_configurations(space) == 3 * 3 * 3 * 8
    unseen = _repeats.unseen_configurations(space, {(2, 1, 1, 4)})
    assert len(unseen["c"]) == 3 * 3 * 3 * 8 - 1
    assert (2, 1, 1, 4) not in _repeats.keys_of_samples(unseen, space)
