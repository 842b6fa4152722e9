"""The sampler's own cost per trial, KMeansTPESampler next to Optuna's TPESampler.

A 10-dimensional mixed space (log / stepped / plain floats, ints, categoricals) is filled with
``n`` random trials whose values are a rounded (tie-rich) function; then every sampler, on its
own copy of that history, proposes ``--repeats`` further trials and the mean wall time of
``ask`` + the ten ``suggest`` calls + ``tell`` is printed per sampler and history size, in one
run so the ratios are comparable on a noisy machine.

    python benchmarks/bench_sampler_overhead.py --sizes 100,1000 --repeats 20
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import time

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pandas as pd

from optuna_kmtpe import KMeansTPESampler


SPACE: dict[str, BaseDistribution] = {
    "f0": FloatDistribution(-5.0, 5.0),
    "f1": FloatDistribution(1e-4, 1.0, log=True),
    "f2": FloatDistribution(0.0, 1.0, step=0.1),
    "i0": IntDistribution(0, 10),
    "i1": IntDistribution(1, 1024, log=True),
    "c0": CategoricalDistribution([2, 3, 4, 6, 8]),
    "c1": CategoricalDistribution([0.75, 0.875, 1.0, 1.125, 1.25]),
    "c2": CategoricalDistribution(["relu", "gelu", "silu"]),
    "c3": CategoricalDistribution([True, False]),
    "f3": FloatDistribution(-1.0, 1.0),
}

SAMPLERS = {
    "KMeansTPESampler": lambda: KMeansTPESampler(seed=0),
    "KMeansTPESampler(alpha=1, k=4)": lambda: KMeansTPESampler(seed=0, alpha=1.0),
    'KMeansTPESampler(split="dead-zone")': lambda: KMeansTPESampler(seed=0, split="dead-zone"),
    "TPESampler": lambda: optuna.samplers.TPESampler(seed=0),
    "TPESampler(multivariate=False)": lambda: optuna.samplers.TPESampler(
        seed=0, multivariate=False
    ),
}


def value_of(params: dict) -> float:
    x = params["f0"] ** 2 + np.log10(params["f1"]) ** 2 + params["i0"] / 10 + 8 / params["c0"]
    return round(float(x), 1)


def history(n: int) -> list[optuna.trial.FrozenTrial]:
    rng = np.random.RandomState(0)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    trials = []
    for _ in range(n):
        trial = study.ask(SPACE)
        trials.append(
            optuna.trial.create_trial(
                params=trial.params, distributions=SPACE, value=value_of(trial.params)
            )
        )
        study.tell(trial, rng.rand())
    return trials


def seconds_per_trial(
    make_sampler: Callable[[], optuna.samplers.BaseSampler], trials: list, repeats: int
) -> float:
    study = optuna.create_study(sampler=make_sampler())
    study.add_trials(trials)
    start = time.perf_counter()
    for _ in range(repeats):
        trial = study.ask()
        params = {name: _suggest(trial, name, dist) for name, dist in SPACE.items()}
        study.tell(trial, value_of(params))
    return (time.perf_counter() - start) / repeats


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> object:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    assert isinstance(dist, CategoricalDistribution)
    return trial.suggest_categorical(name, dist.choices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        trials = history(n)
        for name, make in SAMPLERS.items():
            ms = 1e3 * seconds_per_trial(make, trials, args.repeats)
            rows.append({"trials in history": n, "sampler": name, "ms per trial": ms})
    table = pd.DataFrame(rows).pivot(
        index="sampler", columns="trials in history", values="ms per trial"
    )
    table = table.loc[list(SAMPLERS)]
    print(f"Sampler overhead, ms per trial (mean of {args.repeats}), 10-D mixed space")
    print(table.to_markdown(floatfmt=".2f"))
    print()
    for name in SAMPLERS:
        if name.startswith("KMeansTPESampler"):
            ratio = table.loc[name] / table.loc["TPESampler"]
            print(f"{name} / TPESampler:", ", ".join(f"{n}: {r:.2f}x" for n, r in ratio.items()))


if __name__ == "__main__":
    main()
