"""``kmtpe bench``: compare samplers on the benchmark tasks, resumably, with statistics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from optuna_kmtpe._bench import coco
    from optuna_kmtpe._bench import tabular
    from optuna_kmtpe._bench.tasks import TASKS
    from optuna_kmtpe._commands._options import add_threads
    from optuna_kmtpe._sampler_registry import SAMPLERS

    parser = subparsers.add_parser(
        "bench",
        help="compare k-means TPE, TPE and random search on benchmark tasks",
        description=(
            "Run every (task, sampler, seed) study missing from --out, append its trials to "
            "OUT/trials.csv, and write OUT/summary.md. Rerunning the same command resumes. "
            "Tasks: "
            + "; ".join(f"{t.name}: {t.description}" for t in TASKS.values())
            + f"; {coco.DESCRIPTION}; {tabular.DESCRIPTION}."
        ),
    )
    default_tasks = [name for name, task in TASKS.items() if not task.needs_data_dir]
    parser.add_argument(
        "--tasks",
        default=",".join(default_tasks),
        help="comma-separated task names; 'quant' means quant-cifar100 with --data-dir, "
        "else the offline proxy quant-digits; COCO tasks are SUITE/fNN-dD "
        f"({coco.PATTERN}), SUITE/dD or SUITE; tabular tasks {tabular.PATTERN}, or hpolib, "
        "hpobench, nb201, tabular (default: every task above except quant-cifar100, the COCO "
        "and the tabular ones)",
    )
    parser.add_argument("--data-dir", help="folder with CIFAR-100 for the quant-cifar100 task")
    parser.add_argument(
        "--samplers",
        default=",".join(SAMPLERS),
        help=f"comma-separated, from: {', '.join(SAMPLERS)} (default: all)",
    )
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20)")
    parser.add_argument(
        "--trials", type=int, default=None, help="default: each task's paper budget"
    )
    parser.add_argument("--startup", type=int, default=None, help="random trials first")
    parser.add_argument("--out", type=Path, default=Path("kmtpe-bench-results"))
    parser.add_argument(
        "--jobs", type=int, default=1, help="in-memory mode: parallel processes, one study each"
    )
    parser.add_argument(
        "--storage",
        help="shared-storage mode: keep every study in this Optuna RDB URL or journal:PATH "
        "(resumable mid-study; several processes / machines may run the same command)",
    )
    parser.add_argument(
        "--workers", type=int, help="shared-storage mode: processes on this machine (default 1)"
    )
    parser.add_argument(
        "--checkpoints", default="20,40,60,100", help="trial counts reported in the summary"
    )
    add_threads(parser)
    parser.add_argument("--json", action="store_true", help="print the spread table as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from optuna_kmtpe._runs.threads import set_threads

    set_threads(args.threads)  # first: before torch loads and anything trains
    from optuna_kmtpe._bench.runner import run_benchmark
    from optuna_kmtpe._bench.runner import run_shared_benchmark
    from optuna_kmtpe._bench.stats import markdown_summary
    from optuna_kmtpe._bench.stats import spread

    problem = _check_counts(args)
    if problem:
        print(f"kmtpe bench: error: {problem}", file=sys.stderr)
        return 2
    tasks, samplers = _task_names(args.tasks, args.data_dir), _names(args.samplers)
    budget = dict(n_trials=args.trials, n_startup_trials=args.startup, progress=not args.json)
    try:
        if args.storage is None:
            trials = run_benchmark(
                args.out, tasks, samplers, range(args.seeds), jobs=args.jobs,
                data_dir=args.data_dir, **budget,
            )  # fmt: skip
        else:
            trials = run_shared_benchmark(
                args.out, args.storage, tasks, samplers, range(args.seeds),
                workers=args.workers or 1, **budget,
            )  # fmt: skip
    except (ValueError, ImportError, OSError) as e:
        print(f"kmtpe bench: error: {e}", file=sys.stderr)
        return 2
    if trials.empty:
        print(
            f"kmtpe bench: no study in {args.storage} is complete yet (other processes are "
            "still running); run the same command again later to build the summary.",
            file=sys.stderr,
        )
        return 0
    max_trial = int(trials["trial"].max())
    checkpoints = [c for c in (int(x) for x in args.checkpoints.split(",")) if c <= max_trial]
    checkpoints = checkpoints or [max_trial]
    summary = markdown_summary(trials, checkpoints)
    (args.out / "summary.md").write_text(summary)
    if args.json:
        table = spread(trials, checkpoints).reset_index()
        print(json.dumps({"results": str(args.out), "spread": table.to_dict("records")}))
    else:
        print(summary)
        print(f"trials: {args.out / 'trials.csv'}; summary: {args.out / 'summary.md'}")
    return 0


def _check_counts(args: argparse.Namespace) -> str | None:
    """What is wrong with the counts and the mode options, or None."""
    counts = [args.seeds, args.jobs, args.trials or 1, args.workers or 1]
    if min(counts) < 1:
        return "--seeds, --trials, --jobs and --workers must be positive integers."
    if args.workers is not None and args.storage is None:
        return "--workers needs --storage (shared-storage mode); in memory, use --jobs."
    if args.jobs > 1 and args.storage is not None:
        return "--jobs is the in-memory mode; with --storage, use --workers."
    return None


def _task_names(text: str, data_dir: str | None) -> list[str]:
    from optuna_kmtpe._bench.tasks import expand_task_names

    quant = "quant-digits" if data_dir is None else "quant-cifar100"
    return expand_task_names([quant if name == "quant" else name for name in _names(text)])


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
