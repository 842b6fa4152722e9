"""Which trials feed l(x) and g(x): the part of k-means TPE that differs from TPE."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.samplers._tpe.sampler import _split_trials as tpe_split_trials
from optuna.trial import create_trial
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest
import scipy.stats

from optuna_kmtpe._kmeans1d import kmeans_1d
from optuna_kmtpe._kmeans1d import rank_clusters
from optuna_kmtpe._split import _tie_counts
from optuna_kmtpe._split import split_trials_dead_zone
from optuna_kmtpe._split import split_trials_kmeans
from optuna_kmtpe._split import split_trials_rank_dead_zone


_DIST: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}


def _trials(
    values: list[float | None],
    states: list[TrialState] | None = None,
    constraints: dict[int, float] | None = None,
    intermediate: dict[int, dict[int, float]] | None = None,
) -> list[FrozenTrial]:
    trials = []
    for number, value in enumerate(values):
        state = states[number] if states else TrialState.COMPLETE
        system_attrs = {}
        if constraints and number in constraints:
            system_attrs["constraints:c"] = constraints[number]
        trial = create_trial(
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            params={"x": 0.5},
            distributions=_DIST,
            system_attrs=system_attrs,
            intermediate_values=(intermediate or {}).get(number, {}),
        )
        trial.number = number
        trials.append(trial)
    return trials


def _numbers(trials: list[FrozenTrial]) -> list[int]:
    return [t.number for t in trials]


# Three well separated groups: {0, 1, 2} low, {3, 4, 5} middle, {6, 7} high.
_VALUES: list[float | None] = [1.0, 1.1, 1.2, 50.0, 51.0, 52.0, 100.0, 101.0]


def test_minimize_best_cluster_in_l_worst_in_g_middle_ignored() -> None:
    study = optuna.create_study(direction="minimize")
    below, above = split_trials_kmeans(study, _trials(_VALUES), k=3)
    assert _numbers(below) == [0, 1, 2]
    assert _numbers(above) == [6, 7]
    # Optuna's TPE on the same values: below is the top 10% (one trial), above all the rest.
    tpe_below, tpe_above = tpe_split_trials(study, _trials(_VALUES), 1)
    assert _numbers(tpe_below) == [0]
    assert _numbers(tpe_above) == [1, 2, 3, 4, 5, 6, 7]


def test_maximize_reverses_the_roles() -> None:
    study = optuna.create_study(direction="maximize")
    below, above = split_trials_kmeans(study, _trials(_VALUES), k=3)
    assert _numbers(below) == [6, 7]
    assert _numbers(above) == [0, 1, 2]


def test_larger_k_tightens_both_thresholds() -> None:
    study = optuna.create_study(direction="minimize")
    below, above = split_trials_kmeans(study, _trials(_VALUES), k=8)
    assert _numbers(below) == [0]
    assert _numbers(above) == [7]


def test_running_pruned_and_infeasible_trials_go_to_g() -> None:
    values: list[float | None] = [*_VALUES, None, None, 0.5]
    states = [TrialState.COMPLETE] * 8 + [TrialState.RUNNING, TrialState.PRUNED]
    states.append(TrialState.COMPLETE)
    # Trial 10 has the best value but violates its constraint: it must never enter l.
    trials = _trials(values, states, constraints={10: 0.3, 0: -1.0})
    study = optuna.create_study(direction="minimize")
    below, above = split_trials_kmeans(study, trials, k=3)
    assert _numbers(below) == [0, 1, 2]
    assert _numbers(above) == [6, 7, 8, 9, 10]


def test_only_pruned_trials_l_gets_the_best_pruned_one() -> None:
    states = [TrialState.PRUNED] * 3
    # Pruned later is better; then the better last intermediate value.
    intermediate = {0: {1: 0.2}, 1: {3: 0.9}, 2: {3: 0.4}}
    trials = _trials([None] * 3, states, intermediate=intermediate)
    study = optuna.create_study(direction="minimize")
    below, above = split_trials_kmeans(study, trials, k=3)
    assert _numbers(below) == [2]
    assert _numbers(above) == [0, 1]


def test_only_infeasible_trials_l_is_empty() -> None:
    trials = _trials([1.0, 2.0], constraints={0: 1.0, 1: 2.0})
    below, above = split_trials_kmeans(optuna.create_study(), trials, k=3)
    assert below == []
    assert _numbers(above) == [0, 1]


def test_all_values_equal_form_one_best_cluster() -> None:
    trials = _trials([0.7] * 5 + [None], [TrialState.COMPLETE] * 5 + [TrialState.PRUNED])
    below, above = split_trials_kmeans(optuna.create_study(), trials, k=4)
    assert _numbers(below) == [0, 1, 2, 3, 4]
    assert _numbers(above) == [5]


def test_fewer_distinct_values_than_k() -> None:
    below, above = split_trials_kmeans(optuna.create_study(), _trials([1.0, 2.0, 1.0, 2.0]), 5)
    assert _numbers(below) == [0, 2]
    assert _numbers(above) == [1, 3]


def test_one_trial() -> None:
    below, above = split_trials_kmeans(optuna.create_study(), _trials([3.0]), k=4)
    assert _numbers(below) == [0]
    assert above == []


def test_infinite_values_bypass_the_clustering() -> None:
    values: list[float | None] = [math.inf, 1.0, 1.1, 9.0, 9.1, -math.inf, 5.0]
    below, above = split_trials_kmeans(optuna.create_study(), _trials(values), k=3)
    # Without the infinities the clusters are {1, 1.1}, {5}, {9, 9.1}.
    assert _numbers(below) == [1, 2, 5]
    assert _numbers(above) == [0, 3, 4]


def test_ties_never_straddle_the_threshold() -> None:
    # Four trials share the best value: TPE's top 10% would take one of them, k-means all.
    values: list[float | None] = [0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]
    below, above = split_trials_kmeans(
        optuna.create_study(direction="maximize"), _trials(values), k=3
    )
    assert _numbers(below) == [0, 1, 2, 3]
    assert _numbers(above) == [6, 7, 8, 9]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_multi_objective_clusters_non_domination_ranks(
    direction: Literal["minimize", "maximize"],
) -> None:
    sign = 1.0 if direction == "minimize" else -1.0
    points = [(0.0, 1.0), (1.0, 0.0), (0.5, 0.5), (1.0, 1.0), (1.1, 0.9), (3.0, 3.0)]
    trials = []
    for number, (a, b) in enumerate(points):
        trial = create_trial(values=[sign * a, sign * b], params={"x": 0.5}, distributions=_DIST)
        trial.number = number
        trials.append(trial)
    study = optuna.create_study(directions=[direction, direction])
    # Ranks: 0, 0, 0, 1, 1, 2 -> with k = 3 the clusters are {0}, {1}, {2}.
    below, above = split_trials_kmeans(study, trials, k=3)
    assert _numbers(below) == [0, 1, 2]
    assert _numbers(above) == [5]


def _one(n: int) -> int:
    return 1


def test_dead_zone_l_is_tpes_top_and_the_rest_of_its_cluster_is_ignored() -> None:
    study = optuna.create_study(direction="minimize")
    below, above = split_trials_dead_zone(study, _trials(_VALUES), 3, _one)
    assert _numbers(below) == [0]  # TPE's top trial
    assert _numbers(above) == [3, 4, 5, 6, 7]  # 1 and 2 share its cluster: in neither
    # Where the top trials reach into the middle cluster, the dead zone is that cluster's rest.
    below, above = split_trials_dead_zone(study, _trials(_VALUES), 3, lambda n: 4)
    assert _numbers(below) == [0, 1, 2, 3]
    assert _numbers(above) == [6, 7]


def test_dead_zone_with_k_as_large_as_the_distinct_values_is_tpes_split() -> None:
    study = optuna.create_study(direction="maximize")
    below, above = split_trials_dead_zone(study, _trials(_VALUES), 8, lambda n: 2)
    tpe_below, tpe_above = tpe_split_trials(study, _trials(_VALUES), 2)
    assert _numbers(below) == _numbers(tpe_below) == [6, 7]
    assert _numbers(above) == _numbers(tpe_above)


def test_dead_zone_keeps_trials_tied_with_l_out_of_g() -> None:
    # TPE's top 10% takes one of the four tied best trials and puts the other three in g.
    values: list[float | None] = [0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]
    study = optuna.create_study(direction="maximize")
    below, above = split_trials_dead_zone(study, _trials(values), 10, _one)
    assert _numbers(below) == [0]  # ties broken by trial number, as in TPE
    assert _numbers(above) == [4, 5, 6, 7, 8, 9]
    _, tpe_above = tpe_split_trials(study, _trials(values), 1)
    assert {1, 2, 3} <= set(_numbers(tpe_above))


def _running_pruned_infeasible_and_infinite() -> list[FrozenTrial]:
    """+inf, -inf and finite COMPLETE trials, then RUNNING (7), PRUNED (8), infeasible (9)."""
    values: list[float | None] = [math.inf, 1.0, 1.1, 9.0, 9.1, -math.inf, 5.0, None, None, 0.0]
    states = [TrialState.COMPLETE] * 7 + [TrialState.RUNNING, TrialState.PRUNED]
    states.append(TrialState.COMPLETE)
    return _trials(values, states, constraints={9: 1.0})


def test_dead_zone_running_pruned_infeasible_and_infinite_values() -> None:
    trials = _running_pruned_infeasible_and_infinite()
    below, above = split_trials_dead_zone(optuna.create_study(), trials, 3, lambda n: 2)
    # -inf is the best trial, then 1.0; 1.1 shares 1.0's cluster; +inf is the worst.
    assert _numbers(below) == [1, 5]
    assert _numbers(above) == [0, 3, 4, 6, 7, 8, 9]


def test_dead_zone_without_complete_trials_falls_back_like_the_paper_split() -> None:
    intermediate = {0: {1: 0.2}, 1: {3: 0.9}, 2: {3: 0.4}}
    trials = _trials([None] * 3, [TrialState.PRUNED] * 3, intermediate=intermediate)
    study = optuna.create_study(direction="minimize")
    assert split_trials_dead_zone(study, trials, 3, _one) == split_trials_kmeans(study, trials, 3)


@pytest.mark.parametrize("n_below", [0, 100])
def test_dead_zone_clips_the_size_of_l(n_below: int) -> None:
    below, _ = split_trials_dead_zone(
        optuna.create_study(), _trials(_VALUES), 3, lambda n: n_below
    )
    assert len(below) == min(max(n_below, 1), len(_VALUES))


# Heavy-tailed values, as on COCO's attractive-sector function: most trials near the optimum,
# a few far off. On the values, k-means puts the near ones into one cluster with l.
_HEAVY_TAILED: list[float | None] = [0.61, 0.6, 0.7, 0.9, 1.5, 2.0, 3.0, 5.0, 400.0, 4600.0]


def test_rank_dead_zone_keeps_the_dead_zone_narrow_on_heavy_tailed_values() -> None:
    study = optuna.create_study(direction="minimize")
    below, above = split_trials_dead_zone(study, _trials(_HEAVY_TAILED), 3, _one)
    assert _numbers(below) == [1]
    assert _numbers(above) == [8, 9]  # on the values only the two far-off trials are worse
    below, above = split_trials_rank_dead_zone(study, _trials(_HEAVY_TAILED), 3, _one)
    assert _numbers(below) == [1]
    assert len(above) >= 6  # on the ranks g holds most of the history
    assert 10 - len(below) - len(above) <= 3


@pytest.mark.parametrize(
    "transform", [np.log, np.cbrt, lambda v: 1e6 * v - 3.0], ids=["log", "cbrt", "affine"]
)
def test_rank_dead_zone_ignores_monotone_transforms_of_the_objective(transform: object) -> None:
    changed: list[float | None] = [
        float(transform(v))  # type: ignore[operator]
        for v in _HEAVY_TAILED
    ]
    study = optuna.create_study(direction="minimize")
    for k in (3, 4, 5):
        original = split_trials_rank_dead_zone(study, _trials(_HEAVY_TAILED), k, lambda n: 2)
        transformed = split_trials_rank_dead_zone(study, _trials(changed), k, lambda n: 2)
        assert [_numbers(t) for t in transformed] == [_numbers(t) for t in original]


def test_value_dead_zone_moves_under_a_log_transform() -> None:
    study = optuna.create_study(direction="minimize")
    logs: list[float | None] = [math.log(_float(v)) for v in _HEAVY_TAILED]
    _, above = split_trials_dead_zone(study, _trials(_HEAVY_TAILED), 3, _one)
    _, above_of_logs = split_trials_dead_zone(study, _trials(logs), 3, _one)
    assert _numbers(above) == [8, 9]
    assert _numbers(above_of_logs) == [4, 5, 6, 7, 8, 9]


def _float(value: float | None) -> float:
    assert value is not None
    return value


def test_rank_dead_zone_keeps_trials_tied_with_l_out_of_g() -> None:
    values: list[float | None] = [0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]
    study = optuna.create_study(direction="maximize")
    below, above = split_trials_rank_dead_zone(study, _trials(values), 10, _one)
    assert _numbers(below) == [0]
    assert _numbers(above) == [4, 5, 6, 7, 8, 9]


def test_rank_dead_zone_running_pruned_and_infeasible_trials_join_g() -> None:
    trials = _running_pruned_infeasible_and_infinite()
    below, above = split_trials_rank_dead_zone(optuna.create_study(), trials, 3, lambda n: 2)
    assert _numbers(below) == [1, 5]
    assert {0, 7, 8, 9} <= set(_numbers(above))
    assert not set(_numbers(below)) & set(_numbers(above))


@pytest.mark.parametrize("seed", range(5))
def test_rank_clusters_are_the_k_means_of_scipys_ranks(seed: int) -> None:
    # The split clusters the tie groups of the sorted scores; that is an optimal k-means of
    # the average ranks as scipy.stats.rankdata gives them (infinite scores included).
    rng = np.random.default_rng(seed)
    scores = np.round(rng.standard_normal(40), 1)
    scores[:3] = [np.inf, -np.inf, np.inf]
    order = np.argsort(scores, kind="stable")
    counts = _tie_counts(scores[order])
    labels = np.empty(scores.size, dtype=int)
    labels[order] = np.repeat(rank_clusters(counts, 6), counts)
    ranks = scipy.stats.rankdata(scores)
    assert counts.sum() == scores.size
    assert _sum_of_squares(ranks, labels) == pytest.approx(
        _sum_of_squares(ranks, kmeans_1d(ranks, 6))
    )


def _sum_of_squares(values: np.ndarray, labels: np.ndarray) -> float:
    return float(
        sum(((values[labels == c] - values[labels == c].mean()) ** 2).sum() for c in set(labels))
    )
