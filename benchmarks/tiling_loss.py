"""Measure two statements of docs/cost_model.md with the cost model itself.

1. Tiling loss: on the 32x32 array a layer's output channels and patch entries are tiled in
   whole tiles (``ceil(Cout / 32) * ceil(kh*kw*Cin / 32)``). A width-scaled layer (e.g. 24 or
   40 channels) then pays for partly empty tiles. This script prints, per configuration, the
   speedup with rounded-up tiling (the model) and with exact fractional tiling
   (``Cout / 32 * kh*kw*Cin / 32``, same packing), both against their own FiP16 width-1
   baseline, and the loss ``1 - rounded / fractional``. Compute-bound reading
   (``dram_gbps=None``), as the paper's speedups.
2. The size of the paper's Table IV ResNet-20 configuration (the printed list has 19
   bit-widths for 20 layers; every one-entry insertion is tried).

Usage::

    PYTHONPATH=. python benchmarks/tiling_loss.py
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._zoo.models import zoo_cost_model


sys.path.insert(0, "benchmarks")
from cost_model_tables import insertions  # noqa: E402
from cost_model_tables import TABLE_IV_RESNET20_BITS  # noqa: E402
from cost_model_tables import TABLE_IV_RESNET20_WIDTHS  # noqa: E402


def fractional_cycles(cost: DSPPackingModel, bits: object, widths: object) -> float:
    layers = cost.evaluate(bits, widths).per_layer  # type: ignore[arg-type]
    patch = layers["kernel"] * (layers["in"] // layers["groups"])
    tiles = layers["groups"] * (layers["out"] / layers["groups"] / cost.rows) * patch / cost.cols
    return float((tiles * layers["out_pixels"] / layers["packing"]).sum())


def loss(cost: DSPPackingModel, bits: object, widths: object) -> tuple[float, float, float]:
    rounded = cost.evaluate(bits, widths).speedup  # type: ignore[arg-type]
    frac = fractional_cycles(cost, 16, None) / fractional_cycles(cost, bits, widths)
    return rounded, frac, 1.0 - rounded / frac


def main() -> None:
    torch.set_num_threads(1)
    out = sys.stdout
    r20 = zoo_cost_model("resnet20", 10, dram_gbps=None)
    r18 = zoo_cost_model("resnet18_cifar", 100, dram_gbps=None)
    rows = []
    for name, cost in (("resnet20", r20), ("resnet18_cifar", r18)):
        for w in (0.75, 0.875, 1.0, 1.125, 1.25):
            for b in (8, 4, 2):
                rows.append((name, f"uniform {b} bits, width {w}", *loss(cost, b, w)))
    # Table IV's ResNet-18 list (17 bit-widths, 18 widths for 21 layers) does not map onto
    # the layers unambiguously, so only ResNet-20's is priced.
    t4_20 = [
        loss(r20, b, TABLE_IV_RESNET20_WIDTHS) for b in insertions(TABLE_IV_RESNET20_BITS, 20)
    ]
    rows.append(("resnet20", "Table IV (19 insertions: min-max)", *_span(t4_20)))
    out.write(
        "| model | configuration | speedup (rounded tiles) | speedup (fractional) | loss |\n"
    )
    out.write("|---|---|---|---|---|\n")
    for name, conf, a, b, c in rows:
        out.write(f"| {name} | {conf} | {_fmt(a, 'x')} | {_fmt(b, 'x')} | {_fmt(c, '%')} |\n")
    scaled = [r[4] for r in rows if "width 1.0" not in r[1] and "uniform" in r[1]]
    out.write(
        f"\nLoss over the width-scaled uniform rows (width != 1): {min(scaled):.1%}-"
        f"{max(scaled):.1%}; at width 1: "
        f"{min(r[4] for r in rows if 'width 1.0' in r[1]):.1%}-"
        f"{max(r[4] for r in rows if 'width 1.0' in r[1]):.1%}.\n"
    )
    sizes = [
        r20.evaluate(b, TABLE_IV_RESNET20_WIDTHS).size_mb
        for b in insertions(TABLE_IV_RESNET20_BITS, 20)
    ]
    out.write(
        f"Table IV ResNet-20 configuration: {min(sizes):.4f}-{max(sizes):.4f} MB over the 20 "
        f"insertions (median {np.median(sizes):.4f} MB); baseline FiP16 "
        f"{r20.baseline().size_mb:.4f} MB.\n"
    )


def _span(values: list[tuple[float, float, float]]) -> tuple[object, object, object]:
    cols = list(zip(*values))
    return tuple((min(c), max(c)) for c in cols)  # type: ignore[return-value]


def _fmt(v: object, unit: str) -> str:
    if isinstance(v, tuple):
        return f"{_fmt(v[0], unit)}-{_fmt(v[1], unit)}"
    assert isinstance(v, float)
    return f"{v:.1%}" if unit == "%" else f"{v:.2f}x"


if __name__ == "__main__":
    main()
