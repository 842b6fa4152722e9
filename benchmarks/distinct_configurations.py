"""How many distinct configurations does each sampler evaluate on a discrete space?

The space is shaped like the pruned quantisation search of ``kmtpe search``: 4 layers, each with
a bit-width from its pruned subset ({8,6}, {6,4,3}, {4,3,2}, {3,2}) and a width multiplier
from {0.75, ..., 1.25} (12,000 configurations). The score is synthetic (a bit-width optimum
per layer and a width penalty, rounded to 0.1, so the landscape is flat with many ties). Each
study runs 40 random and 120 model-based trials; the table gives, per sampler, the share of
distinct configurations among the model-based trials (median and range over seeds), and the
largest number of times one configuration was evaluated.

    python benchmarks/distinct_configurations.py --seeds 10
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable

import numpy as np
import optuna
import pandas as pd

from optuna_kmtpe import KMeansTPESampler


BITS = [[8, 6], [6, 4, 3], [4, 3, 2], [3, 2]]
WIDTHS = [0.75, 0.875, 1.0, 1.125, 1.25]
SAMPLERS: dict[str, Callable[[int, int], optuna.samplers.BaseSampler]] = {
    "KMeansTPESampler()": lambda seed, n0: KMeansTPESampler(seed=seed, n_startup_trials=n0),
    "KMeansTPESampler(avoid_repeats=False)": lambda seed, n0: KMeansTPESampler(
        seed=seed, n_startup_trials=n0, avoid_repeats=False
    ),
    'KMeansTPESampler(split="dead-zone", avoid_repeats=False)': lambda seed, n0: KMeansTPESampler(
        seed=seed, n_startup_trials=n0, split="dead-zone", avoid_repeats=False
    ),
    'KMeansTPESampler(split="paper")': lambda seed, n0: KMeansTPESampler(
        seed=seed, n_startup_trials=n0, split="paper"
    ),
    'KMeansTPESampler(split="paper", avoid_repeats=False)': lambda seed, n0: KMeansTPESampler(
        seed=seed, n_startup_trials=n0, split="paper", avoid_repeats=False
    ),
    "TPESampler": lambda seed, n0: optuna.samplers.TPESampler(seed=seed, n_startup_trials=n0),
    "RandomSampler": lambda seed, n0: optuna.samplers.RandomSampler(seed=seed),
}


def objective(trial: optuna.Trial) -> float:
    score = 0.0
    for i, bits in enumerate(BITS):
        b = trial.suggest_categorical(f"bits_{i}", bits)
        w = trial.suggest_categorical(f"width_{i}", WIDTHS)
        score += -abs(np.log2(b) - 2.2) * (i + 1) * 0.3 + 0.2 * w - 0.5 * (w - 1) ** 2
    return round(score, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--startup", type=int, default=40)
    parser.add_argument("--trials", type=int, default=160)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for name, make in SAMPLERS.items():
        for seed in range(args.seeds):
            study = optuna.create_study(direction="maximize", sampler=make(seed, args.startup))
            study.optimize(objective, n_trials=args.trials)
            configs = Counter(tuple(sorted(t.params.items())) for t in study.trials)
            model_based = [tuple(sorted(t.params.items())) for t in study.trials[args.startup :]]
            rows.append(
                {
                    "sampler": name,
                    "seed": seed,
                    "distinct share": len(set(model_based)) / len(model_based),
                    "most repeats": max(configs.values()),
                    "best": study.best_value,
                }
            )
    frame = pd.DataFrame(rows)
    table = frame.groupby("sampler", sort=False).agg(
        share_median=("distinct share", "median"),
        share_min=("distinct share", "min"),
        share_max=("distinct share", "max"),
        most_repeats=("most repeats", "max"),
        best_median=("best", "median"),
    )
    print(
        f"Distinct configurations among trials {args.startup + 1}-{args.trials}"
        f" ({args.seeds} seeds, {args.startup} random first)"
    )
    print(table.to_markdown(floatfmt=".2f"))


if __name__ == "__main__":
    main()
