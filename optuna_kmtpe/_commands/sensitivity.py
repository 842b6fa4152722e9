"""``kmtpe sensitivity``: per-layer Hessian traces, their clusters and allowed bit-widths.

Example::

    kmtpe sensitivity --train-epochs 5 --plot traces.png      # small_cnn on digits
    kmtpe sensitivity --model resnet20 --checkpoint r20.pt --data-dir ~/data --json
    kmtpe sensitivity --model resnet50 --num-classes 1000 --data random   # timing only
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
    from optuna_kmtpe._compress.sensitivity import TraceEstimate

RANDOM_LABEL = "random tensors (timing only: traces are NOT a sensitivity of real data)"


def register(subparsers: Any) -> None:
    """Add the ``sensitivity`` parser to the ``kmtpe`` subparsers."""
    from optuna_kmtpe._commands._options import add_threads
    from optuna_kmtpe._zoo.catalog import DATASETS
    from optuna_kmtpe._zoo.catalog import MODEL_NAMES

    p = subparsers.add_parser(
        "sensitivity",
        help="Hessian-trace sensitivity per layer and the pruned bit-width space.",
        description=(
            "Estimate the Hessian trace of every Conv/Linear weight (Hutchinson, per-layer "
            "probes), cluster the normalised traces and print the bit-widths each layer may "
            "take. Data: scikit-learn digits for small_cnn (offline default), CIFAR-10 for "
            "resnet20 and CIFAR-100 for resnet18_cifar / mobilenetv1 (from --data-dir), or "
            "--data random, a timing-only option."
        ),
    )
    p.add_argument("--model", choices=MODEL_NAMES, default="small_cnn")
    p.add_argument("--num-classes", type=int, help="default: the dataset's (10 for --data random)")
    p.add_argument("--checkpoint", help="state_dict saved with torch.save (.pt)")
    p.add_argument(
        "--data",
        choices=(*DATASETS, "random"),
        help="default: the model's dataset (digits for small_cnn, cifar10 for resnet20, "
        "cifar100 for resnet18_cifar / mobilenetv1); random is timing only",
    )
    p.add_argument("--data-dir", help="folder with the CIFAR files")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR")
    p.add_argument("--train-epochs", type=int, default=0, help="train on the data first")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=4, help="number of batches probed")
    p.add_argument("--max-samples", type=int, default=200, help="per layer")
    p.add_argument("--rtol", type=float, default=0.1, help="target relative stderr")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clusters", type=int, default=4)
    p.add_argument("--scale", choices=("log", "linear"), default="log")
    p.add_argument("--bits", default="8,6,4,3,2", help="candidate bit-widths B")
    p.add_argument("--widths", default="0.75,0.875,1,1.125,1.25", help="multipliers S")
    add_threads(p)
    p.add_argument("--device", default=None, help="e.g. cuda; default: cuda if available")
    p.add_argument("--plot", help="write a bar chart of the normalised traces (PNG)")
    p.add_argument("--space-out", help="write the pruned MixedPrecisionSpace as JSON")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``kmtpe sensitivity``; returns the exit status."""
    try:
        result = _compute(args)
    except ValueError as e:
        print(f"kmtpe sensitivity: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_finite_or_none(result), indent=2))
    else:
        _print_human(result)
    return 0


def _compute(args: argparse.Namespace) -> dict[str, Any]:
    from optuna_kmtpe._runs.threads import set_threads

    set_threads(args.threads)  # first: before torch loads and anything trains
    import torch
    import torch.nn.functional as F

    from optuna_kmtpe._search.checkpoint import load_checkpoint
    from optuna_kmtpe._search.space import estimate_space
    from optuna_kmtpe._zoo.models import build_model
    from optuna_kmtpe._zoo.models import width_groups

    bits = _parse_list(args.bits, int, "--bits")
    widths = _parse_list(args.widths, float, "--widths")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    data, batches, label, num_classes = _data_batches(args)
    model = build_model(args.model, num_classes)
    weights_from = "random initialisation"
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
        weights_from = args.checkpoint
    model.to(device)
    if args.train_epochs > 0:
        from optuna_kmtpe._zoo.train import train

        if data is None:
            raise ValueError("--train-epochs needs real data; random tensors teach nothing.")
        train(model, data, epochs=args.train_epochs, seed=args.seed, device=device)
        weights_from += f", then {args.train_epochs} epochs on {label}"
    elif not args.checkpoint:
        weights_from += " (untrained: pass --checkpoint or --train-epochs)"

    # The first step of MixedPrecisionSearch: traces of every quantisable layer, clustered.
    found = estimate_space(
        model,
        F.cross_entropy,
        batches,
        width_layers=list(width_groups(args.model, num_classes)),
        n_clusters=args.clusters,
        scale=args.scale,
        bit_choices=bits,
        width_choices=widths,
        max_samples=args.max_samples,
        rtol=args.rtol,
        seed=args.seed,
        progress=True,
    )
    traces, space, seconds = found.traces, found.space, found.seconds
    if args.space_out:
        with open(args.space_out, "w") as f:
            f.write(space.to_json(indent=2))
    if args.plot:
        _plot(traces, space, args.plot, f"{args.model} on {label}")
    return {
        "model": args.model,
        "num_classes": num_classes,
        "weights": weights_from,
        "data": label,
        "batches": args.batches,
        "batch_size": args.batch_size,
        "device": str(device),
        "seconds": seconds,
        "layers": [
            {
                "layer": name,
                **t.to_dict(),
                "cluster": space.clusters[name],
                "bits": list(space.bits[name]),
            }
            for name, t in traces.items()
        ],
        "log10_size": {
            "unpruned": space.log10_size(pruned=False),
            "pruned": space.log10_size(),
        },
        "space": space.to_dict(),
        "plot": args.plot,
    }


def _finite_or_none(x: Any) -> Any:
    """Strict JSON: an infinite standard error (fewer than 2 samples) becomes null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite_or_none(v) for v in x]
    return x


def _print_human(r: dict[str, Any]) -> None:
    print(f"model: {r['model']} ({r['num_classes']} classes), weights: {r['weights']}")
    print(f"data: {r['data']}, {r['batches']} x {r['batch_size']} samples, {r['device']}")
    print(f"Hutchinson per-layer traces in {r['seconds']:.1f} s\n")
    header = (
        f"{'layer':24s} {'numel':>8s} {'trace':>11s} {'stderr':>9s} {'rel':>6s} "
        f"{'normalised':>11s} {'n':>5s} {'cluster':>7s}  bits"
    )
    print(header)
    for row in r["layers"]:
        print(
            f"{row['layer']:24s} {row['numel']:8d} {row['trace']:11.4g} {row['stderr']:9.3g} "
            f"{row['rel_stderr']:6.3f} {row['normalized']:11.4g} {row['n_samples']:5d} "
            f"{row['cluster']:7d}  {{{','.join(map(str, row['bits']))}}}"
        )
    size = r["log10_size"]
    print(
        f"\nsearch space: 10^{size['unpruned']:.1f} configurations unpruned, "
        f"10^{size['pruned']:.1f} after pruning"
    )
    if r["plot"]:
        print(f"plot: {r['plot']}")


def _parse_list(text: str, kind: type, flag: str) -> list[Any]:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag} must be a comma-separated list of numbers, got {text!r}.")


def _data_batches(args: argparse.Namespace) -> tuple[Any, list[Any], str, int]:
    """(dataset or None, the probed batches, the data label, the number of classes)."""
    import itertools

    import torch

    from optuna_kmtpe._zoo.catalog import DATASETS
    from optuna_kmtpe._zoo.data import load_dataset
    from optuna_kmtpe._zoo.models import input_shape
    from optuna_kmtpe._zoo.train import batches

    defaults = {model: dataset for dataset, model in DATASETS.items()}
    defaults["mobilenetv1"] = "cifar100"
    name = args.data or defaults.get(args.model)
    if name is None:
        raise ValueError(
            f"No dataset loader fits {args.model!r} (input {input_shape(args.model)}); "
            "ImageNet is not supported here. Pass --data random for a timing-only run."
        )
    generator = torch.Generator().manual_seed(args.seed)
    if name == "random":
        num_classes = args.num_classes or 10
        shape = input_shape(args.model)
        fake = [
            (
                torch.randn(args.batch_size, *shape, generator=generator),
                torch.randint(0, num_classes, (args.batch_size,), generator=generator),
            )
            for _ in range(args.batches)
        ]
        return None, fake, RANDOM_LABEL, num_classes
    data = load_dataset(name, args.data_dir, download=args.download, seed=args.seed)
    if args.num_classes not in (None, data.num_classes):
        raise ValueError(
            f"--num-classes {args.num_classes} contradicts {data.label} "
            f"({data.num_classes} classes); leave it out."
        )
    if tuple(data.input_shape) != tuple(input_shape(args.model)):
        raise ValueError(
            f"{args.model!r} takes inputs {input_shape(args.model)}, {data.label} has "
            f"{tuple(data.input_shape)}; pick a model that fits the data."
        )
    probed = list(
        itertools.islice(
            batches(data, "train", args.batch_size, shuffle=True, generator=generator),
            args.batches,
        )
    )
    return data, probed, data.label, data.num_classes


def _plot(
    traces: dict[str, TraceEstimate], space: MixedPrecisionSpace, path: str, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(traces)
    values = [traces[n].normalized for n in names]
    errors = [traces[n].normalized_stderr for n in names]
    colours = plt.get_cmap("viridis")
    k = max(space.clusters.values()) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 2), 4.5))
    for c in range(k):
        idx = [i for i, n in enumerate(names) if space.clusters[n] == c]
        bits = space.bits[names[idx[0]]]
        ax.bar(
            idx,
            [values[i] for i in idx],
            yerr=[errors[i] for i in idx],
            color=colours(c / max(k - 1, 1)),
            label=f"cluster {c}: bits {{{','.join(map(str, bits))}}}",
        )
    if all(v > 0 for v in values):
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=min(abs(v) for v in values if v != 0) or 1e-12)
    ax.set_xticks(range(len(names)), names, rotation=75, fontsize=7)
    ax.set_ylabel("Hessian trace / number of weights")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
