"""Samplers by name, as ``kmtpe search --sampler`` and ``kmtpe bench --samplers`` accept them."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.samplers import BaseSampler

from optuna_kmtpe._sampler import KMeansTPESampler


def _hyperopt(seed: int, startup: int) -> BaseSampler:
    # Imported on use: hyperopt is an optional dependency (the `bench` extra).
    from optuna_kmtpe._bench.hyperopt_sampler import HyperoptSampler

    return HyperoptSampler(seed=seed, n_startup_trials=startup)


def _catcmawm(seed: int, startup: int) -> BaseSampler:
    # Imported on use: cmaes is an optional dependency (the `peers` extra). CMA-ES starts
    # from its own initial distribution: no random startup trials.
    from optuna_kmtpe._bench.catcmawm_sampler import CatCMAwMSampler

    return CatCMAwMSampler(seed=seed)


SAMPLERS: dict[str, Callable[[int, int], BaseSampler]] = {
    # The package default: the rank dead-zone split and the no-repeat rule.
    "kmeans-tpe": lambda seed, startup: KMeansTPESampler(seed=seed, n_startup_trials=startup),
    # The default before the rank split: the dead zone from clusters of the values.
    "kmeans-tpe-dead-zone": lambda seed, startup: KMeansTPESampler(
        seed=seed, n_startup_trials=startup, split="dead-zone"
    ),
    # The method as published: the paper's split, repeats allowed.
    "kmeans-tpe-paper": lambda seed, startup: KMeansTPESampler(
        seed=seed, n_startup_trials=startup, split="paper", avoid_repeats=False
    ),
    "tpe": lambda seed, startup: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
    "tpe-univariate": lambda seed, startup: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup, multivariate=False
    ),
    "random": lambda seed, startup: optuna.samplers.RandomSampler(seed=seed),
    # Peers: hyperopt's TPE (the paper's comparator) and Optuna's Gaussian-process BO.
    "hyperopt": _hyperopt,
    "gp": lambda seed, startup: optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup),
    # The cmaes package's CMA-ES for mixed continuous / integer / categorical spaces.
    "catcmawm": _catcmawm,
    # TPESampler() plus Optuna's FAQ recipe in the objective (returns an earlier trial's value
    # for a repeat); only `kmtpe bench` applies the recipe (see objective_recipe).
    "tpe-dedup": lambda seed, startup: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup
    ),
}
# Samplers whose comparison includes a change to the objective, as a user would write it.
OBJECTIVE_RECIPES = ("tpe-dedup",)
# The samplers `kmtpe search` / `kmtpe compare` offer: those that need no objective recipe.
SEARCH_SAMPLERS = tuple(name for name in SAMPLERS if name not in OBJECTIVE_RECIPES)


def make_sampler(name: str, seed: int, n_startup_trials: int) -> BaseSampler:
    """A fresh sampler ``name``; a clear error lists the known names."""
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown sampler {name!r}. Known samplers: {', '.join(SAMPLERS)}."
        ) from None
    return factory(seed, n_startup_trials)


def objective_recipe(name: str) -> Callable[[Any], Any]:
    """What ``kmtpe bench`` does to a task's objective for sampler ``name``: Optuna's FAQ
    de-duplication recipe for ``tpe-dedup``, nothing for the others.

    Example:
        >>> objective_recipe("tpe")(len)("abc")
        3
    """
    if name == "tpe-dedup":
        from optuna_kmtpe._bench.dedup import reuse_earlier_value

        return reuse_earlier_value
    return lambda objective: objective


def in_registry_order(names: Iterable[str]) -> list[str]:
    """The distinct ``names``, known samplers first in the order of :data:`SAMPLERS`.

    Example:
        >>> in_registry_order(["random", "tpe", "mine", "kmeans-tpe", "tpe"])
        ['kmeans-tpe', 'tpe', 'random', 'mine']
    """
    distinct = list(dict.fromkeys(names))
    return [n for n in SAMPLERS if n in distinct] + [n for n in distinct if n not in SAMPLERS]
