"""Per-layer export summary: quantisation, the cost model's costs and qonnx's cost analysis."""

from __future__ import annotations

import re
from typing import Any
from typing import TYPE_CHECKING

import numpy as np


if TYPE_CHECKING:
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._export._layers import LayerQuant


_BITS = re.compile(r"<(\d+)>")


def _dtype_bits(name: str) -> int | None:
    """Bits of a qonnx datatype name (``SCALEDINT<4>``, ``UINT4``, ``FLOAT32``)."""
    m = _BITS.search(name)
    if m:
        return int(m.group(1))
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else None


def qonnx_costs(model: Any, layers: list[str]) -> dict[str, dict[str, Any]]:
    """qonnx's ``inference_cost`` per layer (no sparsity discount): MACs, weight elements,
    weight bits, BOPs and the input / weight datatypes it inferred."""
    from qonnx.util.inference_cost import inference_cost

    from optuna_kmtpe._export.qonnx import compute_nodes

    names = [n.name for n in compute_nodes(model)]
    res = inference_cost(model, cost_breakdown=True, discount_sparsity=False)
    node_cost = res["node_cost"]
    out: dict[str, dict[str, Any]] = {}
    for layer, node in zip(layers, names):
        c = node_cost[node]
        mac_key = next(k for k in c if k.startswith("op_mac_"))
        in_dt, w_dt = mac_key[len("op_mac_") :].split("_", 1)
        out[layer] = {
            "node": node,
            "macs": float(c["total_macs"]),
            "weights": float(c["total_mem_w_elems"]),
            "weight_bits": float(c["total_mem_w_bits"]),
            "bops": float(c["total_bops"]),
            "input_dtype": in_dt,
            "weight_dtype": w_dt,
        }
    out["__total__"] = {
        "macs": float(res["total_cost"]["total_macs"]),
        "weight_bits": float(res["total_cost"]["total_mem_w_bits"]),
        "bops": float(res["total_cost"]["total_bops"]),
        "unsupported": res["total_cost"].get("unsupported", ""),
    }
    return out


def layer_rows(
    quant: list[LayerQuant],
    order: list[str],
    cost: DSPPackingModel | None,
    qonnx: dict[str, dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """One JSON-ready row per layer (execution order): bits, scales, zero points, costs.

    ``cost_ebops`` is HGQ's effective bit operations (MACs x weight bits x input bits, see
    :attr:`~optuna_kmtpe._compress.cost.CostReport.ebops`); qonnx's ``qonnx_bops`` counts
    the same product with the datatypes it infers from the graph (plus the accumulator adds),
    so the two agree up to those adds and the bits qonnx infers for each input.
    """
    by_name = {q.name: q for q in quant}
    report = None
    if cost is not None:
        bits_in_cost_order = [by_name[n].bits for n in cost.layer_names]
        report = cost.evaluate(bits_in_cost_order).layers
    rows = []
    for name in order:
        q = by_name[name]
        row: dict[str, Any] = {
            "layer": name,
            "kind": q.kind,
            "bits": q.bits,
            "weight_scale_min": float(np.min(q.weight_scale)),
            "weight_scale_max": float(np.max(q.weight_scale)),
            "input_range": [q.act_lo, q.act_hi],
            "input_scale": q.act_scale,
            "input_zero_point": q.act_zero_point,
        }
        if report is not None:
            r = report.loc[name]
            macs = int(r["macs"])
            row.update(
                cost_macs=macs,
                cost_weights=int(r["weights"]),
                cost_weight_bits=int(r["weights"]) * q.bits,
                cost_ebops=int(r["ebops"]),
                cost_cycles=int(r["cycles"]),
            )
        if qonnx is not None:
            c = qonnx[name]
            row.update(
                onnx_node=c["node"],
                qonnx_macs=int(c["macs"]),
                qonnx_weight_bits=int(c["weight_bits"]),
                qonnx_bops=int(c["bops"]),
                qonnx_input_dtype=c["input_dtype"],
                qonnx_weight_dtype=c["weight_dtype"],
            )
        rows.append(row)
    return rows


def rows_markdown(rows: list[dict[str, Any]]) -> str:
    """A markdown table of :func:`layer_rows` (the columns present in the rows)."""
    cols = [
        ("layer", "layer"),
        ("bits", "bits"),
        ("input_scale", "in scale"),
        ("input_zero_point", "in zp"),
        ("cost_macs", "MACs (cost model)"),
        ("qonnx_macs", "MACs (qonnx)"),
        ("cost_weight_bits", "weight bits (cost model)"),
        ("qonnx_weight_bits", "weight bits (qonnx)"),
        ("cost_ebops", "EBOPs (cost model)"),
        ("qonnx_bops", "BOPs (qonnx)"),
        ("qonnx_input_dtype", "qonnx input dtype"),
    ]
    cols = [(k, h) for k, h in cols if any(k in r for r in rows)]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k, "")
            cells.append(f"{v:.6g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_totals(quant: list[LayerQuant], cost: DSPPackingModel) -> dict[str, float]:
    """Whole-model size, latency, DSP-packing speedup and EBOPs of the exported bits on
    ``cost`` (widths as built into the model)."""
    by_name = {q.name: q for q in quant}
    report = cost.evaluate([by_name[n].bits for n in cost.layer_names])
    return {
        "size_mb": report.size_mb,
        "latency_ms": report.latency_ms,
        "speedup": report.speedup,
        "ebops": report.ebops,
    }
