"""Cost evaluations per second for ImageNet ResNet-18 once its shapes are cached.

Usage::

    PYTHONPATH=. python benchmarks/bench_cost.py [--evals 5000] [--repeats 5]

Builds ``zoo_cost_model("resnet18", 1000)`` once (timed separately), then evaluates
random per-layer configurations (bits from {8, 6, 4, 3, 2}, widths from {0.75, ..., 1.25})
on one thread and prints the median rate over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from optuna_kmtpe._zoo.models import zoo_cost_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    cost = zoo_cost_model("resnet18", 1000)
    setup = time.perf_counter() - start

    rng = np.random.default_rng(0)
    n = cost.num_layers
    bits = rng.choice([8, 6, 4, 3, 2], (args.evals, n)).tolist()
    widths = rng.choice([0.75, 0.875, 1.0, 1.125, 1.25], (args.evals, n)).tolist()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for b, w in zip(bits, widths):
            cost.evaluate(b, w)
        rates.append(args.evals / (time.perf_counter() - start))
    print(f"resnet18 (ImageNet, {n} layers): setup (build on meta + trace) {setup:.2f} s")
    print(
        f"cost evaluations per second: median {statistics.median(rates):,.0f} "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}; {args.repeats} x {args.evals} "
        "evaluations of Python-list configurations, 1 thread)"
    )


if __name__ == "__main__":
    main()
