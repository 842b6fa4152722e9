"""A first k-means TPE study: a small mixed-precision-shaped problem, next to Optuna's TPE.

    python examples/quickstart.py

The objective is synthetic (optuna_kmtpe._synthetic.MixedPrecisionProxy): 16 layers, each
with a bit-width and a width multiplier, an accuracy-like score rounded to 0.005 and a size
budget. It runs in a few seconds.
"""

from __future__ import annotations

import optuna

from optuna_kmtpe import KMeansTPESampler
from optuna_kmtpe._synthetic import MixedPrecisionProxy


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = MixedPrecisionProxy()
    for name, sampler in [
        ("KMeansTPESampler", KMeansTPESampler(seed=0, n_startup_trials=20)),
        (
            'KMeansTPESampler(split="paper")',
            KMeansTPESampler(seed=0, n_startup_trials=20, split="paper"),
        ),
        ("TPESampler", optuna.samplers.TPESampler(seed=0, n_startup_trials=20)),
    ]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=60, show_progress_bar=True)
        bits = [study.best_params[f"bits_{i}"] for i in range(objective.n_layers)]
        distinct = len({tuple(sorted(t.params.items())) for t in study.trials})
        print(
            f"{name}: best score {study.best_value:.3f} (synthetic), bits {bits},"
            f" {distinct} distinct configurations in {len(study.trials)} trials"
        )


if __name__ == "__main__":
    main()
