"""The sampler's own cost per trial, KMeansTPESampler next to Optuna's TPESampler.

Four spaces: ``mixed`` (10-D: log / stepped / plain floats, ints, categoricals),
``discrete`` (8 layers x (bit-width, width multiplier), all categorical), and two shaped like
the tabular suites of ``kmtpe bench`` as ``optuna_kmtpe._bench.tabular`` encodes them:
``nb201`` (NAS-Bench-201: 6 edges x 5 operations, categorical indices, 15,625 cells) and
``hpolib`` (HPOLib: 3 categorical and 6 ordered integer indices, 62,208 configurations). The
no-repeat rule is active on the last three. ``mixed`` and ``discrete`` take a rounded
(tie-rich) value; the tabular ones a value with two decimals, like the tables' accuracies,
mostly distinct at these sizes. Each space is filled with ``n`` random trials; then every
sampler, on its own copy of that history, proposes ``--repeats`` further trials, and the mean
CPU time of the process (``time.process_time``: single-threaded work, and less disturbed than
wall time by other jobs on a shared machine) for ``ask`` + the suggestions + ``tell`` is
taken. This is done ``--rounds`` times with the samplers in rotating order, and the table
shows the median over rounds; the ratio to TPESampler is the median of the per-round ratios,
so a load change on a shared machine hits both sides of a ratio alike.

    python benchmarks/bench_sampler_overhead.py --sizes 100,1000 --repeats 20 --rounds 7
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


MIXED_SPACE: dict[str, BaseDistribution] = {
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
_BITS = [[8, 6], [6, 4, 3], [4, 3, 2], [3, 2]] * 2
DISCRETE_SPACE: dict[str, BaseDistribution] = {
    name: dist
    for i, bits in enumerate(_BITS)
    for name, dist in [
        (f"bits_{i}", CategoricalDistribution(bits)),
        (f"width_{i}", CategoricalDistribution([0.75, 0.875, 1.0, 1.125, 1.25])),
    ]
}
NB201_SPACE: dict[str, BaseDistribution] = {
    f"edge_{i}_index": CategoricalDistribution(list(range(5))) for i in range(6)
}
HPOLIB_SPACE: dict[str, BaseDistribution] = {
    "activation_fn_1_index": CategoricalDistribution([0, 1]),
    "activation_fn_2_index": CategoricalDistribution([0, 1]),
    "batch_size_index": IntDistribution(0, 3),
    "dropout_1_index": IntDistribution(0, 2),
    "dropout_2_index": IntDistribution(0, 2),
    "init_lr_index": IntDistribution(0, 5),
    "lr_schedule_index": CategoricalDistribution([0, 1]),
    "n_units_1_index": IntDistribution(0, 5),
    "n_units_2_index": IntDistribution(0, 5),
}
SPACES = {
    "mixed": MIXED_SPACE,
    "discrete": DISCRETE_SPACE,
    "nb201": NB201_SPACE,
    "hpolib": HPOLIB_SPACE,
}

SAMPLERS = {
    "KMeansTPESampler()": lambda: KMeansTPESampler(seed=0),
    'KMeansTPESampler(split="dead-zone")': lambda: KMeansTPESampler(seed=0, split="dead-zone"),
    'KMeansTPESampler(split="paper")': lambda: KMeansTPESampler(seed=0, split="paper"),
    "TPESampler": lambda: optuna.samplers.TPESampler(seed=0),
    "TPESampler(multivariate=False)": lambda: optuna.samplers.TPESampler(
        seed=0, multivariate=False
    ),
}


def value_of(params: dict) -> float:
    if "f0" in params:
        x = params["f0"] ** 2 + np.log10(params["f1"]) ** 2 + params["i0"] / 10 + 8 / params["c0"]
    elif "bits_0" in params:
        x = sum(np.log2(params[f"bits_{i}"]) * params[f"width_{i}"] for i in range(len(_BITS)))
    else:
        # Tabular: an additive effect per index and an interaction, two decimals as in the tables.
        indices = [int(params[name]) for name in sorted(params)]
        effect = sum((i % 3 + 1) * np.sin(1.7 * v + i) for i, v in enumerate(indices))
        interaction = np.sin(sum((i + 1) * 7.3 * v for i, v in enumerate(indices)))
        return round(float(80.0 + 2.0 * effect + 1.5 * interaction), 2)
    return round(float(x), 1)


def history(space: dict[str, BaseDistribution], n: int) -> list[optuna.trial.FrozenTrial]:
    rng = np.random.RandomState(0)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    trials = []
    for _ in range(n):
        trial = study.ask(space)
        trials.append(
            optuna.trial.create_trial(
                params=trial.params, distributions=space, value=value_of(trial.params)
            )
        )
        study.tell(trial, rng.rand())
    return trials


def seconds_per_trial(
    make_sampler: Callable[[], optuna.samplers.BaseSampler],
    space: dict[str, BaseDistribution],
    trials: list,
    repeats: int,
) -> float:
    study = optuna.create_study(sampler=make_sampler())
    study.add_trials(trials)
    start = time.process_time()
    for _ in range(repeats):
        trial = study.ask()
        params = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        study.tell(trial, value_of(params))
    return (time.process_time() - start) / repeats


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spaces", default=",".join(SPACES))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rows = []
    names = list(SAMPLERS)
    for space_name in args.spaces.split(","):
        space = SPACES[space_name]
        for n in (int(s) for s in args.sizes.split(",")):
            trials = history(space, n)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    ms = 1e3 * seconds_per_trial(SAMPLERS[name], space, trials, args.repeats)
                    rows.append(
                        {"space": space_name, "n": n, "round": r, "sampler": name, "ms": ms}
                    )
            print(f"{space_name}, {n} trials: done", flush=True)
    frame = pd.DataFrame(rows)
    tpe = frame[frame["sampler"] == "TPESampler"].set_index(["space", "n", "round"])["ms"]
    frame["ratio"] = (
        frame["ms"].to_numpy()
        / tpe.loc[list(zip(frame["space"], frame["n"], frame["round"]))].to_numpy()
    )
    summary = frame.groupby(["space", "sampler", "n"])[["ms", "ratio"]].median().unstack("n")
    print(
        f"Sampler overhead: median over {args.rounds} rounds of the mean CPU ms per trial"
        f" ({args.repeats} proposals each), and the median per-round ratio to TPESampler"
    )
    for space_name in args.spaces.split(","):
        table = summary.loc[space_name].loc[names]
        table.columns = [f"{what} @ {n}" for what, n in table.columns]
        print(f"\n{space_name} space")
        print(table.to_markdown(floatfmt=".2f"))


if __name__ == "__main__":
    main()
