from __future__ import annotations

import itertools

import numpy as np
import pytest

import optuna_kmtpe._kmeans1d as kmeans1d_module
from optuna_kmtpe._kmeans1d import annealed_k
from optuna_kmtpe._kmeans1d import kmeans_1d


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
