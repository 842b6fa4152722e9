"""``kmtpe search``: from a trained model to per-layer bit-widths and widths under limits.

Example (the offline default: scikit-learn digits, ``small_cnn``)::

    kmtpe search
    kmtpe search --dataset cifar10 --data-dir ~/data --model resnet20 --size-limit-mb 0.1

Exit status: 0 done; 2 bad input (nothing run, or nothing lost: the study stays in its
storage); 3 the search finished but no configuration met the limits; 130 interrupted
(resume with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from optuna_kmtpe._compress.limits import OBJECTIVES
from optuna_kmtpe._sampler_registry import SEARCH_SAMPLERS
from optuna_kmtpe._search.pruning import PRUNERS


SAMPLERS = SEARCH_SAMPLERS


def register(subparsers: Any) -> None:
    """Add the ``search`` subcommand to ``kmtpe``'s subparsers."""

    p = subparsers.add_parser(
        "search",
        help="Search per-layer bit-widths and widths (Hessian-pruned space, k-means TPE).",
        description=(
            "Train (or load) a base model, prune the per-layer bit-width space with Hessian "
            "traces, search bits and widths with an Optuna study under hardware limits, "
            "train the chosen configuration and report it. Without arguments: scikit-learn "
            "digits (offline default) with small_cnn. See docs/search.md."
        ),
    )
    g = p.add_argument_group("data and model")
    g.add_argument(
        "--dataset", default="digits", help="digits (default), mnist-5k, cifar10, cifar100"
    )
    g.add_argument("--data-dir", help="folder holding the CIFAR files (cifar-10-batches-py/...)")
    g.add_argument("--download", action="store_true", help="let torchvision download CIFAR")
    g.add_argument("--limit-train", type=int, help="use only this many training images")
    g.add_argument(
        "--model", help="zoo model (default per dataset: small_cnn, resnet20, resnet18_cifar)"
    )
    g.add_argument("--checkpoint", help="trained base model weights (.pt); else it is trained")
    g = p.add_argument_group("training")
    g.add_argument(
        "--base-epochs", type=int, help="epochs of the base model (20 digits, 30 CIFAR)"
    )
    g.add_argument("--epochs", type=int, default=4, help="epochs per candidate (default 4)")
    g.add_argument(
        "--final-epochs",
        type=int,
        help="epochs of the chosen model (30 digits, 90 CIFAR; 0 skips)",
    )
    g.add_argument("--lr", type=float, default=0.001, help="candidates' peak LR (default 1e-3)")
    g.add_argument("--final-lr", type=float, default=0.01, help="base/final peak LR (0.01)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    g = p.add_argument_group("search")
    g.add_argument("--sampler", choices=SAMPLERS, default="kmeans-tpe")
    g.add_argument("--trials", type=int, default=160, help="total trials (default 160)")
    g.add_argument("--startup", type=int, default=40, help="random trials first (default 40)")
    g.add_argument("--objective", choices=OBJECTIVES, default="lagrangian")
    g.add_argument("--size-limit-mb", type=float, help="model size limit mu (MB)")
    g.add_argument("--latency-limit-ms", type=float, help="latency limit tau (ms)")
    g.add_argument("--min-speedup", type=float, help="speedup vs FiP16 at least this")
    g.add_argument(
        "--no-limits", action="store_true", help="no default size limit (4-bit model size)"
    )
    g.add_argument(
        "--train-infeasible", action="store_true", help="also train configurations over a limit"
    )
    g.add_argument(
        "--rescore",
        type=int,
        default=5,
        help="before choosing, re-train the best N configurations --rescore-repeats more "
        "times with fresh seeds and choose by the mean (default 5; 0: the single best trial)",
    )
    g.add_argument("--rescore-repeats", type=int, default=2, help="re-scores each (default 2)")
    g.add_argument(
        "--reuse-repeats",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a trial that repeats an earlier configuration reuses its result instead of "
        "training again (default; it still counts as one of --trials)",
    )
    g.add_argument(
        "--pruner",
        choices=PRUNERS,
        default=None,
        help="stop unpromising candidates early, scoring each after every epoch: "
        "successive-halving (default: measured to halve the training epochs at the same "
        "accuracy), median, hyperband, or none (every candidate trains all --epochs; the "
        "default with --objective pareto or --epochs 1). A pruned trial counts as one of "
        "--trials",
    )
    g.add_argument(
        "--cost-model",
        choices=("memory", "compute"),
        default="memory",
        help="latency model of the limits and the speedup: memory (default; DRAM-bound at "
        "19.2 GB/s) or compute (the DSP array alone, as the paper's speedups)",
    )
    g.add_argument("--clusters", type=int, default=4, help="k of the Hessian clustering (4)")
    g.add_argument("--hessian-samples", type=int, default=50, help="max Hutchinson samples/layer")
    g.add_argument("--hessian-batches", type=int, default=2)
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("storage and output")
    g.add_argument("--out", default="kmtpe_runs/search", help="output folder")
    g.add_argument(
        "--storage",
        help="Optuna RDB URL, or journal:PATH for a journal file (default sqlite:///OUT/study.db)",
    )
    g.add_argument("--study-name", help="default kmtpe-MODEL-DATASET")
    g.add_argument("--resume", action="store_true", help="continue the study in the storage")
    g = p.add_argument_group("parallel and distributed (docs/distributed.md)")
    g.add_argument(
        "--workers", type=int, default=1, help="processes on this machine sharing --trials (1)"
    )
    g.add_argument(
        "--threads", type=int, help="torch threads per worker (default 1 with --workers > 1)"
    )
    g.add_argument(
        "--no-final",
        dest="final",
        action="store_false",
        help="run trials only: another process chooses and trains the final model",
    )
    g.add_argument(
        "--requeue-running",
        action="store_true",
        help="with --resume: fail and re-run RUNNING trials (no other worker may be alive)",
    )
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``kmtpe search``; returns the exit status."""
    # NOTE: imported here, not at the top, so that ``kmtpe --help`` does not load torch.
    from optuna_kmtpe._commands.search_run import run_search
    from optuna_kmtpe._commands.search_run import SearchConfig
    from optuna_kmtpe._commands.search_run import SearchError
    from optuna_kmtpe._commands.search_run import summary_text
    from optuna_kmtpe._search.checkpoint import CheckpointError
    from optuna_kmtpe._zoo.data import DataError

    config = SearchConfig(
        dataset=args.dataset,
        model=args.model,
        data_dir=args.data_dir,
        download=args.download,
        limit_train=args.limit_train,
        checkpoint=args.checkpoint,
        base_epochs=args.base_epochs,
        epochs=args.epochs,
        final_epochs=args.final_epochs,
        lr=args.lr,
        final_lr=args.final_lr,
        batch_size=args.batch_size,
        trials=args.trials,
        startup=args.startup,
        sampler=args.sampler,
        objective=args.objective,
        size_limit_mb=args.size_limit_mb,
        latency_limit_ms=args.latency_limit_ms,
        min_speedup=args.min_speedup,
        no_limits=args.no_limits,
        train_infeasible=args.train_infeasible,
        n_clusters=args.clusters,
        hessian_batches=args.hessian_batches,
        hessian_samples=args.hessian_samples,
        seed=args.seed,
        out=args.out,
        storage=args.storage,
        study_name=args.study_name,
        resume=args.resume,
        workers=args.workers,
        threads=args.threads,
        final=args.final,
        requeue_running=args.requeue_running,
        device=args.device,
        progress=args.progress,
        reuse_repeats=args.reuse_repeats,
        rescore=args.rescore,
        rescore_repeats=args.rescore_repeats,
        cost_model=args.cost_model,
        pruner=args.pruner,
    )
    try:
        result = run_search(config)
    except (SearchError, DataError, CheckpointError) as e:
        print(f"kmtpe search: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"kmtpe search: interrupted; finished trials are in the study. Continue with the "
            f"same command plus --resume (output folder {args.out}).",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not config.final:
        print(f"kmtpe search: {result.message}")
    else:
        print(summary_text(result))
    if config.final and not result.feasible:
        if args.json:
            print(f"kmtpe search: {result.message}", file=sys.stderr)
        return 3
    return 0
