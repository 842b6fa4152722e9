"""Repair of a proposal that breaks a limit: the nearest feasible configuration of the space.

The cost model prices a configuration before any training, so a trial whose proposal breaks
a limit need not be wasted: :func:`repair` lowers it, one step at a time, until the limits
hold, by the greedy allocation's rule (:func:`~optuna_kmtpe._compress.allocate.greedy_allocation`):
each step lowers the one layer whose next lower bit-width *in the space* adds the least
HAWQ sensitivity ``omega`` per unit of over-limit cost it removes (a step that removes
nothing, e.g. 4 -> 3 bits under a latency limit where both pack alike, is skipped for the
next lower bit-width). There is no sensitivity for a width multiplier, so widths are lowered
only when no bit step removes anything: the width step that removes the most over-limit cost,
one space step at a time. Every metric of the cost model is monotone in bits and widths, and
the search checks that the cheapest configuration of the space meets the limits, so the
repair always ends feasible.

Example:
    >>> from torch import nn
    >>> from optuna_kmtpe._compress.cost import DSPPackingModel
    >>> from optuna_kmtpe._compress.limits import HardwareLimits
    >>> from optuna_kmtpe._compress.search_space import Configuration, MixedPrecisionSpace
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(288, 10))
    >>> cost = DSPPackingModel(net, (1, 8, 8))
    >>> space = MixedPrecisionSpace(("0", "2"), {"0": (8, 4, 2), "2": (8, 4, 2)}, {})
    >>> limits = HardwareLimits(size_mb=cost.evaluate([8, 4]).size_mb)
    >>> omega = {"0": {8: 0.0, 4: 5.0, 2: 50.0}, "2": {8: 0.0, 4: 1.0, 2: 9.0}}
    >>> proposal = Configuration({"0": 8, "2": 8}, {"0": 1.0, "2": 1.0})
    >>> repair(proposal, cost=cost, limits=limits, space=space, omega=omega).bits
    {'0': 8, '2': 4}
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from optuna_kmtpe._compress.search_space import Configuration


if TYPE_CHECKING:
    from optuna_kmtpe._compress.cost import CostReport
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits
    from optuna_kmtpe._compress.search_space import MixedPrecisionSpace


__all__ = ["INFEASIBLE_MODES", "repair"]

#: What a trial does with a proposal that breaks a limit: ``"repair"`` trains the repaired
#: configuration; ``"penalty"`` scores it with the Lagrangian penalty, untrained.
INFEASIBLE_MODES = ("repair", "penalty")
_FLOAT_COST_BITS = 16


def repair(
    config: Configuration,
    *,
    cost: DSPPackingModel,
    limits: HardwareLimits,
    space: MixedPrecisionSpace,
    omega: Mapping[str, Mapping[int, float]],
    layers: Sequence[str] | None = None,
) -> Configuration:
    """The configuration ``config`` is lowered to (see the module docstring); ``config``
    itself when it meets the limits.

    Args:
        config: A configuration of ``space``.
        cost: The cost model; its layers outside ``space`` are priced at 16 bits.
        limits: The limits to meet.
        space: The space whose bit-widths and widths a step may take.
        omega: Layer -> bit-width -> HAWQ sensitivity, every bit-width of ``space``.
        layers: The cost model's layers in order (default ``cost.layer_names``).
    """
    names = tuple(layers or cost.layer_names)

    def excess(c: Configuration) -> float:
        return _excess(limits, _evaluate(cost, names, c))

    current = config
    left = excess(current)
    while left > 0:
        step = _bit_step(current, left, space, omega, excess) or _width_step(
            current, left, space, excess
        )
        if step is None:  # cannot happen for an attainable space; the cheapest is feasible
            return _cheapest(space, config)
        current, left = step
    return current


def _bit_step(
    c: Configuration,
    left: float,
    space: MixedPrecisionSpace,
    omega: Mapping[str, Mapping[int, float]],
    excess: Callable[[Configuration], float],
) -> tuple[Configuration, float] | None:
    best: tuple[float, Configuration, float] | None = None
    for layer in space.layers:
        b = c.bits[layer]
        for lower in (x for x in space.bits[layer] if x < b):  # descending
            trial = replace(c, bits={**c.bits, layer: lower})
            after = excess(trial)
            saved = left - after
            if saved <= 0:
                continue  # a plateau: try the next lower bit-width
            ratio = (omega[layer][lower] - omega[layer][b]) / saved
            if best is None or ratio < best[0]:
                best = (ratio, trial, after)
            break
    return None if best is None else (best[1], best[2])


def _width_step(
    c: Configuration,
    left: float,
    space: MixedPrecisionSpace,
    excess: Callable[[Configuration], float],
) -> tuple[Configuration, float] | None:
    best: tuple[float, Configuration, float] | None = None
    for layer, allowed in space.widths.items():
        w = c.widths[layer]
        narrower = sorted((x for x in allowed if x < w), reverse=True)
        for lower in narrower:
            trial = replace(c, widths={**c.widths, layer: lower})
            after = excess(trial)
            if left - after <= 0:
                continue
            if best is None or left - after > best[0]:
                best = (left - after, trial, after)
            break
    return None if best is None else (best[1], best[2])


def _cheapest(space: MixedPrecisionSpace, config: Configuration) -> Configuration:
    return Configuration(
        bits={n: min(space.bits[n]) for n in config.bits},
        widths={
            n: min(space.widths[n]) if n in space.widths else w for n, w in config.widths.items()
        },
    )


def _evaluate(cost: DSPPackingModel, layers: Sequence[str], c: Configuration) -> CostReport:
    bits = [c.bits.get(n, _FLOAT_COST_BITS) for n in layers]
    widths = [c.widths.get(n, 1.0) for n in layers]
    return cost.evaluate(bits, widths)


def _excess(limits: HardwareLimits, report: CostReport) -> float:
    return sum(max(0.0, v) for v in limits.violations(report).values() if v > 0)
