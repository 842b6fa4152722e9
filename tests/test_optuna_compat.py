"""Each private Optuna symbol the package relies on, exercised as the sampler uses it.

If these fail on a new Optuna release, repair optuna_kmtpe/_optuna_compat.py (or pin Optuna).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from optuna_kmtpe import _optuna_compat


def test_parzen_estimator_samples_inside_a_mixed_space_and_scores_them() -> None:
    space = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "layers": IntDistribution(1, 9, step=2),
        "act": CategoricalDistribution(["relu", "gelu", "tanh"]),
    }
    observations = {
        "lr": np.array([1e-3, 2e-3, 5e-2]),
        "layers": np.array([3.0, 5.0, 9.0]),
        "act": np.array([0.0, 0.0, 2.0]),
    }
    mpe = _optuna_compat.build_parzen_estimator(observations, space)
    samples = mpe.sample(np.random.RandomState(0), 200)
    assert set(samples) == set(space)
    assert np.all((samples["lr"] >= 1e-5) & (samples["lr"] <= 1e-1))
    assert set(np.unique(samples["layers"])) <= {1.0, 3.0, 5.0, 7.0, 9.0}
    assert set(np.unique(samples["act"])) <= {0.0, 1.0, 2.0}
    log_pdf = mpe.log_pdf(samples)
    assert log_pdf.shape == (200,) and np.all(np.isfinite(log_pdf))
    # The observed region is denser than the far end of the range.
    near = {"lr": np.array([1.5e-3]), "layers": np.array([3.0]), "act": np.array([0.0])}
    far = {"lr": np.array([1e-5]), "layers": np.array([1.0]), "act": np.array([1.0])}
    assert mpe.log_pdf(near)[0] > mpe.log_pdf(far)[0]


def test_parzen_estimator_without_observations_is_the_prior() -> None:
    space: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}
    mpe = _optuna_compat.build_parzen_estimator({"x": np.array([])}, space)
    assert mpe.sample(np.random.RandomState(0), 5)["x"].shape == (5,)


def test_lazy_random_state_is_seeded() -> None:
    a = _optuna_compat.LazyRandomState(3).rng.rand()
    assert a == _optuna_compat.LazyRandomState(3).rng.rand()


def _study_with_trials() -> optuna.Study:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.report(0.5, step=2)
    study.tell(trial, state=TrialState.PRUNED)
    return study


def test_trial_access_and_system_attrs() -> None:
    study = _study_with_trials()
    trials = _optuna_compat.get_trials(study, (TrialState.COMPLETE,), use_cache=False)
    assert len(trials) == 3
    running = study.ask()
    frozen = study._storage.get_trial(running._trial_id)
    _optuna_compat.set_trial_system_attr(study, frozen, "kmtpe:test", "value")
    assert study._storage.get_trial_system_attrs(running._trial_id)["kmtpe:test"] == "value"


def test_study_identity_tells_in_memory_studies_apart() -> None:
    a, b = optuna.create_study(), optuna.create_study()
    assert _optuna_compat.study_identity(a) != _optuna_compat.study_identity(b)
    assert _optuna_compat.study_identity(a) == _optuna_compat.study_identity(a)


def test_pruned_trial_score_prefers_later_steps() -> None:
    study = _study_with_trials()
    pruned = study.get_trials(states=(TrialState.PRUNED,))[0]
    assert _optuna_compat.pruned_trial_score(pruned, study) == (-2, 0.5)


def test_non_domination_ranks() -> None:
    ranks = _optuna_compat.non_domination_ranks(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    assert ranks.tolist() == [0, 0, 1]


def test_group_decomposed_search_space() -> None:
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        if trial.suggest_categorical("branch", ["a", "b"]) == "a":
            return trial.suggest_float("a", 0, 1)
        return trial.suggest_float("b", 0, 1)

    # Both branches, whatever the sampler draws (an unseeded study took one branch in all ten
    # trials once in CI, and then "branch" shares a group with that branch's parameter).
    study.enqueue_trial({"branch": "a"})
    study.enqueue_trial({"branch": "b"})
    study.optimize(objective, n_trials=10)
    groups = _optuna_compat.GroupDecomposedSearchSpace(True).calculate(study).search_spaces
    assert {frozenset(g) for g in groups} >= {frozenset({"branch"})}


def test_default_gamma_is_tpes_top_ten_percent_capped_at_25() -> None:
    assert [_optuna_compat.default_gamma(n) for n in (1, 10, 11, 100, 1000)] == [1, 1, 2, 10, 25]


def test_intersection_search_space_answers_as_optuna_does() -> None:
    study = optuna.create_study()
    ours = _optuna_compat.IntersectionSearchSpace()
    optunas = optuna.search_space.IntersectionSearchSpace(include_pruned=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        trial = study.ask()
        trial.suggest_float("x", -1.0, 1.0 if i < 25 else 2.0)  # the range changes at 25
        trial.suggest_categorical("c", ["a", "b"])
        if i % 3:
            trial.suggest_int(f"z{i % 2}", 0, 4)  # conditional parameters
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, None][i % 4]
        if state is not None:  # ... and some trials stay RUNNING
            study.tell(
                trial, float(rng.random()) if state == TrialState.COMPLETE else None, state=state
            )
        if i == 10:
            study.enqueue_trial({"x": 0.5})  # a WAITING trial
        got = ours.calculate(study)
        expected = optunas.calculate(study, use_cache=True)
        assert list(got.items()) == list(expected.items())
    assert list(got) == ["c"]


def test_parzen_parameters_are_what_tpe_passes_to_its_estimator_hook() -> None:
    # TPESampler hands self._parzen_estimator_parameters to _parzen_estimator_cls (the hook
    # Optuna keeps); ours must stay equal to it, field by field, or the estimators differ.
    tpe = optuna.samplers.TPESampler()
    assert _optuna_compat._PARZEN_PARAMETERS == tpe._parzen_estimator_parameters
    assert tpe._parzen_estimator_cls is _optuna_compat.ParzenEstimator


def test_constraint_violation_is_tpes_infeasibility_score() -> None:
    distributions: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}
    attrs_cases: list[dict[str, Any]] = [
        {},
        {"kmtpe:k": 4, "kmtpe:relative_params:0": "{}"},
        {"constraints": [0.5, -1.0, 2.0]},
        {"constraints:a": -0.5, "kmtpe:k": 4},
        {"constraints:a": 0.25, "constraints:b": 1.0},
        {"constraints": [-1.0], "constraints:b": 0.0},
    ]
    for system_attrs in attrs_cases:
        trial = optuna.trial.create_trial(
            params={"x": 0.5}, distributions=distributions, value=1.0, system_attrs=system_attrs
        )
        expected = sum(v for v in trial.constraints.values() if v > 0)
        assert _optuna_compat.constraint_violation(trial) == expected
