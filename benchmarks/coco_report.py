"""Tables of the COCO test-set runs for docs/results.md: one per suite, the default against peers.

Reads the ``trials.csv`` of ``kmtpe bench`` runs (or the committed ``trials.csv.gz``; ``gunzip``
it to resume or extend a run with ``kmtpe bench``) and prints markdown: per suite and dimension,
the median best value after 100 trials per sampler (lower is better), the two-sided
Mann-Whitney p-value of the default (``kmeans-tpe``) against ``tpe`` at 25, 50 and 100 trials
with the direction of the difference, the win / tie / loss counts of every sampler against
``tpe`` at p < 0.05 and p < 0.01, mean ranks, and, for ``bbob-mixint``, the share of distinct
integer parts among the model-based trials (the continuous coordinates make every full
configuration distinct there).

    python benchmarks/coco_report.py benchmarks/results/bench-coco-test \
        --gp benchmarks/results/bench-coco-test-gp > docs/results/coco_tables.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from optuna_kmtpe._bench import coco
from optuna_kmtpe._bench.stats import rank_tests


DEFAULT = "kmeans-tpe"
REFERENCE = "tpe"
CHECKPOINTS = (25, 50, 100)
ORDER = [
    "kmeans-tpe",
    "tpe",
    "hyperopt",
    "gp",
    "random",
    "tpe-univariate",
    "kmeans-tpe-dead-zone",
    "kmeans-tpe-paper",
]


def _samplers(frame: pd.DataFrame) -> list[str]:
    present = set(frame["sampler"])
    return [s for s in ORDER if s in present]


def _group(task: str) -> str:
    parsed = coco.parse_task_name(task)
    assert parsed is not None, task
    suite, _, dimension, instance = parsed
    label = f"{suite}, d = {dimension}"
    return label if instance == coco.INSTANCE else f"{label}, instance {instance}"


def _final(frame: pd.DataFrame) -> pd.DataFrame:
    last = frame[
        frame["trial"] == frame.groupby(["task", "sampler", "seed"])["trial"].transform("max")
    ]
    return last.groupby(["task", "sampler"])["best_so_far"].median().unstack("sampler")


def _p_cell(tests: pd.DataFrame, task: str, checkpoint: int) -> str:
    row = tests.loc[(task, checkpoint)]
    arrow = "+" if row["a_better"] > 0.5 else ("-" if row["a_better"] < 0.5 else "=")
    return f"{row['p_value']:.2g} ({arrow})"


def _integer_part_share(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, sampler, seed), study in frame.groupby(["task", "sampler", "seed"]):
        startup = int(study["startup"].iloc[0]) if "startup" in study else 10
        model_based = study[study["trial"] > startup]
        parts = {
            tuple(v for _, v in sorted(json.loads(p).items()) if isinstance(v, int))
            for p in model_based["params"]
        }
        rows.append({"task": task, "sampler": sampler, "share": len(parts) / len(model_based)})
    shares = pd.DataFrame(rows)
    return shares.groupby(["task", "sampler"])["share"].median().unstack("sampler")


def suite_tables(frame: pd.DataFrame) -> str:
    samplers = _samplers(frame)
    out = []
    tests = rank_tests(frame, DEFAULT, REFERENCE, CHECKPOINTS, sign=-1.0)
    finals = _final(frame)
    mixint = frame[frame["task"].str.startswith("bbob-mixint/")]
    shares = _integer_part_share(mixint) if not mixint.empty else None
    for group in sorted({_group(t) for t in frame["task"]}):
        tasks = sorted(t for t in finals.index if _group(t) == group)
        seeds = frame[frame["task"].isin(tasks)].groupby(["sampler", "task"])["seed"].nunique()
        per_sampler = seeds.groupby("sampler").min()
        counts = ", ".join(f"{s} {per_sampler[s]}" for s in samplers)
        out.append(f"#### {group}\n\nSeeds per function: {counts}.\n")
        header = (
            ["function"]
            + [f"{s}" for s in samplers]
            + [f"p {DEFAULT} vs {REFERENCE} @ {c}" for c in CHECKPOINTS]
        )
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|")
        for task in tasks:
            cells = [task.split("/")[1].split("-")[0]]
            cells += [f"{finals.loc[task, s]:.4g}" for s in samplers]
            cells += [_p_cell(tests, task, c) for c in CHECKPOINTS]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            f"Median best f after 100 trials (lower is better). p: two-sided Mann-Whitney U of"
            f" {DEFAULT} against {REFERENCE}; (+) {DEFAULT} better, (-) worse.\n"
        )
        if shares is not None and group.startswith("bbob-mixint"):
            row = shares.loc[tasks].median()
            out.append(
                "Distinct integer parts among the model-based trials (median over functions of"
                " the per-function median share): "
                + ", ".join(f"{s} {row[s]:.0%}" for s in samplers if s in row)
                + ".\n"
            )
    return "\n".join(out)


def win_tie_loss(frame: pd.DataFrame) -> str:
    lines = [
        "| sampler vs tpe | suite | "
        + " | ".join(f"{c} trials p<{a}" for c in CHECKPOINTS for a in (0.05, 0.01))
        + " |",
        "|:--|:--|" + "--:|" * (2 * len(CHECKPOINTS)),
    ]
    for sampler in [s for s in _samplers(frame) if s != REFERENCE]:
        tests = rank_tests(frame, sampler, REFERENCE, CHECKPOINTS, sign=-1.0).reset_index()
        tests["group"] = tests["task"].map(_group)
        for group, t in tests.groupby("group"):
            cells = []
            for c in CHECKPOINTS:
                at = t[t["checkpoint"] == c]
                for alpha in (0.05, 0.01):
                    win = int(((at["p_value"] < alpha) & (at["a_better"] > 0.5)).sum())
                    loss = int(((at["p_value"] < alpha) & (at["a_better"] < 0.5)).sum())
                    cells.append(f"{win}/{len(at) - win - loss}/{loss}")
            lines.append(f"| {sampler} | {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_ranks(frame: pd.DataFrame) -> str:
    finals = _final(frame)
    rows = {}
    for group in sorted({_group(t) for t in finals.index}):
        sub = finals.loc[[t for t in finals.index if _group(t) == group]]
        rows[group] = sub.rank(axis=1).mean()
    table = pd.DataFrame(rows).loc[_samplers(frame)]
    return table.to_markdown(floatfmt=".2f")


def _trials(folder: Path) -> pd.DataFrame:
    """``trials.csv`` of a results folder, or the committed ``trials.csv.gz``."""
    path = folder / "trials.csv"
    return pd.read_csv(path if path.exists() else folder / "trials.csv.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--gp", type=Path, help="a results folder with gp next to tpe")
    args = parser.parse_args()
    frame = _trials(args.results)
    print("### Per suite\n")
    print(suite_tables(frame))
    print("### Wins / ties / losses against tpe (each cell: win/tie/loss over the functions)\n")
    print(win_tie_loss(frame))
    print("\n### Mean rank of the median best after 100 trials (1 = best)\n")
    print(mean_ranks(frame))
    if args.gp is not None:
        gp = _trials(args.gp)
        print("\n### GPSampler next to TPE and the default (separate run, fewer seeds)\n")
        print(suite_tables(gp))
        print(win_tie_loss(gp))
        print("\n" + mean_ranks(gp))
        seconds = (
            gp.groupby("sampler")["sampler_seconds"].sum() / gp.groupby("sampler")["seed"].size()
        )
        print(
            "\nSampler seconds per trial as recorded (wall time; compare samplers that ran in"
            " the same run only): "
            + ", ".join(f"{s} {seconds[s] * 1e3:.1f} ms" for s in _samplers(gp))
            + f" (gp / tpe = {seconds['gp'] / seconds['tpe']:.0f}x)."
        )
    print()


if __name__ == "__main__":
    main()
