"""Which trained channels should a narrowed layer keep? The trial score of narrowed
configurations with ``narrow="first"`` (slicing) against ``narrow="magnitude"`` (largest L1
norm), same training (issue 21).

Each configuration is built from the base model both ways, trained as a search's trial
(``--epochs`` epochs on a fixed ``--trial-subset`` of the training images, peak LR ``--lr``,
seed 0) and scored on the validation split. Configurations: uniform 4 bits at width 0.75
(the uniform baseline's choice at 2.5 bits per weight on Fashion-MNIST) and those given with
``--config BITS:WIDTHS`` (comma-separated, one per quantised layer).

Example (the committed run)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/narrowing_proxy.py \\
        --dataset fashion-mnist --checkpoint benchmarks/results/fashion-mnist/base_model8.pt \\
        --config 3,2,3,4,2,6:0.75,0.75,1.25,0.75,0.875,1 \\
        --config 6,6,2,2,2,3:0.75,0.875,1.125,1.25,0.875,1 \\
        --config 6,3,2,2,3,8:0.75,1.125,0.75,0.75,1.25,1
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from optuna_kmtpe._compress.limits import HardwareLimits
from optuna_kmtpe._search.api import MixedPrecisionSearch
from optuna_kmtpe._search.checkpoint import load_checkpoint
from optuna_kmtpe._zoo import train as zoo_train
from optuna_kmtpe._zoo.catalog import DATASETS
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.data import train_subset
from optuna_kmtpe._zoo.models import build_model


def _parse(text: str) -> tuple[list[int], list[float]]:
    bits, widths = text.split(":")
    return [int(b) for b in bits.split(",")], [float(w) for w in widths.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--checkpoint", required=True, help="the trained base model (.pt)")
    p.add_argument("--config", action="append", default=[], help="BITS:WIDTHS")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--trial-subset", type=int, default=5000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, seed=0)
    trial_data = train_subset(data, args.trial_subset or None, 0)
    base = build_model(DATASETS[args.dataset], data.num_classes)
    load_checkpoint(base, args.checkpoint)
    print(f"{data.label}; trials: {args.epochs} epoch(s) on {len(trial_data.train[1])} images")
    search = MixedPrecisionSearch(
        base,
        train_fn=lambda *a, **k: None,
        eval_fn=lambda m: 0.0,
        input_shape=data.input_shape,
        limits=HardwareLimits(),
        hessian_data=itertools.islice(zoo_train.batches(data, "train", 64), 1),
    )
    n = len(search.layers)
    configs = {"uniform 4 bits, width 0.75": ([4] * n, [0.75] * (n - 1) + [1.0])}
    configs.update({c: _parse(c) for c in args.config})
    print("| configuration | first (slicing) | magnitude | difference |")
    print("|---|---|---|---|")
    for name, (bits, widths) in configs.items():
        scores = {}
        for rule in ("first", "magnitude"):
            t0 = time.process_time()
            builder = search.objective().builder
            builder.narrow = rule
            net = builder.build(dict(zip(search.layers, bits)), widths)
            zoo_train.train(net, trial_data, epochs=args.epochs, max_lr=args.lr, seed=0)
            scores[rule] = zoo_train.evaluate(net, data, "val")
            print(f"  ({rule}: {time.process_time() - t0:.0f} s CPU)", flush=True)
        diff = scores["magnitude"] - scores["first"]
        print(f"| {name} | {scores['first']:.4f} | {scores['magnitude']:.4f} | {diff:+.4f} |")


if __name__ == "__main__":
    main()
