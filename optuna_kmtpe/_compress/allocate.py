"""Bit allocation without a search: the baselines an engineer would use instead.

Three allocators share the cost model and the limits of the search:

* :func:`uniform_candidates`: one bit-width and one width multiplier for every searched
  layer; the feasible ones that no other feasible one dominates (more bits *and* at least as
  wide). Which of them is best needs training (:mod:`optuna_kmtpe._search.baselines`).
* :func:`ilp_allocation`: HAWQ-V3's integer linear program (Yao et al., ICML 2021): per layer
  ``l`` and bit-width ``b`` the sensitivity ``omega[l][b] = tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2``
  (normalised Hessian trace times the squared quantisation perturbation, HAWQ-V2 eq. 2);
  minimise the sum over layers subject to the limits, solved exactly by
  ``scipy.optimize.milp`` (HiGHS). The cost model's size, cycles and energy are sums of
  per-layer terms that depend on that layer's bits alone (widths fixed), and so are EBOPs
  (``MACs * bits**2`` per layer), so every limit is a linear constraint; throughput
  ``>= pi`` is latency ``<= 1 / pi``.
* :func:`greedy_allocation`: start every layer at its most bits, then repeatedly lower the
  layer whose next lower bit-width adds the least ``omega`` per unit of over-limit cost it
  removes, until the limits hold (the knapsack greedy of the same objective). A step that
  removes nothing (3 and 4 bits pack alike, so their cycles are equal) is skipped for the
  next lower bit-width of that layer.

Layers outside ``candidates`` (kept in float or at fixed bits) keep ``fixed`` bits; widths stay
at 1 for the ILP and the greedy (HAWQ allocates bits only).

Example:
    >>> from torch import nn
    >>> from optuna_kmtpe._compress.cost import DSPPackingModel
    >>> from optuna_kmtpe._compress.limits import HardwareLimits
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(288, 10))
    >>> cost = DSPPackingModel(net, (1, 8, 8))
    >>> limits = HardwareLimits(size_mb=cost.evaluate(3).size_mb)  # 3 bits on average
    >>> omega = {"0": {8: 1.0, 4: 4.0, 2: 30.0}, "2": {8: 1.0, 4: 2.0, 2: 5.0}}
    >>> ilp_allocation(cost, limits, omega).bits  # the small, sensitive conv keeps 8 bits
    {'0': 8, '2': 2}
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from optuna_kmtpe._compress.quant import fake_quantize_weight


if TYPE_CHECKING:
    from torch import nn

    from optuna_kmtpe._compress.cost import CostReport
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits


__all__ = [
    "Allocation",
    "greedy_allocation",
    "ilp_allocation",
    "perturbations",
    "sensitivities",
    "uniform_candidates",
]

#: Layer -> bit-width -> sensitivity (lower is better).
Omega = Mapping[str, Mapping[int, float]]


@dataclass(frozen=True)
class Allocation:
    """Bits and widths for every layer of the cost model, and their cost.

    Attributes:
        method: ``"uniform"``, ``"ilp"`` or ``"greedy"``.
        bits: Layer -> bit-width, every layer of the cost model in order.
        widths: Layer -> width multiplier.
        report: The cost of the configuration.
        omega: Sum of the sensitivities of the searched layers (``nan`` for uniform).
    """

    method: str
    bits: dict[str, int]
    widths: dict[str, float]
    report: CostReport
    omega: float = math.nan


def perturbations(
    model: nn.Module, layers: Sequence[str], bit_choices: Sequence[int]
) -> dict[str, dict[int, float]]:
    """``||Q_b(W) - W||^2`` per layer and bit-width, with the search's weight quantiser
    (:func:`~optuna_kmtpe._compress.quant.fake_quantize_weight`)."""
    modules = dict(model.named_modules())
    out: dict[str, dict[int, float]] = {}
    with torch.no_grad():
        for name in layers:
            w = modules[name].weight.detach().float()  # type: ignore[union-attr]
            out[name] = {
                int(b): float(((fake_quantize_weight(w, int(b)) - w) ** 2).sum())
                for b in bit_choices
            }
    return out


def sensitivities(
    normalized_traces: Mapping[str, float], perturbation: Omega
) -> dict[str, dict[int, float]]:
    """HAWQ-V2's ``omega[l][b] = tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2``.

    Example:
        >>> sensitivities({"fc": 0.5}, {"fc": {8: 0.01, 2: 3.0}})
        {'fc': {8: 0.005, 2: 1.5}}
    """
    return {
        layer: {b: float(normalized_traces[layer]) * p for b, p in per_bit.items()}
        for layer, per_bit in perturbation.items()
    }


def uniform_candidates(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    layers: Sequence[str],
    bit_choices: Sequence[int],
    width_choices: Sequence[float] = (1.0,),
    width_layers: Sequence[str] = (),
    fixed: Mapping[str, int] | None = None,
) -> list[Allocation]:
    """Feasible uniform configurations (one bit-width for ``layers``, one multiplier for
    ``width_layers``) that no other feasible one dominates, most bits first.

    Raises:
        ValueError: No uniform configuration meets the limits.
    """
    feasible: list[tuple[float, Allocation]] = []  # (width, allocation), most bits first
    for b in sorted(set(bit_choices), reverse=True):
        for w in sorted(set(width_choices), reverse=True):
            bits = _full_bits(cost, {n: int(b) for n in layers}, fixed)
            widths = {n: float(w) if n in width_layers else 1.0 for n in cost.layer_names}
            report = cost.evaluate(list(bits.values()), list(widths.values()))
            if _meets(limits, report):
                feasible.append((float(w), Allocation("uniform", bits, widths, report)))
                break  # the widest feasible width at this bit-width
    kept = [a for i, (w, a) in enumerate(feasible) if not any(o >= w for o, _ in feasible[:i])]
    if not kept:
        raise ValueError(
            f"No uniform configuration (bits {sorted(set(bit_choices))}, widths "
            f"{sorted(set(width_choices))}) meets the limits {_limit_text(limits)}; relax them."
        )
    return kept


def ilp_allocation(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    omega: Omega,
    fixed: Mapping[str, int] | None = None,
) -> Allocation:
    """HAWQ-V3's allocation: minimise ``sum omega[l][b]`` under the limits (exact MILP).

    Args:
        cost: The cost model (widths 1).
        limits: Every set limit is a constraint.
        omega: Searched layer -> candidate bit-width -> sensitivity.
        fixed: Bits of the other layers (default 16, the FiP16 reference).

    Raises:
        ValueError: No allocation of the candidates meets the limits (names the cheapest).
    """
    from scipy.optimize import Bounds
    from scipy.optimize import LinearConstraint
    from scipy.optimize import milp

    tables = _tables(cost, omega, fixed)
    n_vars = len(tables.columns)
    rows, lower, upper = [], [], []
    for i in range(len(tables.layers)):  # exactly one bit-width per layer
        rows.append((tables.layer_of == i).astype(float))
        lower.append(1.0)
        upper.append(1.0)
    for per_var, bound in _linear_limits(cost, limits, tables):
        rows.append(per_var)
        lower.append(-np.inf)
        upper.append(bound)
    result = milp(
        c=tables.omega,
        integrality=np.ones(n_vars),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(np.array(rows), lower, upper),
    )
    if result.x is None:
        raise ValueError(_infeasible(cost, limits, omega, fixed, "ILP"))
    chosen = {tables.columns[j] for j in np.flatnonzero(result.x > 0.5)}
    bits = {layer: b for layer, b in chosen}
    return _allocation("ilp", cost, limits, omega, bits, fixed)


def greedy_allocation(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    omega: Omega,
    fixed: Mapping[str, int] | None = None,
) -> Allocation:
    """Lower the bits of the layer with the least added ``omega`` per unit of over-limit cost
    removed, one step at a time, from every layer at its most bits until the limits hold
    (a step lowers a layer to its next bit-width that removes any over-limit cost).

    Raises:
        ValueError: The limits still fail with every layer at its fewest bits.
    """
    levels = {layer: sorted(per_bit, reverse=True) for layer, per_bit in omega.items()}
    at = dict.fromkeys(levels, 0)
    while True:
        current = {layer: levels[layer][i] for layer, i in at.items()}
        report = cost.evaluate(list(_full_bits(cost, current, fixed).values()))
        excess = _excess(limits, report)
        if excess <= 0:
            return _allocation("greedy", cost, limits, omega, current, fixed)
        best: tuple[float, str, int] | None = None
        for layer, i in at.items():
            for j in range(i + 1, len(levels[layer])):  # a plateau may hide the next step
                trial = {**current, layer: levels[layer][j]}
                saved = excess - _excess(
                    limits, cost.evaluate(list(_full_bits(cost, trial, fixed).values()))
                )
                if saved <= 0:
                    continue
                added = omega[layer][levels[layer][j]] - omega[layer][current[layer]]
                if best is None or added / saved < best[0]:
                    best = (added / saved, layer, j)
                break
        if best is None:
            raise ValueError(_infeasible(cost, limits, omega, fixed, "greedy allocation"))
        at[best[1]] = best[2]


# --- Internals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tables:
    layers: tuple[str, ...]
    columns: list[tuple[str, int]]  # (layer, bits) per ILP variable
    layer_of: np.ndarray  # index into layers per variable
    omega: np.ndarray
    size: np.ndarray  # bytes per variable
    cycles: np.ndarray
    energy: np.ndarray  # pJ
    ebops: np.ndarray
    base: tuple[float, float, float, float]  # size, cycles, energy, EBOPs of the fixed layers


def _tables(cost: DSPPackingModel, omega: Omega, fixed: Mapping[str, int] | None) -> _Tables:
    layers = tuple(n for n in cost.layer_names if n in omega)
    unknown = sorted(set(omega) - set(cost.layer_names))
    if unknown:
        raise ValueError(f"omega names layers the cost model does not have: {unknown}.")
    index = {n: i for i, n in enumerate(cost.layer_names)}
    searched = np.array([index[n] for n in layers])
    mask = np.ones(cost.num_layers, dtype=bool)
    mask[searched] = False
    fixed_bits = list(_full_bits(cost, {n: 16 for n in layers}, fixed).values())
    base = cost.evaluate(fixed_bits).per_layer
    base_terms = (
        float(np.sum(base["weights"][mask] * base["bits"][mask]) / 8.0),
        float(np.sum(base["cycles"][mask])),
        float(np.sum(base["energy_uj"][mask]) * 1e6),
        float(np.sum(base["ebops"][mask])),
    )
    columns: list[tuple[str, int]] = []
    layer_of, om, size, cycles, energy, ebops = [], [], [], [], [], []
    per_bit_rows: dict[int, dict[str, np.ndarray]] = {}
    for i, layer in enumerate(layers):
        for b in sorted(omega[layer], reverse=True):
            if b not in per_bit_rows:
                per_bit_rows[b] = cost.evaluate([b] * cost.num_layers).per_layer
            row = per_bit_rows[b]
            j = index[layer]
            columns.append((layer, int(b)))
            layer_of.append(i)
            om.append(float(omega[layer][b]))
            size.append(float(row["weights"][j]) * b / 8.0)
            cycles.append(float(row["cycles"][j]))
            energy.append(float(row["energy_uj"][j]) * 1e6)
            ebops.append(float(row["ebops"][j]))
    return _Tables(
        layers,
        columns,
        np.array(layer_of),
        np.array(om),
        np.array(size),
        np.array(cycles),
        np.array(energy),
        np.array(ebops),
        base_terms,
    )


def _linear_limits(
    cost: DSPPackingModel, limits: HardwareLimits, t: _Tables
) -> list[tuple[np.ndarray, float]]:
    """``(coefficients, bound)`` of each set limit: ``coefficients @ x <= bound``."""
    out = []
    if limits.size_mb is not None:
        out.append((t.size, limits.size_mb * 1e6 - t.base[0]))
    latency_s = [
        limits.latency_ms / 1e3 if limits.latency_ms is not None else math.inf,
        1.0 / limits.throughput_fps if limits.throughput_fps is not None else math.inf,
    ]
    if min(latency_s) < math.inf:
        out.append((t.cycles, math.floor(min(latency_s) * cost.clock_hz + 1e-9) - t.base[1]))
    if limits.energy_mj is not None:
        out.append((t.energy, limits.energy_mj * 1e9 - t.base[2]))
    if limits.ebops is not None:
        out.append((t.ebops, limits.ebops - t.base[3]))
    return out


def _full_bits(
    cost: DSPPackingModel, searched: Mapping[str, int], fixed: Mapping[str, int] | None
) -> dict[str, int]:
    fixed = fixed or {}
    return {n: int(searched.get(n, fixed.get(n, 16))) for n in cost.layer_names}


def _meets(limits: HardwareLimits, report: CostReport) -> bool:
    return all(v <= 1e-12 for v in limits.violations(report).values())


def _excess(limits: HardwareLimits, report: CostReport) -> float:
    return sum(max(0.0, v) for v in limits.violations(report).values() if v > 1e-12)


def _allocation(
    method: str,
    cost: DSPPackingModel,
    limits: HardwareLimits,
    omega: Omega,
    searched_bits: Mapping[str, int],
    fixed: Mapping[str, int] | None,
) -> Allocation:
    bits = _full_bits(cost, searched_bits, fixed)
    report = cost.evaluate(list(bits.values()))
    assert _meets(limits, report), (method, bits, limits.violations(report))
    total = float(sum(omega[n][searched_bits[n]] for n in omega))
    return Allocation(method, bits, dict.fromkeys(cost.layer_names, 1.0), report, total)


def _limit_text(limits: HardwareLimits) -> str:
    parts = {k: v for k, v in vars(limits).items() if v is not None}
    return ", ".join(f"{k} {v:g}" for k, v in parts.items()) or "(none)"


def _infeasible(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    omega: Omega,
    fixed: Mapping[str, int] | None,
    what: str,
) -> str:
    cheapest = {layer: min(per_bit) for layer, per_bit in omega.items()}
    report = cost.evaluate(list(_full_bits(cost, cheapest, fixed).values()))
    reached = ", ".join(
        f"{k} {getattr(report, k):.6g}" for k, v in limits.violations(report).items() if v > 0
    )
    return (
        f"The {what} found no bit allocation that meets the limits {_limit_text(limits)}: even "
        f"the fewest bits of every searched layer ({sorted(set(cheapest.values()))}) give "
        f"{reached}. Relax the limits or allow fewer bits."
    )
