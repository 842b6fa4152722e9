"""Statistics of benchmark results: spread of best-so-far, trials to a target, rank tests,
mean ranks across tasks, and the number of distinct configurations each study evaluated.

Every function takes the trials table of :mod:`optuna_kmtpe._bench.runner` (one row per trial,
``best_so_far`` already direction-aware) and treats higher ``best_so_far`` as better after
multiplying by the task's sign (``+1`` for maximised tasks, ``-1`` for minimised ones; see
:func:`task_signs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from optuna_kmtpe._sampler_registry import in_registry_order


# The checkpoints of the per-sampler Mann-Whitney table and its win / tie / loss counts.
TEST_CHECKPOINTS = (25, 50, 100)
ALPHAS = (0.05, 0.01)


def task_signs(
    trials: pd.DataFrame, directions: Mapping[str, str] | None = None
) -> dict[str, float]:
    """``+1.0`` for each maximised task of ``trials``, ``-1.0`` for each minimised one.

    The direction comes from ``directions``, else from the task registry
    (:func:`~optuna_kmtpe._bench.tasks.get_task`), else from the data: a study whose
    best-so-far ever decreases was minimised. A task that none of these settles is taken as
    maximised.

    Example:
        >>> t = pd.DataFrame(
        ...     {"task": ["bbob/f01-d5", "u", "u"], "seed": 0, "best_so_far": [1.0, 3.0, 2.0]}
        ... )
        >>> task_signs(t, {"v": "maximize"})
        {'bbob/f01-d5': -1.0, 'u': -1.0}
    """
    from optuna_kmtpe._bench.tasks import get_task

    signs: dict[str, float] = {}
    for task, group in trials.groupby("task", sort=False):
        name = str(task)
        direction = (directions or {}).get(name)
        if direction is None:
            try:
                direction = get_task(name).direction
            except ValueError:
                keys = [c for c in ("sampler", "seed") if c in group.columns]
                steps = group.groupby(keys)["best_so_far"].diff() if keys else pd.Series()
                direction = "minimize" if (steps < 0).any() else "maximize"
        if direction not in ("minimize", "maximize"):
            raise ValueError(
                f"A direction must be 'minimize' or 'maximize', but got {direction!r} for "
                f"task {name!r}."
            )
        signs[name] = 1.0 if direction == "maximize" else -1.0
    return signs


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


def trials_to_target(
    trials: pd.DataFrame, reference: str, sign: float | None = None
) -> pd.DataFrame:
    """Trials each study needs to reach the reference sampler's median final best-so-far.

    ``sign`` applies to every task; None (the default) takes each task's own (:func:`task_signs`).

    The target of a task is the median over seeds of ``reference``'s best value at its last
    trial. Returns per (task, sampler) the target, the median number of trials to reach it
    (over all seeds; a seed that never reaches it counts as not reached, and the median is
    NaN when fewer than half reach it) and how many seeds reached it.
    """
    last = trials.groupby(["task", "sampler", "seed"])["trial"].transform("max")
    finals = trials[trials["trial"] == last]
    targets = finals[finals["sampler"] == reference].groupby("task")["best_so_far"].median()
    signs = task_signs(trials)
    rows = []
    for (task, sampler), group in trials.groupby(["task", "sampler"]):
        if task not in targets:
            continue
        target = targets[task]
        k = signs[str(task)] if sign is None else sign
        reached = group[k * group["best_so_far"] >= k * target - 1e-12]
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
    trials: pd.DataFrame,
    a: str,
    b: str,
    checkpoints: Sequence[int],
    sign: float | None = None,
) -> pd.DataFrame:
    """Two-sided Mann-Whitney U test of sampler ``a`` vs ``b`` per task and checkpoint.

    ``a_better`` is the probability that a random seed of ``a`` beats one of ``b``
    (the U statistic divided by the number of pairs; ties count one half). ``sign`` applies
    to every task; None (the default) takes each task's own (:func:`task_signs`).
    """
    best = best_at(trials, checkpoints)
    signs = task_signs(trials)
    rows = []
    for (task, checkpoint), group in best.groupby(["task", "checkpoint"]):
        k = signs[str(task)] if sign is None else sign
        x = k * group.loc[group["sampler"] == a, "best"].to_numpy()
        y = k * group.loc[group["sampler"] == b, "best"].to_numpy()
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
    columns = ["task", "checkpoint", "a_better", "p_value"]
    return pd.DataFrame(rows, columns=columns).set_index(["task", "checkpoint"])


def win_tie_loss(
    trials: pd.DataFrame,
    reference: str,
    checkpoints: Sequence[int],
    alphas: Sequence[float] = ALPHAS,
) -> pd.DataFrame:
    """Per sampler, checkpoint and significance level: on how many tasks it beats
    ``reference`` (two-sided Mann-Whitney p below the level and ``a_better > 0.5``), ties
    (p at or above it) or loses.

    Returns one row per (sampler, checkpoint, alpha) with the counts ``wins``, ``ties``,
    ``losses``, for every sampler other than ``reference``, in registry order.
    """
    rows = []
    for sampler in in_registry_order(trials["sampler"]):
        if sampler == reference:
            continue
        tests = rank_tests(trials, sampler, reference, checkpoints)
        for checkpoint in checkpoints:
            at = tests[tests.index.get_level_values("checkpoint") == checkpoint]
            for alpha in alphas:
                significant = at["p_value"] < alpha
                rows.append(
                    {
                        "sampler": sampler,
                        "checkpoint": checkpoint,
                        "alpha": alpha,
                        "wins": int((significant & (at["a_better"] > 0.5)).sum()),
                        "ties": int((~significant).sum()),
                        "losses": int((significant & (at["a_better"] < 0.5)).sum()),
                    }
                )
    columns = ["sampler", "checkpoint", "alpha", "wins", "ties", "losses"]
    return pd.DataFrame(rows, columns=columns).set_index(["sampler", "checkpoint", "alpha"])


def mean_ranks(trials: pd.DataFrame, checkpoints: Sequence[int]) -> pd.DataFrame:
    """Mean over tasks of each sampler's rank at each checkpoint (1 = best, lower better).

    Within a task and checkpoint, the samplers are ranked by their median best-so-far over
    seeds (direction-aware, ties get the average rank); a sampler is averaged over the tasks
    where it has a median. Returns samplers (registry order) by checkpoints, and a ``tasks``
    column with the number of tasks behind the last checkpoint's mean.
    """
    table = spread(trials, checkpoints).reset_index()
    signs = task_signs(trials)
    table["score"] = table["median"] * table["task"].astype(str).map(signs)
    table["rank"] = table.groupby(["task", "checkpoint"])["score"].rank(
        ascending=False, method="average"
    )
    ranks = table.groupby(["sampler", "checkpoint"])["rank"].mean().unstack("checkpoint")
    samplers = in_registry_order(trials["sampler"])
    ranks = ranks.reindex([s for s in samplers if s in ranks.index])
    ranks.columns = [int(c) for c in ranks.columns]
    if len(ranks.columns):
        last = table[table["checkpoint"] == ranks.columns[-1]].dropna(subset=["rank"])
        tasks = last.groupby("sampler")["task"].nunique().reindex(ranks.index)
        ranks["tasks"] = tasks.fillna(0).astype(int)
    return ranks


def distinct_configurations(trials: pd.DataFrame) -> pd.DataFrame:
    """How many distinct configurations (``params``) each study evaluated, median over seeds.

    Per (task, sampler): ``distinct`` (distinct configurations among all trials of a study),
    ``share`` (that over the study's number of trials), and the same two among the
    model-based trials only, those after the study's ``startup`` count (``model_distinct``,
    ``model_share``; NaN when the results do not record the startup count). Studies whose
    trials have no recorded ``params`` (results from before the column) are left out.

    Example:
        >>> t = pd.DataFrame(
        ...     {
        ...         "task": "t",
        ...         "sampler": "s",
        ...         "seed": 0,
        ...         "trial": [1, 2, 3, 4],
        ...         "params": ['{"x": 1}', '{"x": 2}', '{"x": 2}', '{"x": 2}'],
        ...         "startup": 2,
        ...     }
        ... )
        >>> distinct_configurations(t).iloc[0].tolist()
        [2.0, 0.5, 1.0, 0.5]
    """
    columns = ["distinct", "share", "model_distinct", "model_share"]
    known = trials.dropna(subset=["params"]) if "params" in trials else trials.iloc[:0]
    rows = []
    for (task, sampler, seed), study in known.groupby(["task", "sampler", "seed"]):
        startup = study["startup"].iloc[0] if "startup" in study else np.nan
        model = study[study["trial"] > startup] if pd.notna(startup) else study.iloc[:0]
        distinct = study["params"].nunique()
        model_distinct = model["params"].nunique() if pd.notna(startup) else np.nan
        rows.append(
            {
                "task": task,
                "sampler": sampler,
                "distinct": distinct,
                "share": distinct / len(study),
                "model_distinct": model_distinct,
                "model_share": model_distinct / len(model) if len(model) else np.nan,
            }
        )
    frame = pd.DataFrame(rows, columns=["task", "sampler", *columns])
    return frame.groupby(["task", "sampler"])[columns].median().astype(float)


def markdown_summary(
    trials: pd.DataFrame,
    checkpoints: Sequence[int],
    *,
    focus: Sequence[str] = ("kmeans-tpe", "kmeans-tpe-paper"),
    reference: str = "tpe",
    test_checkpoints: Sequence[int] = TEST_CHECKPOINTS,
) -> str:
    """A markdown report: spread table, mean ranks across tasks, distinct configurations,
    trials to target, rank tests of each ``focus`` sampler present against ``reference``, and
    every sampler against ``reference`` at ``test_checkpoints`` (those the results reach;
    else their last trial) with win / tie / loss counts."""
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
        "### Mean rank across tasks (rank of the median best so far per task; 1 = best, "
        "ties averaged)",
        "",
        _ranks_markdown(mean_ranks(trials, checkpoints)),
        "",
    ]
    distinct = distinct_configurations(trials)
    if not distinct.empty:
        parts += [
            "### Distinct configurations per study: median over seeds, count (share of "
            "trials); model-based: the trials after the startup count",
            "",
            _distinct_cells(distinct, samplers).to_markdown(),
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
    others = [s for s in samplers if s != reference]
    if reference in samplers and others:
        last = int(trials["trial"].max())
        at = [c for c in test_checkpoints if c <= last] or [last]
        parts += _versus_reference(trials, reference, others, at)
    return "\n".join(parts)


def _ranks_markdown(ranks: pd.DataFrame) -> str:
    # One format per column, the index first: ranks to 2 decimals, the task count whole.
    return ranks.to_markdown(floatfmt=["g"] + [".2f"] * (ranks.shape[1] - 1) + [".0f"])


def _distinct_cells(distinct: pd.DataFrame, samplers: list[str]) -> pd.DataFrame:
    def cell(row: pd.Series) -> str:
        text = f"{row['distinct']:g} ({row['share']:.0%})"
        if pd.notna(row["model_distinct"]):
            share = f"{row['model_share']:.0%}" if pd.notna(row["model_share"]) else "-"
            text += f"; model-based {row['model_distinct']:g} ({share})"
        return text

    cells = distinct.apply(cell, axis=1).unstack("sampler")
    return cells[[s for s in samplers if s in cells.columns]]


def _versus_reference(
    trials: pd.DataFrame, reference: str, others: list[str], checkpoints: list[int]
) -> list[str]:
    tests = {name: rank_tests(trials, name, reference, checkpoints) for name in others}
    cells = pd.DataFrame(
        {
            name: t.apply(lambda r: f"{r['a_better']:.2f} (p={r['p_value']:.3g})", axis=1)
            for name, t in tests.items()
            if not t.empty
        }
    )
    counts = win_tie_loss(trials, reference, checkpoints)
    wtl = counts.apply(lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}", axis=1)
    wtl = wtl.unstack(["checkpoint", "alpha"])
    wtl.columns = [f"{c} trials, p<{a:g}" for c, a in wtl.columns]
    listed = ", ".join(str(c) for c in checkpoints)
    return [
        f"### Each sampler vs {reference} at {listed} trials: two-sided Mann-Whitney U, "
        f"a_better = P(sampler beats {reference}) (p-value)",
        "",
        cells.to_markdown(),
        "",
        f"### Wins / ties / losses against {reference} across tasks (a win: p below the "
        "level and a_better > 0.5)",
        "",
        wtl.reindex([s for s in others if s in wtl.index]).to_markdown(),
        "",
    ]
