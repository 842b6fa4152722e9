"""``kmtpe cost``: hardware cost of a zoo model under per-layer bit-widths and widths.

Example::

    kmtpe cost --model resnet20 --num-classes 10 --bits 8 --widths 1 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``cost`` subcommand to ``kmtpe``'s subparsers."""
    from optuna_kmtpe._zoo.catalog import MODEL_NAMES

    parser = subparsers.add_parser(
        "cost",
        help="Size, latency, speedup, energy and throughput on the DSP-packing FPGA model.",
        description=(
            "Cost of a model on an M x N DSP-packing systolic array (see docs/cost_model.md). "
            "--bits and --widths take one value (broadcast) or one per Conv/Linear layer in "
            "model order; a list of the wrong length prints that order."
        ),
    )
    parser.add_argument("--model", required=True, choices=MODEL_NAMES)
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--bits", default="16", help="comma list of bit-widths (default 16)")
    parser.add_argument("--widths", default="1", help="comma list of multipliers (default 1)")
    parser.add_argument("--rows", type=int, default=32, help="PE rows M (default 32)")
    parser.add_argument("--cols", type=int, default=32, help="PE columns N (default 32)")
    parser.add_argument("--clock-mhz", type=float, default=200.0, help="default 200")
    parser.add_argument(
        "--dram-gbps",
        type=float,
        default=19.2,
        help="DRAM bandwidth in GB/s (default 19.2); 0 models compute only",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object on stdout")
    parser.set_defaults(func=run)


def _parse_list(text: str, kind: type, what: str) -> list[Any]:
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--{what} must be a comma-separated list of {kind.__name__}s, got {text!r}."
        ) from None


def run(args: argparse.Namespace) -> int:
    """Handler of ``kmtpe cost``; returns the exit status (2 on bad input)."""
    from optuna_kmtpe._zoo.models import zoo_cost_model

    try:
        bits = _parse_list(args.bits, int, "bits")
        widths = _parse_list(args.widths, float, "widths")
        cost = zoo_cost_model(
            args.model,
            args.num_classes,
            rows=args.rows,
            cols=args.cols,
            clock_mhz=args.clock_mhz,
            dram_gbps=args.dram_gbps or None,
        )
        report = cost.evaluate(bits, widths)
    except ValueError as e:
        print(f"kmtpe cost: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        result = {"model": args.model, "num_classes": args.num_classes, **report.to_dict()}
        print(json.dumps(result, indent=2))
        return 0
    import pandas as pd

    table = report.layers[["kind", "bits", "in", "out", "groups", "weights", "macs"]].copy()
    table["cycles"] = report.layers["cycles"]
    table["size_kb"] = report.layers["weights"] * report.layers["bits"] / 8e3
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    dram = "compute only" if args.dram_gbps == 0 else f"DRAM {args.dram_gbps:g} GB/s"
    print(
        f"\n{args.model}: {cost.num_layers} layers on a {args.rows}x{args.cols} array at "
        f"{args.clock_mhz:g} MHz ({dram})\n"
        f"  size        {report.size_mb:.4f} MB\n"
        f"  latency     {report.latency_ms:.4f} ms ({report.cycles} cycles)\n"
        f"  speedup     {report.speedup:.2f}x vs FiP16\n"
        f"  energy      {report.energy_mj:.4f} mJ\n"
        f"  throughput  {report.throughput_fps:.1f} frames/s"
    )
    return 0
