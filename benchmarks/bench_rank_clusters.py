"""The rank split's clustering: ``rank_clusters`` next to the float programme it replaced.

The default split clusters the average ranks of the objective values. Before commit 6ac2df3
that was :func:`optuna_kmtpe._kmeans1d.kmeans_1d_weighted` on the float ranks (one NumPy step
per cluster); :func:`optuna_kmtpe._kmeans1d.rank_clusters` finds the same optimum in integers,
in closed form without ties, by a bit-set walk with a few, and by the programme otherwise.
Inputs: 100 and 200 ranks, k of the default schedule near 100 and 200 trials, no ties, three
tied pairs, and 20% of the values in tied pairs. Prints a markdown table of the best of
``--repeat`` x ``--number`` calls.

    python benchmarks/bench_rank_clusters.py
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import functools
import timeit

import numpy as np

from optuna_kmtpe._kmeans1d import kmeans_1d_weighted
from optuna_kmtpe._kmeans1d import rank_clusters


def tie_counts(n: int, ties: str, rng: np.random.Generator) -> np.ndarray:
    """Sizes of the tie groups of ``n`` ranks: ``none``, ``3 pairs`` or ``20% in pairs``."""
    if ties == "none":
        return np.ones(n, dtype=int)
    if ties == "3 pairs":
        counts = np.ones(n - 3, dtype=int)
        counts[rng.choice(n - 3, 3, replace=False)] = 2
        return counts
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(2 if rng.random() < 0.2 else 1, n - sum(sizes)))
    return np.array(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    def best_ms(function: Callable[..., np.ndarray], *arguments: object) -> float:
        call = functools.partial(function, *arguments)
        return 1e3 * min(timeit.repeat(call, number=args.number, repeat=args.repeat)) / args.number

    rng = np.random.default_rng(0)
    print("| ranks | k | tied values | rank_clusters | float programme |")
    print("|--:|--:|:--|--:|--:|")
    for n, ks in ((100, (24, 60)), (200, (100, 185))):
        for k in ks:
            for ties in ("none", "3 pairs", "20% in pairs"):
                counts = tie_counts(n, ties, rng)
                k_used = min(k, counts.size - 1)
                ranks = np.cumsum(counts) - (counts - 1) / 2.0
                weights = counts.astype(float)
                new = best_ms(rank_clusters, counts, k_used)
                old = best_ms(kmeans_1d_weighted, ranks, weights, k_used)
                print(f"| {n} | {k_used} | {ties} | {new:.3f} ms | {old:.3f} ms |")


if __name__ == "__main__":
    main()
