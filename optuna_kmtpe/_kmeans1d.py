"""Exact 1-D k-means and the annealing schedule of k-means TPE (NumPy only, no Optuna).

The clustering is the optimal least-squares partition of sorted values into contiguous groups
(the problem solved by Ckmeans.1d.dp, Wang & Song, R Journal 2011), computed by dynamic
programming with the divide-and-conquer speed-up that the monotone split points of 1-D
k-means allow. It is deterministic, needs no initialisation and treats equal values as one
weighted point, so the ties that flat landscapes produce cost nothing and never split. On
ranks (the default split's input) the same optimum is found in integers, and mostly in
closed form, by :func:`rank_clusters`.

scikit-learn's ``KMeans`` is not used on the sampler's hot path: one fit costs tens of
milliseconds, it is a local (Lloyd) optimum that depends on its seed, and it warns whenever
there are fewer distinct values than clusters, which is the normal case here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np


if TYPE_CHECKING:
    from collections.abc import Callable


# Above this many distinct values the dense O(n^2)-per-level DP is slower than the
# divide-and-conquer one (measured with benchmarks/bench_sampler_overhead.py's value sizes).
_DENSE_MAX_POINTS = 400
# Largest number of ranks whose cubed cluster sizes stay exact in float64 (n ** 3 < 2 ** 53).
_MAX_RANKS = 200_000
# The cells j >= i of the dense DP's [end i, start j] cost matrix, which hold no cluster.
_UPPER_TRIANGLE = np.triu(np.ones((_DENSE_MAX_POINTS + 1, _DENSE_MAX_POINTS + 1), dtype=bool))


def annealed_k(t: int, k_init: int, alpha: float) -> int:
    """Number of clusters after ``t`` model-based trials: ``floor(k_init * alpha ** -t)``.

    This is Algorithm 1 of the paper read as ``k_t = floor(1 / c_t)`` with ``c_0 = 1 / k_init``
    and ``c_t = c_{t-1} * alpha``. With the defaults (``k_init=4``, ``alpha=0.98``) k becomes 5
    after 12 trials and 8 after 35.

    Example:
        >>> annealed_k(0, 4, 0.98), annealed_k(12, 4, 0.98), annealed_k(35, 4, 0.98)
        (4, 5, 8)
    """
    if t <= 0:
        return k_init
    # Work in log space: alpha ** -t overflows a float long before t reaches realistic
    # study sizes for small alpha. The tiny slack keeps exact products such as
    # 4 * 0.5 ** -1 == 8 from rounding down to 7.
    log_k = math.log(k_init) - t * math.log(alpha)
    if log_k > 60.0:
        return 2**62
    return int(math.floor(math.exp(log_k) * (1.0 + 1e-12)))


def kmeans_1d(values: np.ndarray, k: int) -> np.ndarray:
    """Optimal 1-D k-means labels, numbered 0..k'-1 in ascending order of centroid.

    Equal values always share a cluster, so the number of clusters ``k'`` is
    ``min(k, number of distinct values)``. Values must be finite.

    Example:
        >>> kmeans_1d(np.array([0.0, 10.0, 0.1, 9.9, 4.8]), 3).tolist()
        [0, 2, 0, 2, 1]
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"`values` must be one-dimensional, but got shape {values.shape}.")
    if k < 1:
        raise ValueError(f"`k` must be at least 1, but got {k}.")
    if values.size == 0:
        return np.zeros(0, dtype=int)
    if not np.all(np.isfinite(values)):
        raise ValueError("`values` must be finite; drop or map NaN and inf before clustering.")

    # np.unique(..., return_inverse=True, return_counts=True), in a third of its time.
    ordered = np.sort(values)
    is_first = np.empty(ordered.size, dtype=bool)
    is_first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=is_first[1:])
    distinct = ordered[is_first]
    n = distinct.size
    k = min(k, n)
    if k == 1:
        return np.zeros(values.size, dtype=int)
    inverse = np.searchsorted(distinct, values)
    if k == n:
        return inverse
    counts = np.diff(np.append(np.flatnonzero(is_first), ordered.size))
    return kmeans_1d_weighted(distinct, counts.astype(float), k)[inverse]


def kmeans_1d_weighted(points: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Optimal 1-D k-means labels of sorted, distinct, finite ``points`` with ``weights``.

    The same clustering as :func:`kmeans_1d` of the values that ``points`` and ``weights``
    summarise (each point repeated ``weight`` times), for callers that already hold them.

    Example:
        >>> kmeans_1d_weighted(np.array([0.0, 0.1, 4.8, 9.9]), np.array([1.0, 1.0, 1.0, 2.0]), 3)
        array([0, 0, 1, 2])
    """
    n = points.size
    trivial = _labels_without_choice(n, k)
    if trivial is not None:
        return trivial
    return _labels_of_starts(_optimal_cluster_starts(points, weights, k), n)


def rank_clusters(counts: np.ndarray, k: int) -> np.ndarray:
    """Optimal 1-D k-means labels of average ranks, from the sizes of their tie groups.

    ``counts[g]`` values share the ``g``-th lowest value; each is ranked by the mean of the
    ranks its group spans (as ``scipy.stats.rankdata`` ranks them). The result equals
    :func:`kmeans_1d_weighted` of those ranks and counts up to ties between equally good
    partitions, but is exact and cheap: a cluster spanning ``s`` consecutive ranks costs
    ``(s**3 - s) / 12`` less its tie groups' own spread, which no partition changes, so the
    optimum minimises the sum of cubed cluster sizes, an integer. That sum is least when the
    sizes are level (``n // k`` and ``n // k + 1``): without ties that is the answer, and with
    a few ties it usually still is, when the cuts between level clusters can avoid splitting
    a tie group, any group too large for a level cluster being a cluster of its own
    (:func:`_level_labels_between_ties` finds such cuts). Otherwise the same
    dynamic programme as :func:`kmeans_1d_weighted` runs on the integer costs. Of equally
    good partitions the one with the larger clusters last is returned, as the programme's
    first-index rule gives in exact arithmetic.

    Example:
        >>> rank_clusters(np.array([1, 1, 1, 1, 1]), 2).tolist()
        [0, 0, 1, 1, 1]
        >>> rank_clusters(np.array([3, 1, 1, 1]), 2).tolist()
        [0, 1, 1, 1]
    """
    counts = np.asarray(counts)
    n_groups = counts.size
    trivial = _labels_without_choice(n_groups, k)
    if trivial is not None:
        return trivial
    ends = np.zeros(n_groups + 1)
    np.cumsum(counts, out=ends[1:])
    n = int(ends[-1])
    if n == n_groups:
        return _level_cluster_labels(n, k)
    level = _level_labels_between_ties(ends.astype(np.intp), k)
    if level is not None:
        return level
    if n > _MAX_RANKS:
        ranks = ends[1:] - (counts - 1) / 2.0
        return kmeans_1d_weighted(ranks, counts.astype(float), k)

    def cost(j: np.ndarray, i: np.ndarray) -> np.ndarray:
        # Sum of cubed sizes of the clusters of groups j..i-1.
        return (ends[i] - ends[j]) ** 3

    if n_groups <= _DENSE_MAX_POINTS:
        sizes = np.subtract.outer(ends, ends)
        # Two products, not np.power, which is ten times slower here.
        cost_matrix = sizes * sizes
        cost_matrix *= sizes
        starts = _dense_cluster_starts(_no_cluster_above_diagonal(cost_matrix), k)
    else:
        starts = _divide_and_conquer_starts(cost, n_groups, k)
    return _labels_of_starts(starts, n_groups)


def _labels_without_choice(n: int, k: int) -> np.ndarray | None:
    """The labels of ``n`` points in ``k`` clusters where there is nothing to choose (one
    cluster, or at least as many clusters as points); None otherwise."""
    if k <= 1:
        return np.zeros(n, dtype=int)
    if k >= n:
        return np.arange(n)
    return None


def _level_cluster_labels(n: int, k: int) -> np.ndarray:
    """Labels of ``n`` points in ``k`` contiguous clusters of ``n // k`` points and, last,
    ``n % k`` of one more: the equal-size optimum of :func:`rank_clusters` without ties."""
    size, n_larger = divmod(n, k)
    n_in_smaller = (k - n_larger) * size
    positions = np.arange(n)
    return np.where(
        positions < n_in_smaller,
        positions // size,
        k - n_larger + (positions - n_in_smaller) // (size + 1),
    )


def _level_labels_between_ties(ends: np.ndarray, k: int) -> np.ndarray | None:
    """Labels of the tie groups ending at ranks ``ends[1:]`` (``ends[0] == 0``) in the ``k``
    clusters of the least sum of cubed sizes, when that optimum is level; None otherwise.

    Level: each tie group too large for a level cluster is a cluster of its own, and the other
    ranks form level clusters (``n_level % k_level`` of ``n_level // k_level + 1`` ranks, the
    rest one smaller). No partition costs less (a rank more in a lone group's cluster costs
    more than it saves in a level one), so when such clusters can be cut between the tie
    groups, they are the optimum. On the ranks without the lone groups, after ``m`` level
    clusters, ``j`` of them larger, ``m * size + j`` ranks are covered: that must be a tie
    group's end, and no cluster may step over a lone group. Which (m, j) can be reached from
    (0, 0) is one bit set per m (a Python integer, bit j); walking back from
    (k_level, n_level % k_level), each cluster is the larger one whenever that still leads
    back to (0, 0), which is the choice of the dynamic programme's first-index rule.
    """
    counts = np.diff(ends)
    n = int(ends[-1])
    alone = np.zeros(counts.size, dtype=bool)
    while True:  # Groups left alone make the level size smaller: more may be too large.
        n_level = n - int(counts[alone].sum())
        k_level = k - int(np.count_nonzero(alone))
        if k_level < 1 or n_level < k_level:
            return None
        size, n_larger = divmod(n_level, k_level)
        too_large = counts > size + 1
        if np.array_equal(too_large, alone):
            break
        alone = too_large
    lone = np.flatnonzero(alone)
    # The ranks without the lone groups, where each lone group is a point.
    squeezed = ends - np.concatenate(([0], np.cumsum(counts * alone)))
    is_end = np.zeros(n_level + 1, dtype=bool)
    is_end[squeezed] = True
    covered = np.arange(1, k_level + 1)[:, None] * size + np.arange(n_larger + 1)
    allowed = _bit_rows(is_end[covered])
    # small[m - 1] / large[m - 1], bit j: the m-th cluster, ending at (m, j), is small / large
    # without stepping over a lone point (all bits: none to step over).
    small = large = [-1] * k_level
    if lone.size:
        points = np.zeros(n_level + 1, dtype=np.intp)
        points[squeezed[lone]] = 1
        points_up_to = np.cumsum(points)
        inside = points_up_to[covered - 1]
        small = _bit_rows(inside == points_up_to[covered - size])
        large = _bit_rows(inside == points_up_to[np.maximum(covered - size - 1, 0)])
    reachable = [1]
    for m in range(k_level):
        last = reachable[-1]
        now = allowed[m] & ((last & small[m]) | ((last << 1) & large[m]))
        if not now:
            return None
        reachable.append(now)
    if not reachable[k_level] >> n_larger & 1:
        return None
    cuts = np.empty(k_level - 1, dtype=np.intp)
    j = n_larger
    for m in range(k_level, 1, -1):
        if j and reachable[m - 1] >> (j - 1) & 1 and large[m - 1] >> j & 1:
            j -= 1
        cuts[m - 2] = (m - 1) * size + j
    if lone.size:
        # Back to ranks: a cut at a lone point is that group's start and end.
        at_point = points[cuts] > 0
        bounds = np.concatenate((ends[lone], ends[lone + 1]))
        cuts = np.union1d(
            ends[np.searchsorted(squeezed, cuts[~at_point])], bounds[(bounds > 0) & (bounds < n)]
        )
    # A group's cluster: how many cuts lie at or before its first rank.
    return np.searchsorted(cuts, ends[:-1], side="right")


def _bit_rows(mask: np.ndarray) -> list[int]:
    """Each row of a boolean matrix as a Python integer, column j at bit j."""
    rows = np.packbits(mask, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


def _labels_of_starts(starts: np.ndarray, n: int) -> np.ndarray:
    """Cluster id of each of ``n`` points: how many cluster ``starts`` lie at or before it,
    minus 1."""
    return np.searchsorted(starts, np.arange(n), side="right") - 1


def _optimal_cluster_starts(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Start index of each of the ``k`` clusters of sorted, distinct ``x`` with weights ``w``."""
    n = x.size
    # Standardise so that the prefix-sum formula for the within-cluster sum of squares does
    # not lose precision on large or offset values (x is sorted: its range is last - first).
    z = (x - x.mean()) / (x[-1] - x[0])
    moments = np.zeros((3, n + 1))
    np.cumsum(np.stack([w, w * z, w * z * z]), axis=1, out=moments[:, 1:])
    s0, s1, s2 = moments

    def cost(j: np.ndarray, i: np.ndarray) -> np.ndarray:
        # Weighted sum of squares of points j..i-1 around their mean.
        weight = s0[i] - s0[j]
        total = s1[i] - s1[j]
        return np.maximum(s2[i] - s2[j] - total * total / weight, 0.0)

    # Small inputs take one dense cost matrix, reused by every level; larger ones a
    # divide-and-conquer pass per level (O(n log n) instead of n^2).
    if n <= _DENSE_MAX_POINTS:
        return _dense_cluster_starts(_sum_of_squares_matrix(s0, s1, s2), k)
    return _divide_and_conquer_starts(cost, n, k)


def _sum_of_squares_matrix(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """[end i, start j] cost matrix of the DP from the prefix sums of the weights ``s0``,
    weighted values ``s1`` and squares ``s2``: the sum of squares of points j..i-1 around
    their mean for j < i, inf elsewhere."""
    # From outer differences of the prefix sums, in place where it can be.
    total = np.subtract.outer(s1, s1)
    np.multiply(total, total, out=total)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(total, np.subtract.outer(s0, s0), out=total)
    cost_matrix = np.subtract.outer(s2, s2)
    np.subtract(cost_matrix, total, out=cost_matrix)
    np.maximum(cost_matrix, 0.0, out=cost_matrix)
    return _no_cluster_above_diagonal(cost_matrix)


def _no_cluster_above_diagonal(cost_matrix: np.ndarray) -> np.ndarray:
    """``cost_matrix`` with inf in its cells j >= i, which hold no cluster (in place)."""
    size = cost_matrix.shape[0]
    np.copyto(cost_matrix, np.inf, where=_UPPER_TRIANGLE[:size, :size])
    return cost_matrix


def _divide_and_conquer_starts(
    cost: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int, k: int
) -> np.ndarray:
    """The cluster starts by the DP with one divide-and-conquer pass per level, where
    ``cost(j, i)`` is the cost of a cluster of points j..i-1."""
    ends = np.arange(n + 1)
    best = np.full(n + 1, np.inf)
    best[1:] = cost(np.zeros(n, dtype=int), ends[1:])
    # split[m][i]: start of the last cluster in the optimum of level m + 1.
    splits = [np.zeros(n + 1, dtype=int)]
    for m in range(2, k + 1):
        best, split = _next_level(best, cost, m, n)
        splits.append(split)
    starts = np.zeros(k, dtype=int)
    end = n
    for m in range(k, 0, -1):
        starts[m - 1] = splits[m - 1][end]
        end = starts[m - 1]
    return starts


def _dense_cluster_starts(cost_matrix: np.ndarray, k: int) -> np.ndarray:
    """The cluster starts by the DP on one (n+1) x (n+1) ``cost_matrix``: [i, j] is the cost
    of a cluster of points j..i-1, inf where j >= i.

    Only the end points that an optimum of ``k`` clusters can use are computed: at level m,
    ``i`` points in m clusters need ``m <= i <= n - k + m`` (k - m clusters follow), and the
    last cluster starts at ``j`` in ``[m - 1, i - 1]``, which is where level m - 1 was
    computed. Every other candidate is infinite, so the minima and the first-index tie-break
    are those of the full DP. The matrix is indexed [end, start], so each argmin runs along
    contiguous memory.
    """
    n = cost_matrix.shape[0] - 1
    width = n - k + 1
    # windows[m - 2] = cost_matrix[m : m + width, m - 1 : m - 1 + width], the block level m
    # reads: one strided view of the matrix, each level's block one step down its diagonal.
    row, col = cost_matrix.strides
    windows = np.ndarray(
        (k - 1, width, width), float, cost_matrix, 2 * row + col, (row + col, row, col)
    )
    # Level 1: the first i points in one cluster.
    band = cost_matrix[1 : 1 + width, 0]
    # One buffer for every level's candidates, read back through its flat index.
    candidates = np.empty((width, width))
    flat_candidates = candidates.ravel()
    row_starts = np.arange(width) * width
    # offsets[m - 2][i - m]: start of the last of the best m clusters of the first i points,
    # minus m - 1.
    offsets = np.empty((k - 2, width), dtype=np.intp)
    for window, offset in zip(windows[:-1], offsets):
        np.add(window, band, out=candidates)
        candidates.argmin(axis=1, out=offset)
        band = flat_candidates[row_starts + offset]
    # The last level is needed at one end point only: all n points in k clusters.
    end = int((windows[-1, -1] + band).argmin()) + k - 1
    starts = [0] * (k - 1) + [end]
    rows = offsets.tolist()
    for m in range(k - 1, 1, -1):
        end = rows[m - 2][end - m] + m - 1
        starts[m - 1] = end
    return np.array(starts)


def _next_level(
    prev_best: np.ndarray,
    cost: Callable[[np.ndarray, np.ndarray], np.ndarray],
    m: int,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One DP level: best cost of the first i points in m clusters, for every i >= m.

    The optimal start of the last cluster is non-decreasing in i, so the search for every
    interval's middle end point is confined to the bounds its neighbours found. All intervals
    of one recursion depth are searched together with flat NumPy arrays.
    """
    best = np.full(n + 1, np.inf)
    split = np.zeros(n + 1, dtype=int)
    # Intervals of end points [i_lo, i_hi] whose last cluster starts in [j_lo, j_hi].
    i_lo = np.array([m])
    i_hi = np.array([n])
    j_lo = np.array([m - 1])
    j_hi = np.array([n - 1])
    while i_lo.size:
        mid = (i_lo + i_hi) // 2
        top = np.minimum(mid - 1, j_hi)
        lengths = top - j_lo + 1
        segment = np.repeat(np.arange(mid.size), lengths)
        offsets = np.arange(segment.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        j = j_lo[segment] + offsets
        candidates = prev_best[j] + cost(j, mid[segment])
        seg_starts = np.cumsum(lengths) - lengths
        seg_min = np.minimum.reduceat(candidates, seg_starts)
        # First (smallest j) argmin of each segment, for a deterministic tie-break.
        is_min = np.flatnonzero(candidates <= seg_min[segment])
        _, first = np.unique(segment[is_min], return_index=True)
        best_j = j[is_min[first]]
        best[mid] = seg_min
        split[mid] = best_j

        left = i_lo <= mid - 1
        right = mid + 1 <= i_hi
        i_lo, i_hi, j_lo, j_hi = (
            np.concatenate([i_lo[left], mid[right] + 1]),
            np.concatenate([mid[left] - 1, i_hi[right]]),
            np.concatenate([j_lo[left], best_j[right]]),
            np.concatenate([best_j[left], j_hi[right]]),
        )
    return best, split
