from __future__ import annotations

import itertools

import numpy as np
import pytest

import optuna_kmtpe._kmeans1d as kmeans1d_module
from optuna_kmtpe._kmeans1d import annealed_k
from optuna_kmtpe._kmeans1d import kmeans_1d
from optuna_kmtpe._kmeans1d import kmeans_1d_weighted
from optuna_kmtpe._kmeans1d import rank_clusters


def _sse(values: np.ndarray, labels: np.ndarray) -> float:
    return float(
        sum(
            ((values[labels == c] - values[labels == c].mean()) ** 2).sum()
            for c in np.unique(labels)
        )
    )


def _brute_force_sse(values: np.ndarray, k: int) -> float:
    distinct = np.unique(values)
    best = np.inf
    for cuts in itertools.combinations(range(1, distinct.size), k - 1):
        bounds = [0, *cuts, distinct.size]
        labels = np.searchsorted(distinct[[b for b in bounds[1:-1]]], values, side="right")
        best = min(best, _sse(values, labels))
    return best


def test_hand_made_clusters() -> None:
    values = np.array([0.0, 10.0, 0.1, 9.9, 4.8])
    assert kmeans_1d(values, 3).tolist() == [0, 2, 0, 2, 1]
    assert kmeans_1d(values, 2).tolist() == [0, 1, 0, 1, 0]


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 10))
    values = np.round(rng.standard_normal(n) * rng.choice([1.0, 1e6]), int(rng.integers(0, 2)))
    k = int(rng.integers(2, 5))
    labels = kmeans_1d(values, k)
    n_clusters = min(k, np.unique(values).size)
    assert np.unique(labels).tolist() == list(range(n_clusters))
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(labels[order]) >= 0)  # Contiguous and numbered by centroid.
    if n_clusters > 1:
        assert _sse(values, labels) == pytest.approx(_brute_force_sse(values, n_clusters))


@pytest.mark.parametrize("gap", [1, 2, 3])
@pytest.mark.parametrize("seed", range(10))
def test_matches_brute_force_when_k_is_close_to_the_distinct_count(gap: int, seed: int) -> None:
    # The dense DP only visits the end points an optimum of k clusters can use: a band of
    # n - k + 1 per level, down to 2 when k = n - 1.
    rng = np.random.default_rng(seed)
    values = np.round(rng.standard_normal(int(rng.integers(6, 11))), 1)
    k = np.unique(values).size - gap
    labels = kmeans_1d(values, k)
    assert np.unique(labels).size == k
    assert _sse(values, labels) == pytest.approx(_brute_force_sse(values, k))


def test_dense_and_divide_and_conquer_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(0).standard_normal(300)
    dense = kmeans_1d(values, 12)
    monkeypatch.setattr(kmeans1d_module, "_DENSE_MAX_POINTS", 0)
    assert np.array_equal(kmeans_1d(values, 12), dense)


def test_ties_share_a_cluster_and_cap_k() -> None:
    values = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 7.0])
    labels = kmeans_1d(values, 10)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert kmeans_1d(np.full(5, 3.0), 4).tolist() == [0] * 5


def test_degenerate_inputs() -> None:
    assert kmeans_1d(np.array([]), 3).size == 0
    assert kmeans_1d(np.array([4.2]), 3).tolist() == [0]
    with pytest.raises(ValueError, match="finite"):
        kmeans_1d(np.array([1.0, np.nan]), 2)
    with pytest.raises(ValueError, match="`k` must be at least 1"):
        kmeans_1d(np.array([1.0]), 0)
    with pytest.raises(ValueError, match="one-dimensional"):
        kmeans_1d(np.ones((2, 2)), 2)


def test_large_offsets_keep_precision() -> None:
    values = 1e12 + np.array([0.0, 0.001, 1.0, 1.001])
    assert kmeans_1d(values, 2).tolist() == [0, 0, 1, 1]


def test_annealing_schedule() -> None:
    # k_t = floor(4 * 0.98 ** -t): 4 -> 5 at t = 12, -> 8 at t = 35.
    ks = [annealed_k(t, 4, 0.98) for t in range(40)]
    assert ks[0] == 4 and ks[11] == 4 and ks[12] == 5 and ks[34] == 7 and ks[35] == 8
    assert all(a <= b for a, b in zip(ks, ks[1:]))
    assert annealed_k(-3, 4, 0.98) == 4
    assert annealed_k(1, 4, 0.5) == 8
    assert annealed_k(1000, 3, 1.0) == 3
    assert annealed_k(10**6, 4, 0.98) > 10**9  # No overflow.


def _average_ranks(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - (counts - 1) / 2.0


def _weighted_sse(points: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    return _sse(np.repeat(points, weights.astype(int)), np.repeat(labels, weights.astype(int)))


def _integer_dp_costs(counts: np.ndarray, k_max: int) -> list[int]:
    """Least sum of cubed cluster sizes of ``counts``'s groups in k contiguous clusters, for
    k = 1..k_max, by a plain dynamic programme over Python integers."""
    ends = [0, *np.cumsum(counts).tolist()]
    n = len(counts)
    best = [end**3 for end in ends]
    costs = [best[n]]
    for m in range(2, k_max + 1):
        best = [
            min((best[j] + (ends[i] - ends[j]) ** 3 for j in range(m - 1, i)), default=10**30)
            for i in range(n + 1)
        ]
        costs.append(best[n])
    return costs


def _cubed_sizes(counts: np.ndarray, labels: np.ndarray) -> int:
    return sum(int(counts[labels == c].sum()) ** 3 for c in np.unique(labels))


@pytest.mark.parametrize("seed", range(60))
def test_rank_clusters_are_optimal_k_means_of_the_ranks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, size=int(rng.integers(3, 60)))
    k = int(rng.integers(2, counts.size))
    labels = rank_clusters(counts, k)
    assert np.unique(labels).tolist() == list(range(k))
    assert np.all(np.diff(labels) >= 0)
    # The same k-means cost as the float DP on the ranks, and the least sum of cubed sizes.
    ranks = _average_ranks(counts)
    reference = kmeans_1d_weighted(ranks, counts.astype(float), k)
    assert _weighted_sse(ranks, counts, labels) == pytest.approx(
        _weighted_sse(ranks, counts, reference)
    )
    assert _cubed_sizes(counts, labels) == _integer_dp_costs(counts, k)[-1]


@pytest.mark.parametrize("n", range(2, 70))
def test_rank_clusters_without_ties_are_level_with_the_larger_clusters_last(n: int) -> None:
    # The closed form against the integer programme, for every k.
    counts = np.ones(n, dtype=int)
    optima = _integer_dp_costs(counts, n)
    for k in range(1, n + 1):
        labels = rank_clusters(counts, k)
        sizes = np.bincount(labels)
        assert sizes.size == k and sizes.max() - sizes.min() <= 1
        assert np.all(np.diff(sizes) >= 0)
        assert _cubed_sizes(counts, labels) == optima[k - 1]


@pytest.mark.parametrize("largest_tie", [2, 4, 7])
@pytest.mark.parametrize("tie_share", [0.02, 0.1, 0.3, 0.6])
def test_level_clusters_between_ties_are_the_programmes_clusters(
    tie_share: float, largest_tie: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the shortcut finds level clusters between the ties (with groups too large for a
    # level cluster alone), they are the programme's answer, label for label.
    rng = np.random.default_rng(int(tie_share * 100) + largest_tie)
    cases = []
    for _ in range(150):
        n = int(rng.integers(3, 120))
        ties = rng.integers(2, largest_tie + 1, size=n)
        counts = np.where(rng.random(n) < tie_share, ties, 1)
        cases.append((counts, int(rng.integers(2, n))))
    fast = [rank_clusters(counts, k) for counts, k in cases]
    shortcut = [
        kmeans1d_module._level_labels_between_ties(np.append(0, np.cumsum(counts)), k)
        for counts, k in cases
    ]
    monkeypatch.setattr(kmeans1d_module, "_level_labels_between_ties", lambda ends, k: None)
    for (counts, k), labels, level in zip(cases, fast, shortcut):
        programme = rank_clusters(counts, k)
        assert labels.tolist() == programme.tolist()
        if level is not None:
            assert level.tolist() == programme.tolist()
    # The cases exercise the shortcut (and the programme, where it finds nothing).
    assert any(level is not None for level in shortcut)


def test_level_clusters_leave_a_group_too_large_alone() -> None:
    # 12 ranks in 4 clusters would be 3 each, but a tie of 5 cannot be cut: it is a cluster
    # of its own and the other 7 ranks form 3 level clusters (2, 2, 3; larger last).
    counts = np.array([1, 1, 1, 1, 5, 1, 1, 1])
    labels = kmeans1d_module._level_labels_between_ties(np.append(0, np.cumsum(counts)), 4)
    assert labels is not None
    assert labels.tolist() == [0, 0, 1, 1, 2, 3, 3, 3]


def test_rank_clusters_break_ties_between_partitions_like_the_programme() -> None:
    # Groups (1, 2, 1), k = 2: {1}{2, 1} and {1, 2}{1} both cost 1 + 27; the first-index rule
    # of the programme puts the larger cluster last.
    assert rank_clusters(np.array([1, 2, 1]), 2).tolist() == [0, 1, 1]
    assert rank_clusters(np.array([1, 1, 1, 1, 1]), 2).tolist() == [0, 0, 1, 1, 1]


def test_rank_clusters_dense_and_divide_and_conquer_paths_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = np.random.default_rng(1).integers(1, 4, size=300)
    dense = rank_clusters(counts, 40)
    monkeypatch.setattr(kmeans1d_module, "_DENSE_MAX_POINTS", 0)
    assert _cubed_sizes(counts, rank_clusters(counts, 40)) == _cubed_sizes(counts, dense)


def test_rank_clusters_beyond_exact_integers_fall_back_to_the_float_programme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = np.random.default_rng(2).integers(1, 4, size=50)
    monkeypatch.setattr(kmeans1d_module, "_MAX_RANKS", 10)
    ranks = _average_ranks(counts)
    expected = kmeans_1d_weighted(ranks, counts.astype(float), 7)
    assert rank_clusters(counts, 7).tolist() == expected.tolist()


def test_rank_clusters_degenerate_k() -> None:
    counts = np.array([2, 1, 3])
    assert rank_clusters(counts, 1).tolist() == [0, 0, 0]
    assert rank_clusters(counts, 3).tolist() == [0, 1, 2]
    assert rank_clusters(counts, 9).tolist() == [0, 1, 2]
