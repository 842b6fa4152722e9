"""The sampler proposes, for a fixed seed, exactly what it proposed when the proposals in
``sampler_proposals.json`` were recorded: speed-ups of the sampler must not change them.

The recorded studies cover a tabular-like discrete space (the no-repeat rule and its
enumeration of unseen configurations, a space used up), a continuous / mixed one for every
split, pruned and infeasible trials, ties, and two objectives; the file also holds the 1-D
k-means of equally spaced points and of ranks with ties, and the rank split's clusters of them
(:func:`~optuna_kmtpe._kmeans1d.rank_clusters`, exact, which breaks ties between equally good
partitions by a stated rule instead of by rounding). After an intended change of the
proposals, rewrite the file with ``python -m tests.test_sampler_proposals`` and say why in
the commit.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import math
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_kmtpe import KMeansTPESampler
from optuna_kmtpe._kmeans1d import kmeans_1d
from optuna_kmtpe._kmeans1d import kmeans_1d_weighted
from optuna_kmtpe._kmeans1d import rank_clusters


_RECORDED = Path(__file__).with_name("sampler_proposals.json")
_N_TRIALS = 60

# NAS-Bench-201-like: 6 edges x 5 operations, all categorical (15,625 cells).
_CELLS: dict[str, BaseDistribution] = {
    f"op{i}": CategoricalDistribution(["none", "skip", "conv1", "conv3", "pool"]) for i in range(6)
}
# HPOLib-like: ordered integer indices and categoricals.
_INDICES: dict[str, BaseDistribution] = {
    "lr": IntDistribution(0, 5),
    "batch": IntDistribution(0, 3),
    "units": IntDistribution(0, 5, step=1),
    "act": CategoricalDistribution(["relu", "tanh"]),
    "dropout": FloatDistribution(0.0, 0.6, step=0.3),
}
# 36 configurations: used up within the study.
_SMALL: dict[str, BaseDistribution] = {
    "a": CategoricalDistribution([1, 2, 3, 4]),
    "b": IntDistribution(0, 2),
    "c": CategoricalDistribution(["x", "y", "z"]),
}
_MIXED: dict[str, BaseDistribution] = {
    "x": FloatDistribution(-5.0, 5.0),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "s": FloatDistribution(0.0, 1.0, step=0.1),
    "n": IntDistribution(1, 64, log=True),
    "c": CategoricalDistribution(["a", "b", "c"]),
}


def _suggest(trial: optuna.Trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(
                name, dist.low, dist.high, log=dist.log, step=dist.step
            )
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(
                name, dist.low, dist.high, log=dist.log, step=dist.step
            )
        else:
            assert isinstance(dist, CategoricalDistribution)
            params[name] = trial.suggest_categorical(name, dist.choices)
    return params


def _score(params: dict[str, Any]) -> float:
    """A deterministic, tie-rich value of any configuration."""
    total = 0.0
    for i, (name, value) in enumerate(sorted(params.items())):
        if isinstance(value, str):
            value = sum(map(ord, value)) % 7
        total += (i + 1) * math.sin(float(value) + i) ** 2
    return total


def _study(
    space: dict[str, BaseDistribution],
    digits: int,
    *,
    direction: Literal["minimize", "maximize"] = "minimize",
    prune: bool = False,
    constraints: bool = False,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    sampler = KMeansTPESampler(seed=1, **kwargs)
    study = optuna.create_study(direction=direction, sampler=sampler)
    for _ in range(_N_TRIALS):
        trial = study.ask()
        params = _suggest(trial, space)
        if constraints:
            trial.set_constraint("c0", 1.0 if trial.number % 9 == 4 else -1.0)
        if prune and trial.number % 7 == 3:
            trial.report(round(_score(params), digits), 0)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, round(_score(params), digits))
    return [t.params for t in study.trials]


def _two_objectives() -> list[dict[str, Any]]:
    study = optuna.create_study(
        directions=["minimize", "maximize"], sampler=KMeansTPESampler(seed=2)
    )
    for _ in range(40):
        trial = study.ask()
        params = _suggest(trial, _INDICES)
        score = round(_score(params), 1)
        study.tell(trial, [score, round(params["lr"] - params["units"] * 0.5, 1)])
    return [t.params for t in study.trials]


_CASES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "cells": lambda: _study(_CELLS, 2, direction="maximize"),
    "cells, repeats allowed": lambda: _study(_CELLS, 2, avoid_repeats=False),
    "indices, ties": lambda: _study(_INDICES, 0),
    "indices, pruned and infeasible": lambda: _study(_INDICES, 1, prune=True, constraints=True),
    "small, used up": lambda: _study(_SMALL, 1),
    "mixed": lambda: _study(_MIXED, 2),
    "mixed, dead-zone": lambda: _study(_MIXED, 1, split="dead-zone"),
    "mixed, paper": lambda: _study(_MIXED, 1, split="paper"),
    "mixed, univariate": lambda: _study(_MIXED, 1, multivariate=False, n_startup_trials=20),
    "two objectives": _two_objectives,
}


def _kmeans_cases() -> dict[str, list[int]]:
    """Labels of equally spaced points and of ranks with ties, for every k that the DP runs
    on, and the rank split's clusters of the same (:func:`rank_clusters`)."""
    labels = {}
    for n in range(3, 131, 7):
        points = np.arange(1.0, n + 1.0)
        for k in range(2, n, max(1, n // 9)):
            labels[f"arange {n}, k={k}"] = kmeans_1d(points, k).tolist()
    rng = np.random.default_rng(0)
    for n in (40, 90, 150):
        counts = rng.integers(1, 4, size=n).astype(float)
        ranks = np.cumsum(counts) - (counts - 1) / 2.0
        for k in (3, 8, 24, n // 2):
            labels[f"ranks {n}, k={k}"] = kmeans_1d_weighted(ranks, counts, k).tolist()
            labels[f"rank clusters {n}, k={k}"] = rank_clusters(counts, k).tolist()
            labels[f"rank clusters {n} untied, k={k}"] = rank_clusters(np.ones(n), k).tolist()
    return labels


def _record() -> dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return {
        "proposals": {name: case() for name, case in _CASES.items()},
        "kmeans": _kmeans_cases(),
    }


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(_RECORDED.read_text())


@pytest.mark.parametrize("name", list(_CASES))
def test_proposals_are_the_recorded_ones(name: str, recorded: dict[str, Any]) -> None:
    # Through JSON, as recorded: tuples and lists, ints and floats compare as they were written.
    got = json.loads(json.dumps(_CASES[name]()))
    assert got == recorded["proposals"][name]


def test_kmeans_labels_are_the_recorded_ones(recorded: dict[str, Any]) -> None:
    assert _kmeans_cases() == recorded["kmeans"]


if __name__ == "__main__":
    _RECORDED.write_text(json.dumps(_record(), indent=None, separators=(",", ":")) + "\n")
