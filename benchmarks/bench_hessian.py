"""Time to a target precision of three Hutchinson estimators of per-layer Hessian traces.

Model: CIFAR ResNet-20 from ``optuna_kmtpe._zoo.models`` with 10 classes. Data: ONE RANDOM BATCH
(Gaussian images, uniform labels; a timing benchmark, not a sensitivity study) after 50 SGD
steps on it, so the loss is not at its random-init value. Each method runs until every layer's
relative standard error is <= ``--rtol`` or its time cap; a capped method's time to the
target is extrapolated from its measured per-sample standard deviations and marked so.

Methods (all ``optuna_kmtpe.hessian_traces``, same batch, same stopping rule):

* ``adaptive``: per-layer probes, each layer stops when it reaches ``rtol`` (the default).
* ``layerwise``: per-layer probes of every layer each round until all reach ``rtol``.
* ``whole``: one whole-model Hessian-vector product per sample.

Run::

    PYTHONPATH=. python benchmarks/bench_hessian.py --threads 1 --out bench_hessian.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from typing import Any

import torch
import torch.nn.functional as F

from optuna_kmtpe import hessian_traces
from optuna_kmtpe import TraceEstimate
from optuna_kmtpe._zoo.models import build_model


def _trained_model(seed: int, batch_size: int) -> tuple[torch.nn.Module, Any]:
    torch.manual_seed(seed)
    model = build_model("resnet20", 10)
    x = torch.randn(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(50):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, [(x, y)]


def _summary(
    traces: dict[str, TraceEstimate], wall: float, rtol: float, reference: dict[str, float]
) -> dict[str, Any]:
    """Wall time, reached flag and, when not reached, the extrapolated time to ``rtol``.

    Extrapolation: per-sample s.d. ``s_l = stderr_l * sqrt(n_l)`` of each layer, the trace
    from ``reference`` (the most precise run), samples needed ``(s_l / (rtol |T_l|))^2``;
    the method's rounds give every layer a sample, so time = max needed x time per round.
    """
    rel = {name: t.rel_stderr for name, t in traces.items()}
    reached = all(r <= rtol for r in rel.values())
    rounds = max(t.n_samples for t in traces.values())
    out: dict[str, Any] = {
        "wall_s": wall,
        "reached": reached,
        "max_rel_stderr": max(rel.values()),
        "samples_per_layer": {name: t.n_samples for name, t in traces.items()},
        "total_samples": sum(t.n_samples for t in traces.values()),
        "seconds_per_round": wall / rounds,
    }
    if not reached:
        needed = {
            name: (t.stderr * math.sqrt(t.n_samples) / (rtol * abs(reference[name]))) ** 2
            for name, t in traces.items()
        }
        out["needed_samples_per_layer"] = needed
        out["extrapolated_s"] = max(needed.values()) * wall / rounds
        out["per_sample_rel_sd"] = {
            name: t.stderr * math.sqrt(t.n_samples) / abs(reference[name])
            for name, t in traces.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtol", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cap-adaptive", type=float, default=3600.0, help="seconds")
    parser.add_argument("--cap-layerwise", type=float, default=1800.0, help="seconds")
    parser.add_argument("--cap-whole", type=float, default=600.0, help="seconds")
    parser.add_argument("--max-samples", type=int, default=100000)
    parser.add_argument("--methods", default="adaptive,layerwise,whole,adaptive", help="run order")
    parser.add_argument("--out", default="bench_hessian.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, batches = _trained_model(args.seed, args.batch_size)
    results: list[dict[str, Any]] = []
    reference: dict[str, float] = {}
    caps = {"adaptive": args.cap_adaptive, "layerwise": args.cap_layerwise}
    caps["whole"] = args.cap_whole
    for run, method in enumerate(args.methods.split(",")):
        start, cpu_start = time.perf_counter(), time.process_time()
        traces = hessian_traces(
            model,
            F.cross_entropy,
            batches,
            rtol=args.rtol,
            max_samples=args.max_samples,
            seed=args.seed + 1000 * run,
            method=method,  # type: ignore[arg-type]
            time_limit=caps[method],
            progress=False,
        )
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        if not reference or method == "adaptive":
            # The latest converged per-layer run is the reference for extrapolation.
            reference = {name: t.trace for name, t in traces.items()}
        row = {"run": run, "method": method, "cap_s": caps[method]}
        row.update(_summary(traces, wall, args.rtol, reference))
        # CPU time of this process: less sensitive than wall time to other jobs on a shared
        # machine (with one thread it is close to the work done).
        row["cpu_s"] = cpu
        if not row["reached"]:
            row["extrapolated_cpu_s"] = row["extrapolated_s"] * cpu / wall
        row["traces"] = {name: t.to_dict() for name, t in traces.items()}
        results.append(row)
        shown = (
            f"{wall:8.1f} s measured"
            if row["reached"]
            else (f"{row['extrapolated_s']:8.0f} s EXTRAPOLATED (capped at {wall:.0f} s)")
        )
        print(
            f"{method:10s} {shown}  cpu={cpu:.1f} s  samples={row['total_samples']}  "
            f"max rel stderr={row['max_rel_stderr']:.3f}",
            flush=True,
        )
        with open(args.out, "w") as f:
            json.dump(
                {
                    "data": "one random batch (Gaussian images, uniform labels) after 50 SGD "
                    "steps: timing only",
                    "model": "resnet20 (optuna_kmtpe._zoo.models), 10 classes",
                    "batch_size": args.batch_size,
                    "rtol": args.rtol,
                    "threads": args.threads,
                    "torch": torch.__version__,
                    "machine": platform.processor() or platform.machine(),
                    "results": results,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
