"""Statistics of benchmark results: spread of best-so-far, trials to a target, rank tests.

Every function takes the trials table of :mod:`optuna_kmtpe._bench.runner` (one row per trial,
``best_so_far`` already direction-aware) and treats higher ``best_so_far`` as better after
multiplying by ``sign`` (``+1`` for maximised tasks, ``-1`` for minimised ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from optuna_kmtpe._sampler_registry import in_registry_order


def best_at(trials: pd.DataFrame, checkpoints: Sequence[int]) -> pd.DataFrame:
    """Best-so-far of every (task, sampler, seed) at each checkpoint trial count.

    Example:
        >>> t = pd.DataFrame(
        ...     {
        ...         "task": "t",
        ...         "sampler": "s",
        ...         "seed": 0,
        ...         "trial": [1, 2, 3],
        ...         "best_so_far": [0.1, 0.5, 0.5],
        ...     }
        ... )
        >>> best_at(t, [2])["best"].tolist()
        [0.5]
    """
    frame = trials[trials["trial"].isin(checkpoints)]
    return frame.rename(columns={"trial": "checkpoint", "best_so_far": "best"})[
        ["task", "sampler", "seed", "checkpoint", "best"]
    ].reset_index(drop=True)


def spread(trials: pd.DataFrame, checkpoints: Sequence[int]) -> pd.DataFrame:
    """Median, 25th and 75th percentile of best-so-far per task, checkpoint and sampler."""
    grouped = best_at(trials, checkpoints).groupby(["task", "checkpoint", "sampler"])["best"]
    return pd.DataFrame(
        {
            "median": grouped.median(),
            "q25": grouped.quantile(0.25),
            "q75": grouped.quantile(0.75),
            "seeds": grouped.size(),
        }
    )


def trials_to_target(trials: pd.DataFrame, reference: str, sign: float = 1.0) -> pd.DataFrame:
    """Trials each study needs to reach the reference sampler's median final best-so-far.

    The target of a task is the median over seeds of ``reference``'s best value at its last
    trial. Returns per (task, sampler) the target, the median number of trials to reach it
    (over all seeds; a seed that never reaches it counts as not reached, and the median is
    NaN when fewer than half reach it) and how many seeds reached it.
    """
    last = trials.groupby(["task", "sampler", "seed"])["trial"].transform("max")
    finals = trials[trials["trial"] == last]
    targets = finals[finals["sampler"] == reference].groupby("task")["best_so_far"].median()
    rows = []
    for (task, sampler), group in trials.groupby(["task", "sampler"]):
        if task not in targets:
            continue
        target = targets[task]
        reached = group[sign * group["best_so_far"] >= sign * target - 1e-12]
        first = reached.groupby("seed")["trial"].min()
        n_seeds = group["seed"].nunique()
        needed = np.full(n_seeds, np.inf)
        needed[: first.size] = np.sort(first.to_numpy(dtype=float))
        median = float(np.median(needed))
        rows.append(
            {
                "task": task,
                "sampler": sampler,
                "target": target,
                "median_trials": median if np.isfinite(median) else np.nan,
                "seeds_reached": int(first.size),
                "seeds": int(n_seeds),
            }
        )
    return pd.DataFrame(rows).set_index(["task", "sampler"])


def rank_tests(
    trials: pd.DataFrame, a: str, b: str, checkpoints: Sequence[int], sign: float = 1.0
) -> pd.DataFrame:
    """Two-sided Mann-Whitney U test of sampler ``a`` vs ``b`` per task and checkpoint.

    ``a_better`` is the probability that a random seed of ``a`` beats one of ``b``
    (the U statistic divided by the number of pairs; ties count one half).
    """
    best = best_at(trials, checkpoints)
    rows = []
    for (task, checkpoint), group in best.groupby(["task", "checkpoint"]):
        x = sign * group.loc[group["sampler"] == a, "best"].to_numpy()
        y = sign * group.loc[group["sampler"] == b, "best"].to_numpy()
        if x.size == 0 or y.size == 0:
            continue
        if np.all(x == x[0]) and np.array_equal(np.unique(x), np.unique(y)):
            u, p = x.size * y.size / 2.0, 1.0  # Identical constant samples: no evidence.
        else:
            u, p = mannwhitneyu(x, y, alternative="two-sided")
        rows.append(
            {
                "task": task,
                "checkpoint": checkpoint,
                "a_better": float(u) / (x.size * y.size),
                "p_value": float(p),
            }
        )
    return pd.DataFrame(rows).set_index(["task", "checkpoint"])


def markdown_summary(
    trials: pd.DataFrame,
    checkpoints: Sequence[int],
    *,
    focus: Sequence[str] = ("kmeans-tpe", "kmeans-tpe-paper"),
    reference: str = "tpe",
) -> str:
    """A markdown report: spread table, trials to target, and rank tests of each ``focus``
    sampler present against ``reference``."""
    samplers = in_registry_order(trials["sampler"])
    table = spread(trials, checkpoints)
    cells = table.apply(
        lambda r: f"{r['median']:.4f} [{r['q25']:.4f}, {r['q75']:.4f}]", axis=1
    ).unstack("sampler")
    cells = cells[[s for s in samplers if s in cells.columns]]
    parts = [
        "### Best so far: median [IQR] over seeds",
        "",
        cells.to_markdown(),
        "",
    ]
    if reference in samplers:
        targets = trials_to_target(trials, reference)
        parts += [
            f"### Trials to reach {reference}'s median final value",
            "",
            targets.to_markdown(floatfmt=".4g"),
            "",
        ]
    for name in focus:
        if name not in samplers or reference not in samplers:
            continue
        tests = rank_tests(trials, name, reference, checkpoints)
        parts += [
            f"### Mann-Whitney U, {name} vs {reference} (a_better: P({name} beats {reference}))",
            "",
            tests.to_markdown(floatfmt=".3g"),
            "",
        ]
    return "\n".join(parts)
