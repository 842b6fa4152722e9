"""The k-means good / bad split of k-means TPE: which trials feed l(x) and which feed g(x)."""

from __future__ import annotations

import math
import operator
from typing import NamedTuple
from typing import TYPE_CHECKING

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_kmtpe import _optuna_compat
from optuna_kmtpe._kmeans1d import kmeans_1d
from optuna_kmtpe._kmeans1d import rank_clusters


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence

    from optuna.study import Study
    from optuna.trial import FrozenTrial


_VALUE = operator.attrgetter("value")


class Partition(NamedTuple):
    """The trials of a history by the part the split gives them, each in history order."""

    complete: list[FrozenTrial]
    """Feasible COMPLETE trials: the clustered ones."""
    pruned: list[FrozenTrial]
    """Feasible PRUNED trials."""
    worse: list[FrozenTrial]
    """Trials known to be worse than any feasible complete one: RUNNING and infeasible."""


def split_trials_kmeans(
    study: Study, trials: Sequence[FrozenTrial], k: int, *, partitioned: Partition | None = None
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
    depend on the order). ``partitioned``, :func:`partition` of ``trials``, saves computing it
    where the caller holds it.
    """
    return _split_by_masks(
        study,
        partition(trials) if partitioned is None else partitioned,
        lambda scores: _best_and_worst_clusters(scores, k),
    )


def split_trials_dead_zone(
    study: Study,
    trials: Sequence[FrozenTrial],
    k: int,
    n_below: Callable[[int], int],
    *,
    partitioned: Partition | None = None,
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """TPE's split with a k-means dead zone: l holds the best trials, g only clearly worse ones.

    ``below`` is the ``n_below(n)`` best of the ``n`` feasible COMPLETE trials (ties broken by
    trial number, as in Optuna's TPE). The scores are clustered as in
    :func:`split_trials_kmeans`; the other members of the clusters that hold a ``below``
    trial are the dead zone, in neither list, so a trial as good as the best ones (within the
    clustering's resolution) is never pushed into g. ``above`` is every trial of the worse
    clusters plus the RUNNING, PRUNED and infeasible trials. With few clusters the dead zone is
    wide; as ``k`` anneals upward it narrows and the split approaches TPE's. ``partitioned``
    as in :func:`split_trials_kmeans`.

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
    return _split_by_masks(
        study,
        partition(trials) if partitioned is None else partitioned,
        lambda scores: _dead_zone_masks(scores, k, n_below),
    )


def split_trials_rank_dead_zone(
    study: Study,
    trials: Sequence[FrozenTrial],
    k: int,
    n_below: Callable[[int], int],
    *,
    partitioned: Partition | None = None,
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """:func:`split_trials_dead_zone` with the k-means run on the ranks of the scores.

    The scores are replaced by their average ranks (equal scores share the mean of their
    ranks, as ``scipy.stats.rankdata`` gives them) before the clustering, so the split depends
    only on the order of the values, like TPE's, and not on their scale: on heavy-tailed
    values (a few very bad trials) the best cluster no longer swallows most of the history,
    while ties still share a cluster and stay out of g. ``below`` is TPE's ``n_below(n)``
    best, as in the dead-zone split; infinite scores are ranked like any other.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> for x, v in enumerate([1.0, 1.0, 2.0, 3.0, 4.0, 1000.0]):
        ...     study.add_trial(
        ...         optuna.create_trial(
        ...             params={"x": x},
        ...             value=v,
        ...             distributions={"x": optuna.distributions.IntDistribution(0, 5)},
        ...         )
        ...     )
        >>> below, above = split_trials_rank_dead_zone(study, study.trials, 2, lambda n: 1)
        >>> [t.number for t in below], [t.number for t in above]
        ([0], [3, 4, 5])
        >>> below, above = split_trials_dead_zone(study, study.trials, 2, lambda n: 1)
        >>> [t.number for t in below], [t.number for t in above]
        ([0], [5])
    """
    return _split_by_masks(
        study,
        partition(trials) if partitioned is None else partitioned,
        lambda scores: _rank_dead_zone_masks(scores, k, n_below),
    )


def _rank_dead_zone_masks(
    scores: np.ndarray, k: int, n_below: Callable[[int], int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_dead_zone_masks` with the clusters of the average ranks of ``scores``."""
    # Worked in sorted order: l is a prefix of it, and the cluster labels do not decrease
    # along it, so g is the suffix past the cluster of l's last trial.
    order = np.argsort(scores, kind="stable")
    counts = _tie_counts(scores[order])
    labels = np.repeat(rank_clusters(counts, k), counts)
    is_below = _best(order, n_below)
    is_above = np.empty(scores.size, dtype=bool)
    is_above[order] = labels > labels[np.count_nonzero(is_below) - 1]
    return is_below, is_above


def _tie_counts(ordered: np.ndarray) -> np.ndarray:
    """How many of the values, sorted in ascending order, share each distinct value."""
    is_first = np.empty(ordered.size, dtype=bool)
    is_first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=is_first[1:])
    return np.diff(np.append(np.flatnonzero(is_first), ordered.size))


def _split_by_masks(
    study: Study,
    partitioned: Partition,
    masks: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The shared frame of both splits: ``masks(scores)`` picks l and g among the feasible
    COMPLETE trials; RUNNING, infeasible and PRUNED trials join g; with no feasible COMPLETE
    trial the best PRUNED one is l. Both lists come sorted by trial number."""
    complete, pruned, worse = partitioned
    above = list(worse)
    if complete:
        is_below, is_above = masks(objective_scores(study, complete))
        below = [complete[i] for i in np.flatnonzero(is_below).tolist()]
        above += [complete[i] for i in np.flatnonzero(is_above).tolist()]
        above += pruned
    else:
        ranked = sorted(pruned, key=lambda t: _optuna_compat.pruned_trial_score(t, study))
        below = ranked[:1]
        above += ranked[1:]
    return _by_number(below), _by_number(above)


def _dead_zone_masks(
    scores: np.ndarray, k: int, n_below: Callable[[int], int]
) -> tuple[np.ndarray, np.ndarray]:
    """l: the ``n_below(n)`` lowest scores (stable order); g: the clusters above all of l's."""
    is_below = _best(np.argsort(scores, kind="stable"), n_below)
    labels = _cluster_labels(scores, k)
    return is_below, labels > labels[is_below].max()


def _best(order: np.ndarray, n_below: Callable[[int], int]) -> np.ndarray:
    """Mask of the ``n_below(n)`` lowest scores (at least 1), given their stable sorting
    ``order`` (ties broken by position)."""
    n_l = min(max(int(n_below(len(order))), 1), len(order))
    is_below = np.zeros(len(order), dtype=bool)
    is_below[order[:n_l]] = True
    return is_below


def partition(trials: Sequence[FrozenTrial]) -> Partition:
    """The :class:`Partition` of ``trials``."""
    complete: list[FrozenTrial] = []
    pruned: list[FrozenTrial] = []
    worse: list[FrozenTrial] = []
    for trial in trials:
        state = trial.state
        if state == TrialState.RUNNING:
            # Checked before feasibility: a running trial has no constraints yet.
            worse.append(trial)
            continue
        if _optuna_compat.constraint_violation(trial) > 0:
            worse.append(trial)
        elif state == TrialState.COMPLETE:
            complete.append(trial)
        elif state == TrialState.PRUNED:
            pruned.append(trial)
    return Partition(complete, pruned, worse)


def _by_number(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return sorted(trials, key=operator.attrgetter("number"))


def objective_scores(study: Study, trials: Sequence[FrozenTrial]) -> np.ndarray:
    """The 1-D quantity that is clustered, lower is better.

    Single objective: the value, negated when maximising. Multi-objective: the non-domination
    rank among ``trials`` (0 for the Pareto front), so that C1 is a band of leading fronts.
    """
    directions = study.directions
    if len(directions) == 1:
        sign = -1.0 if directions[0] == StudyDirection.MAXIMIZE else 1.0
        return sign * np.fromiter(map(_VALUE, trials), float, len(trials))
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
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
