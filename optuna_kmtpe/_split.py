"""The k-means good / bad split of k-means TPE: which trials feed l(x) and which feed g(x)."""

from __future__ import annotations

import math
from typing import cast
from typing import TYPE_CHECKING

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_kmtpe import _optuna_compat
from optuna_kmtpe._kmeans1d import kmeans_1d


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence

    from optuna.study import Study
    from optuna.trial import FrozenTrial


def split_trials_kmeans(
    study: Study, trials: Sequence[FrozenTrial], k: int
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Split ``trials`` into the best k-means cluster (l) and the worst one (g).

    The feasible COMPLETE trials are clustered by :func:`objective_scores` (lower is better)
    with exact 1-D k-means into ``min(k, distinct scores)`` clusters. The best cluster C1 is
    returned as ``below``; ``above`` is the worst cluster Ck plus every trial that is known to be
    worse than any feasible complete one: RUNNING trials (constant liar), PRUNED trials and
    infeasible trials. Middle clusters are in neither list.

    Fallbacks: scores of -inf join C1 and +inf join Ck without taking part in the clustering;
    with a single distinct finite score, that one cluster is C1 (g then holds only the worse
    trials listed above); with no feasible complete trial, l holds the best PRUNED trial by
    TPE's ranking (latest step, then value), and infeasible trials never enter l.

    Both lists are sorted by trial number, as Optuna's TPE keeps them (its kernel weights
    depend on the order).
    """
    complete, pruned, above = _partition(trials)
    below: list[FrozenTrial] = []
    if complete:
        scores = objective_scores(study, complete)
        best_mask, worst_mask = _best_and_worst_clusters(scores, k)
        below = [t for t, is_best in zip(complete, best_mask) if is_best]
        above += [t for t, is_worst in zip(complete, worst_mask) if is_worst]
        above += pruned
    else:
        below = _best_pruned(study, pruned, above)
    return _by_number(below), _by_number(above)


def split_trials_dead_zone(
    study: Study, trials: Sequence[FrozenTrial], k: int, n_below: Callable[[int], int]
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """TPE's split with a k-means dead zone: l holds the best trials, g only clearly worse ones.

    ``below`` is the ``n_below(n)`` best of the ``n`` feasible COMPLETE trials (ties broken by
    trial number, as in Optuna's TPE). The scores are clustered as in
    :func:`split_trials_kmeans`; the other members of the clusters that hold a ``below``
    trial are the dead zone, in neither list, so a trial as good as the best ones (within the
    clustering's resolution) is never pushed into g. ``above`` is every trial of the worse
    clusters plus the RUNNING, PRUNED and infeasible trials. With few clusters the dead zone is
    wide; as ``k`` anneals upward it narrows and the split approaches TPE's.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> for x, v in [(0, 1.0), (1, 1.0), (2, 1.0), (3, 5.0), (4, 9.0)]:
        ...     study.add_trial(
        ...         optuna.create_trial(
        ...             params={"x": x},
        ...             value=v,
        ...             distributions={"x": optuna.distributions.IntDistribution(0, 4)},
        ...         )
        ...     )
        >>> below, above = split_trials_dead_zone(study, study.trials, 3, lambda n: 1)
        >>> [t.number for t in below], [t.number for t in above]
        ([0], [3, 4])
    """
    complete, pruned, above = _partition(trials)
    below: list[FrozenTrial] = []
    if complete:
        scores = objective_scores(study, complete)
        order = np.argsort(scores, kind="stable")
        n_l = min(max(int(n_below(len(complete))), 1), len(complete))
        is_below = np.zeros(len(complete), dtype=bool)
        is_below[order[:n_l]] = True
        labels = _cluster_labels(scores, k)
        is_above = labels > labels[is_below].max()
        below = [t for t, b in zip(complete, is_below) if b]
        above += [t for t, a in zip(complete, is_above) if a]
        above += pruned
    else:
        below = _best_pruned(study, pruned, above)
    return _by_number(below), _by_number(above)


def _partition(
    trials: Sequence[FrozenTrial],
) -> tuple[list[FrozenTrial], list[FrozenTrial], list[FrozenTrial]]:
    """(feasible COMPLETE, feasible PRUNED, trials known to be worse: RUNNING and infeasible)."""
    complete: list[FrozenTrial] = []
    pruned: list[FrozenTrial] = []
    worse: list[FrozenTrial] = []
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            # Checked before feasibility: a running trial has no constraints yet.
            worse.append(trial)
        elif sum(v for v in trial.constraints.values() if v > 0) > 0:
            worse.append(trial)
        elif trial.state == TrialState.COMPLETE:
            complete.append(trial)
        elif trial.state == TrialState.PRUNED:
            pruned.append(trial)
    return complete, pruned, worse


def _best_pruned(
    study: Study, pruned: list[FrozenTrial], above: list[FrozenTrial]
) -> list[FrozenTrial]:
    """With no feasible complete trial: the best PRUNED trial by TPE's ranking is l; the
    other pruned trials join ``above``."""
    ranked = sorted(pruned, key=lambda t: _optuna_compat.pruned_trial_score(t, study))
    above += ranked[1:]
    return ranked[:1]


def _by_number(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return sorted(trials, key=lambda t: t.number)


def objective_scores(study: Study, trials: Sequence[FrozenTrial]) -> np.ndarray:
    """The 1-D quantity that is clustered, lower is better.

    Single objective: the value, negated when maximising. Multi-objective: the non-domination
    rank among ``trials`` (0 for the Pareto front), so that C1 is a band of leading fronts.
    """
    if len(study.directions) == 1:
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        return sign * np.array([cast("float", t.value) for t in trials], dtype=float)
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    loss_values = np.array([t.values for t in trials], dtype=float) * signs
    return _optuna_compat.non_domination_ranks(loss_values).astype(float)


def _best_and_worst_clusters(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of C1 (lowest centroid) and Ck (highest), with the documented fallbacks."""
    finite = np.isfinite(scores)
    best = scores == -math.inf
    worst = scores == math.inf
    if finite.any():
        labels = kmeans_1d(scores[finite], k)
        n_clusters = int(labels.max()) + 1
        best[finite] = labels == 0
        if n_clusters > 1:
            worst[finite] = labels == n_clusters - 1
    return best, worst


def _cluster_labels(scores: np.ndarray, k: int) -> np.ndarray:
    """k-means cluster of each score, 0 = best; -inf is a cluster below 0, +inf one above all."""
    finite = np.isfinite(scores)
    labels = np.where(scores == -math.inf, -1, 0)
    if finite.any():
        labels[finite] = kmeans_1d(scores[finite], k)
    labels[scores == math.inf] = int(labels.max()) + 1
    return labels
