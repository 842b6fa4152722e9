"""A first k-means TPE study, next to Optuna's TPE and random search, over several seeds.

    python examples/quickstart.py [--seeds 5] [--trials 60]

Part 1, a mixed-precision search in miniature: 8 layers, each with a bit-width and a width
multiplier; the score is accuracy-like (each layer loses accuracy by its sensitivity and its
bits, rounded to 0.005 as an accuracy on 200 images is), with a size budget. One seed's best
score is a noisy draw, so each sampler runs ``--seeds`` seeds and the mean and spread are
printed: differences inside the spread are noise.

Part 2, what the no-repeat rule is for: a small, fully discrete space (4 layers x 3
bit-widths = 81 configurations). Optuna's TPE proposes configurations it has already tried
(each one a wasted training run in a real search); k-means TPE proposes a new one every time
while unseen ones remain. The count of distinct configurations per study is printed.
Synthetic objectives, no torch; a few seconds per part.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import statistics

import numpy as np
import optuna

from optuna_kmtpe import KMeansTPESampler


BITS = (2, 3, 4, 6, 8)
WIDTHS = (0.75, 1.0, 1.25)
_RNG = np.random.RandomState(0)
SENSITIVITY = 10 ** _RNG.uniform(-3.0, 0.0, 8)  # spans three decades, as Hessian traces do
WEIGHTS = 10 ** _RNG.uniform(3.0, 5.0, 8)


def mixed_precision(trial: optuna.Trial) -> float:
    """Accuracy-like score of 8 layers' bits and widths; -0.5 over the size budget."""
    bits = np.array([trial.suggest_categorical(f"bits_{i}", BITS) for i in range(8)], float)
    widths = np.array([trial.suggest_categorical(f"width_{i}", WIDTHS) for i in range(8)])
    accuracy = 0.9 * np.exp(-np.sum(SENSITIVITY * 4.0 ** -(bits - 2.0) / widths))
    over_budget = np.sum(WEIGHTS * widths * bits) > 0.5 * np.sum(WEIGHTS * 8.0)
    return float(np.round((accuracy - 0.5 * over_budget) / 0.005) * 0.005)


def small_discrete(trial: optuna.Trial) -> float:
    """81 configurations: 4 layers x bits {2, 4, 8}; fewer bits cost accuracy."""
    bits = np.array([trial.suggest_categorical(f"bits_{i}", (2, 4, 8)) for i in range(4)], float)
    return float(0.9 * np.exp(-np.sum(SENSITIVITY[:4] * 4.0 ** -(bits - 2.0))) - 0.01 * bits.sum())


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "KMeansTPESampler (default)": lambda seed: KMeansTPESampler(seed=seed, n_startup_trials=10),
    "TPESampler": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
    "RandomSampler": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def _studies(
    objective: Callable[[optuna.Trial], float], seeds: int, trials: int
) -> dict[str, list[optuna.Study]]:
    out: dict[str, list[optuna.Study]] = {}
    for name, make in SAMPLERS.items():
        out[name] = []
        for seed in range(seeds):
            study = optuna.create_study(direction="maximize", sampler=make(seed))
            study.optimize(objective, n_trials=trials)
            out[name].append(study)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="k-means TPE next to TPE and random search")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per sampler (default 5)")
    parser.add_argument("--trials", type=int, default=60, help="trials per study (default 60)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    print(f"Part 1: mixed-precision miniature, {args.trials} trials, seeds 0..{args.seeds - 1}")
    print("  best score (synthetic accuracy): mean +- sd over seeds [min, max]")
    for name, studies in _studies(mixed_precision, args.seeds, args.trials).items():
        best = [s.best_value for s in studies]
        sd = statistics.stdev(best) if len(best) > 1 else 0.0
        print(
            f"  {name:<28} {statistics.mean(best):.3f} +- {sd:.3f} [{min(best):.3f}, "
            f"{max(best):.3f}]"
        )

    print(f"\nPart 2: 81 discrete configurations, {args.trials} trials (10 random first)")
    print("  distinct configurations tried per study (the rest repeated an earlier one)")
    for name, studies in _studies(small_discrete, args.seeds, args.trials).items():
        distinct = [len({tuple(sorted(t.params.items())) for t in s.trials}) for s in studies]
        print(f"  {name:<28} {distinct} of {args.trials}")


if __name__ == "__main__":
    main()
