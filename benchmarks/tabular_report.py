"""Tables and convergence figures of the tabular runs (HPOLib, HPOBench-MLP, NAS-Bench-201).

Reads the ``trials.csv`` (or the committed ``trials.csv.gz``) of ``kmtpe bench`` folders on the
tabular tasks and scores every trial by the MEAN of the stored runs of its configuration (the
objective itself returns one stored run at random). A study's regret after n trials is the
best mean among the configurations it has evaluated so far, measured from the table's best
mean (0 = found the best configuration; loss for HPOLib, accuracy points for the others).
Prints markdown: per suite, the default (``kmeans-tpe``) against ``tpe`` and ``tpe-dedup``
(wins / ties / losses of two-sided Mann-Whitney tests on the regret over seeds, p < 0.05 and
p < 0.01, at each checkpoint), mean ranks, the per-task median regret and raw observed best,
distinct configurations and sampler seconds per trial; writes one convergence figure per
suite.

    python benchmarks/tabular_report.py \
        benchmarks/results/bench-tabular-{hpolib,hpolib-desc,hpobench,hpobench-desc,nb201} \
        --figures docs/results/figures-tabular \
        --peers benchmarks/results/bench-tabular-{catcmawm,gp} > docs/results/tabular_tables.md

(benchmarks/results/bench-tabular-COMMANDS.md has the runs.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib


matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from optuna_kmtpe._bench import tabular  # noqa: E402
from optuna_kmtpe._bench.stats import rank_tests  # noqa: E402


DEFAULT = "kmeans-tpe"
REFERENCES = ("tpe", "tpe-dedup")
CHECKPOINTS = (25, 50, 100, 200)
ALPHAS = (0.05, 0.01)
ORDER = ["kmeans-tpe", "tpe", "tpe-dedup", "catcmawm", "gp", "random"]


def with_regret(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``mean`` (the trial's configuration mean), ``regret`` (best mean so far
    from the table's best, >= 0) and ``best_so_far`` replaced by ``-regret`` (higher better)."""
    parts = []
    for task, rows in frame.groupby("task", sort=False):
        parsed = tabular.parse_task_name(str(task))
        if parsed is None:
            raise ValueError(f"{task!r} is not a tabular task; pass tabular results only.")
        suite, dataset = parsed
        means = tabular.config_means(suite, dataset)
        sign = 1.0 if tabular.direction(suite) == "maximize" else -1.0
        optimum = max(sign * v for v in means.values())
        rows = rows.sort_values(["sampler", "seed", "trial"]).copy()
        rows["mean"] = [
            means[tabular.config_key(suite, dataset, json.loads(p))] for p in rows["params"]
        ]
        best = (sign * rows["mean"]).groupby([rows["sampler"], rows["seed"]]).cummax()
        rows["regret"] = optimum - best
        rows["raw_best"] = rows["best_so_far"]
        rows["best_so_far"] = -rows["regret"]
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def complete_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """The studies of the seeds that every sampler of the task finished (equal samples)."""
    size = frame.groupby(["task", "sampler", "seed"])["trial"].transform("size")
    frame = frame[size == frame.groupby("task")["trial"].transform("max")]
    counts = frame.groupby(["task", "seed"])["sampler"].nunique()
    samplers = frame.groupby("task")["sampler"].nunique()
    keep = {(t, s) for (t, s), n in counts.items() if n == samplers[t]}
    return frame[[(t, s) in keep for t, s in zip(frame["task"], frame["seed"])]]


def _suite(task: str) -> str:
    return task.split("/")[0]


def _samplers(frame: pd.DataFrame) -> list[str]:
    found = set(frame["sampler"])
    return [s for s in ORDER if s in found] + sorted(found - set(ORDER))


def _checkpoints(frame: pd.DataFrame) -> list[int]:
    return [c for c in CHECKPOINTS if c <= int(frame["trial"].max())]


def win_tie_loss(frame: pd.DataFrame, references: tuple[str, ...] = REFERENCES) -> str:
    """Per suite, reference and checkpoint: the default's wins / ties / losses over the
    suite's tasks at p < 0.05 and p < 0.01."""
    checkpoints = _checkpoints(frame)
    rows = []
    for suite in tabular.SUITES:
        sub = frame[frame["task"].map(_suite) == suite]
        for reference in [r for r in references if r in set(sub["sampler"])]:
            tests = rank_tests(sub, DEFAULT, reference, checkpoints, sign=1.0)
            row: dict[str, object] = {"suite": suite, "vs": reference}
            for checkpoint in checkpoints:
                at = tests[tests.index.get_level_values("checkpoint") == checkpoint]
                cells = []
                for alpha in ALPHAS:
                    significant = at["p_value"] < alpha
                    wins = int((significant & (at["a_better"] > 0.5)).sum())
                    losses = int((significant & (at["a_better"] < 0.5)).sum())
                    cells.append(f"{wins}/{len(at) - wins - losses}/{losses}")
                row[f"{checkpoint} trials"] = " · ".join(cells)
            rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False)


def mean_ranks(frame: pd.DataFrame) -> str:
    """Mean over a suite's tasks of each sampler's rank by median regret (1 = best)."""
    checkpoints = _checkpoints(frame)
    at = frame[frame["trial"].isin(checkpoints)]
    medians = at.groupby(["task", "trial", "sampler"])["regret"].median().reset_index()
    medians["rank"] = medians.groupby(["task", "trial"])["regret"].rank(method="average")
    medians["suite"] = medians["task"].map(_suite)
    table = medians.groupby(["suite", "sampler", "trial"])["rank"].mean().unstack("trial")
    table.columns = [f"{c} trials" for c in table.columns]
    order = [(s, x) for s in tabular.SUITES for x in _samplers(frame) if (s, x) in table.index]
    return table.loc[order].to_markdown(floatfmt=".2f")


def task_table(frame: pd.DataFrame) -> str:
    """Per task: seeds, the median regret at the last checkpoint per sampler, the default's
    p-values against each reference there, and the median raw observed best."""
    last = int(frame["trial"].max())
    final = frame[frame["trial"] == last]
    regret = final.groupby(["task", "sampler"])["regret"].median().unstack("sampler")
    raw = final.groupby(["task", "sampler"])["raw_best"].median().unstack("sampler")
    samplers = [s for s in _samplers(frame) if s in regret.columns]
    table = pd.DataFrame(index=regret.index)
    table["seeds"] = final.groupby("task")["seed"].nunique()
    for s in samplers:
        table[f"regret {s}"] = regret[s].map(lambda v: f"{v:.3g}")
    for reference in [r for r in REFERENCES if r in samplers]:
        tests = rank_tests(frame, DEFAULT, reference, [last], sign=1.0)
        table[f"p vs {reference}"] = [
            _p_cell(tests, str(task), last) for task in table.index.get_level_values(0)
        ]
    for s in samplers:
        table[f"raw best {s}"] = raw[s].map(lambda v: f"{v:.4g}")
    return table.to_markdown()


def _p_cell(tests: pd.DataFrame, task: str, checkpoint: int) -> str:
    if (task, checkpoint) not in tests.index:
        return ""
    a_better, p = tests.loc[(task, checkpoint)]
    if p >= 0.05:
        return f"{p:.2f}"
    return f"{p:.3f} ({'better' if a_better > 0.5 else 'worse'})"


def distinct_and_time(frame: pd.DataFrame) -> str:
    """Per suite and sampler: the median share of distinct configurations per study (all
    trials; unseen configurations always remain at these budgets) and after the random
    startup trials, and the mean sampler seconds per trial."""
    rows = []
    for (suite, sampler), sub in frame.groupby([frame["task"].map(_suite), "sampler"]):
        studies = sub.groupby(["task", "seed"])
        shares = studies["params"].nunique() / studies.size()
        model = sub[sub["trial"] > sub["startup"]].groupby(["task", "seed"])
        model_shares = model["params"].nunique() / model.size()
        rows.append(
            {
                "suite": suite,
                "sampler": sampler,
                "distinct share (median study)": f"{shares.median():.1%}",
                "lowest study": f"{shares.min():.1%}",
                "after startup (median)": f"{model_shares.median():.1%}",
                "sampler ms / trial": f"{sub['sampler_seconds'].mean() * 1e3:.1f}",
            }
        )
    table = pd.DataFrame(rows)
    order = {s: i for i, s in enumerate(_samplers(frame))}
    suites = {s: i for i, s in enumerate(tabular.SUITES)}
    table = table.sort_values(
        ["suite", "sampler"], key=lambda c: c.map(suites if c.name == "suite" else order)
    )
    return table.to_markdown(index=False)


def convergence_figure(frame: pd.DataFrame, suite: str, path: Path) -> None:
    """Median regret (and the 25-75 % band over seeds) against trials, one panel per task."""
    tasks = [t for t in tabular.expand_group(suite) or [] if t in set(frame["task"])]
    if not tasks:
        return
    columns = 4 if len(tasks) > 4 else len(tasks)
    rows = int(np.ceil(len(tasks) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        sub = frame[frame["task"] == task]
        for sampler in _samplers(sub):
            curve = sub[sub["sampler"] == sampler].groupby("trial")["regret"]
            median = curve.median()
            ax.plot(median.index, median.to_numpy(), label=sampler, lw=1.2)
            ax.fill_between(median.index, curve.quantile(0.25), curve.quantile(0.75), alpha=0.15)
        ax.set_yscale("symlog", linthresh=_linthresh(sub))
        ax.set_title(f"{task} ({sub['seed'].nunique()} seeds)", fontsize=8)
        ax.set_xlabel("trials", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("regret of the best mean", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _linthresh(sub: pd.DataFrame) -> float:
    positive = sub.loc[sub["regret"] > 0, "regret"]
    return float(positive.quantile(0.05)) if len(positive) else 1.0


def with_peer(main: pd.DataFrame, peer: pd.DataFrame) -> pd.DataFrame:
    """``peer``'s studies next to ``main``'s studies of the same (task, seed), cut to the
    peer run's trial count; samplers the peer run has itself are taken from it only."""
    own = set(peer["sampler"])
    studies = set(zip(peer["task"], peer["seed"]))
    same = np.array([(t, s) in studies for t, s in zip(main["task"], main["seed"])], dtype=bool)
    keep = main[same & ~main["sampler"].isin(own) & (main["trial"] <= int(peer["trial"].max()))]
    return pd.concat([peer, keep], ignore_index=True)


def peer_section(main: pd.DataFrame, folder: Path) -> None:
    """The tables of a separate, smaller run of peer samplers (fewer seeds or trials)."""
    peer = _trials(folder)
    frame = with_regret(complete_seeds(with_peer(main, peer)))
    samplers = ", ".join(sorted(set(peer["sampler"])))
    seeds = frame.groupby("task")["seed"].nunique()
    print(
        f"\n### Peers: {samplers} ({folder.name}: {seeds.min()} to {seeds.max()} seeds, "
        f"{int(frame['trial'].max())} trials, {frame['task'].nunique()} tasks)\n"
    )
    peers = tuple(s for s in _samplers(peer) if s != DEFAULT and s not in REFERENCES)
    print(win_tie_loss(frame, REFERENCES + peers))
    print("\n" + mean_ranks(frame))
    print("\n" + distinct_and_time(frame))


def _trials(folder: Path) -> pd.DataFrame:
    """``trials.csv`` of a results folder, or the committed ``trials.csv.gz``."""
    path = folder / "trials.csv"
    return pd.read_csv(path if path.exists() else folder / "trials.csv.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--figures", type=Path, help="folder for the convergence figures")
    parser.add_argument(
        "--peers", type=Path, nargs="*", default=[], help="runs of peer samplers, fewer seeds"
    )
    args = parser.parse_args()
    raw = pd.concat([_trials(folder) for folder in args.results], ignore_index=True)
    # Runs split by seed ranges may overlap at the seam: a study is deterministic, keep one.
    raw = raw.drop_duplicates(["task", "sampler", "seed", "trial"])
    frame = with_regret(complete_seeds(raw))
    print("### Default against TPE and TPE + FAQ de-duplication\n")
    print(
        "Each cell: wins/ties/losses of kmeans-tpe over the suite's tasks at p < 0.05 · "
        "p < 0.01 (two-sided Mann-Whitney on the regret over seeds).\n"
    )
    print(win_tie_loss(frame))
    print("\n### Mean rank by median regret over each suite's tasks (1 = best)\n")
    print(mean_ranks(frame))
    print(f"\n### Per task after {int(frame['trial'].max())} trials\n")
    print(task_table(frame))
    print("\n### Distinct configurations and sampler time\n")
    print(distinct_and_time(frame))
    if args.figures is not None:
        for suite in tabular.SUITES:
            convergence_figure(frame, suite, args.figures / f"convergence-{suite}.png")
    for folder in args.peers:
        peer_section(raw, folder)
    print()


if __name__ == "__main__":
    main()
