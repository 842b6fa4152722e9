"""``kmtpe compare``: the search against uniform bits, HAWQ-V3's ILP and a greedy allocation
under the same limits and the same final training (:mod:`optuna_kmtpe._runs.compare_run`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any

from optuna_kmtpe._commands.search_options import add_space_options
from optuna_kmtpe._commands.search_options import space_options


def register(subparsers: Any) -> None:
    from optuna_kmtpe._commands._names import DEFAULT_PRUNER
    from optuna_kmtpe._commands._names import PRUNERS
    from optuna_kmtpe._commands._options import add_threads

    p = subparsers.add_parser(
        "compare",
        help="compare the search with uniform, ILP (HAWQ-V3) and greedy bit allocation",
        description=(
            "Train (or load) one base model, then give each method the same limits, cost model "
            "and final training over --seeds seeds: uniform (best uniform bits and width that "
            "fit, chosen on validation), ilp (HAWQ-V3's integer program on the Hessian traces, "
            "scipy.optimize.milp), greedy (lower the least sensitive layer first), learned "
            "(bit-widths learned by gradient under a resource penalty, 3x --epochs), and the "
            "search with any sampler (kmeans-tpe, tpe, random, ...). Writes OUT/runs/*.json "
            "(one per method and seed; existing ones are skipped, so rerunning resumes), "
            "OUT/comparison.{json,md,png} and OUT/explored.csv."
        ),
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="digits (default), mnist-5k, fashion-mnist, cifar10, cifar100",
    )
    p.add_argument("--model", help="default: the dataset's model (kmtpe search's default)")
    p.add_argument("--data-dir", help="folder holding the CIFAR or Fashion-MNIST idx files")
    p.add_argument(
        "--trial-subset",
        type=int,
        help="the searches' trials train on a fixed subset of N training images per epoch; "
        "0: all (default 10,000 for fashion-mnist, else 0); final trainings use all",
    )
    p.add_argument("--checkpoint", help="trained base model weights (.pt); else it is trained")
    p.add_argument(
        "--methods",
        default="uniform,ilp,greedy,learned,kmeans-tpe,tpe,random",
        help="comma-separated: uniform, ilp, greedy, learned and sampler names (default: the "
        "seven)",
    )
    p.add_argument("--trials", type=int, default=40, help="trials per search (default 40)")
    p.add_argument("--startup", type=int, default=10, help="random trials first (default 10)")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per method (default 5)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per candidate (default 2)")
    p.add_argument("--base-epochs", type=int, help="epochs of the float base model")
    p.add_argument("--final-epochs", type=int, help="epochs of every method's final training")
    p.add_argument("--lr", type=float, default=0.001, help="candidates' peak LR (default 1e-3)")
    p.add_argument("--final-lr", type=float, default=0.01, help="base/final peak LR (0.01)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--avg-bits",
        type=float,
        default=2.5,
        help="size limit = the model at this many bits per weight (default 2.5), unless a "
        "limit below is given",
    )
    p.add_argument("--size-limit-mb", type=float, help="model size limit (MB)")
    p.add_argument("--latency-limit-ms", type=float, help="latency limit (ms)")
    p.add_argument("--min-speedup", type=float, help="speedup vs FiP16 at least this")
    p.add_argument("--ebops", type=float, help="EBOPs limit (HGQ's effective bit operations)")
    p.add_argument("--cost-model", choices=("memory", "compute"), default="memory")
    p.add_argument(
        "--rescore",
        type=int,
        default=5,
        help="re-train the best N configurations of a search before choosing (default 5; 0: "
        "take the single best trial)",
    )
    p.add_argument("--rescore-repeats", type=int, default=2, help="re-scores each (default 2)")
    p.add_argument(
        "--pruner",
        choices=PRUNERS,
        default=DEFAULT_PRUNER,
        help=f"the searches' pruner (default {DEFAULT_PRUNER}, as kmtpe search)",
    )
    add_space_options(p)
    p.add_argument("--out", default="kmtpe_runs/compare", help="output folder")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    add_threads(p)
    p.add_argument("--json", action="store_true", help="print comparison.json on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``kmtpe compare``; returns the exit status."""
    from optuna_kmtpe._runs.threads import set_threads

    set_threads(args.threads)  # first: before torch loads and anything trains
    from optuna_kmtpe._runs.compare_run import CompareConfig
    from optuna_kmtpe._runs.compare_run import run_compare
    from optuna_kmtpe._runs.search_run import SearchError
    from optuna_kmtpe._search.checkpoint import CheckpointError
    from optuna_kmtpe._zoo.data import DataError

    config = CompareConfig(
        dataset=args.dataset,
        model=args.model,
        data_dir=args.data_dir,
        trial_subset=args.trial_subset,
        checkpoint=args.checkpoint,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        trials=args.trials,
        startup=args.startup,
        seeds=args.seeds,
        epochs=args.epochs,
        base_epochs=args.base_epochs,
        final_epochs=args.final_epochs,
        lr=args.lr,
        final_lr=args.final_lr,
        batch_size=args.batch_size,
        avg_bits=args.avg_bits,
        size_limit_mb=args.size_limit_mb,
        latency_limit_ms=args.latency_limit_ms,
        min_speedup=args.min_speedup,
        ebops=args.ebops,
        cost_model=args.cost_model,
        rescore=args.rescore,
        rescore_repeats=args.rescore_repeats,
        pruner=args.pruner,
        **space_options(args),
        out=args.out,
        device=args.device,
        threads=args.threads,
    )
    try:
        summary = run_compare(config)
    except (SearchError, DataError, CheckpointError, ValueError) as e:
        print(f"kmtpe compare: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"kmtpe compare: interrupted; finished runs are in {args.out}/runs. Run the same "
            "command again to continue.",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print((Path(args.out) / "comparison.md").read_text())
    return 0
