"""First convergence check of KMeansTPESampler on cheap flat objectives.

Runs each sampler on each synthetic task for several seeds and prints the median and IQR of
the best value so far at a few trial counts (higher is better), side by side.

    python benchmarks/convergence_flat.py --seeds 10 --trials 100 --startup 20

The full comparison (tabular tasks, statistics, figures) is ``kmtpe bench``; this script is the
quick referee used while developing the sampler.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
import itertools

import numpy as np
import optuna
import pandas as pd

from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._synthetic import MixedPrecisionProxy
from optuna_kmtpe._synthetic import TerracedRosenbrock


TASKS: dict[str, Callable[[optuna.Trial], float]] = {
    "mixed-precision": MixedPrecisionProxy(),
    "terraced-rosenbrock": TerracedRosenbrock(),
}


def best_so_far(task: str, sampler: str, seed: int, trials: int, startup: int) -> np.ndarray:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed, startup))
    study.optimize(TASKS[task], n_trials=trials)
    values = np.array([t.value for t in study.trials], dtype=float)
    return np.maximum.accumulate(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--startup", type=int, default=20)
    parser.add_argument("--samplers", default="kmeans-tpe,kmeans-tpe-paper,tpe,random")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--checkpoints", default="20,40,60,100")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    samplers = args.samplers.split(",")
    tasks = args.tasks.split(",")
    checkpoints = [int(c) for c in args.checkpoints.split(",") if int(c) <= args.trials]
    runs = list(itertools.product(tasks, samplers, range(args.seeds)))
    with ProcessPoolExecutor(args.workers) as pool:
        curves = list(
            pool.map(
                best_so_far,
                *zip(*runs),
                itertools.repeat(args.trials),
                itertools.repeat(args.startup),
            )
        )

    rows = []
    for (task, sampler, seed), curve in zip(runs, curves):
        for c in checkpoints:
            rows.append(
                {"task": task, "sampler": sampler, "seed": seed, "trial": c, "best": curve[c - 1]}
            )
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["task", "trial", "sampler"])["best"].agg(
        median="median",
        q25=lambda s: s.quantile(0.25),
        q75=lambda s: s.quantile(0.75),
    )
    table = summary.apply(
        lambda r: f"{r['median']:.4f} [{r['q25']:.4f}, {r['q75']:.4f}]", axis=1
    ).unstack("sampler")[samplers]
    print(f"median [IQR] of best-so-far, {args.seeds} seeds, {args.startup} random trials first")
    print(table.to_markdown())


if __name__ == "__main__":
    main()
