"""Samplers by name, as ``kmtpe search --sampler`` and ``kmtpe bench --samplers`` accept them."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.samplers import BaseSampler

from optuna_kmtpe._sampler import KMeansTPESampler


SAMPLERS: dict[str, Callable[[int, int], BaseSampler]] = {
    "kmeans-tpe": lambda seed, startup: KMeansTPESampler(seed=seed, n_startup_trials=startup),
    "kmeans-tpe-dead-zone": lambda seed, startup: KMeansTPESampler(
        seed=seed, n_startup_trials=startup, split="dead-zone"
    ),
    "tpe": lambda seed, startup: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
    "tpe-univariate": lambda seed, startup: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup, multivariate=False
    ),
    "random": lambda seed, startup: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(name: str, seed: int, n_startup_trials: int) -> BaseSampler:
    """A fresh sampler ``name``; a clear error lists the known names."""
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown sampler {name!r}. Known samplers: {', '.join(SAMPLERS)}."
        ) from None
    return factory(seed, n_startup_trials)
