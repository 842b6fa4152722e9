"""The allocations an engineer would make without a search, from the cost model, the limits,
the candidate bits and widths of each layer and the HAWQ sensitivities.

Shared by the search space rule (:func:`optuna_kmtpe._search.space.widen_space`), the warm
start of :meth:`~optuna_kmtpe.MixedPrecisionSearch.optimize` and the baselines
(:mod:`optuna_kmtpe._search.baselines`). It needs no search object, so it can run before the
search space exists, and it imports neither the search API nor the baselines.

Example:
    >>> from torch import nn
    >>> from optuna_kmtpe._compress.cost import DSPPackingModel
    >>> from optuna_kmtpe._compress.limits import HardwareLimits
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(288, 10))
    >>> cost = DSPPackingModel(net, (1, 8, 8))
    >>> limits = HardwareLimits(size_mb=cost.evaluate(4).size_mb)
    >>> bits = {"0": (8, 6, 4, 3, 2), "2": (8, 6, 4, 3, 2)}
    >>> [sorted(set(a.bits.values())) for a in feasible_uniform(cost, limits, bits)]
    [[4], [3], [2]]
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING

from optuna_kmtpe._compress.allocate import Allocation
from optuna_kmtpe._compress.allocate import greedy_allocation
from optuna_kmtpe._compress.allocate import ilp_allocation
from optuna_kmtpe._compress.allocate import perturbations
from optuna_kmtpe._compress.allocate import sensitivities
from optuna_kmtpe._compress.allocate import uniform_candidates
from optuna_kmtpe._logging import get_logger


if TYPE_CHECKING:
    from torch import nn

    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits


__all__ = [
    "feasible_uniform",
    "layer_omega",
    "reference_allocations",
    "undominated",
]

_logger = get_logger(__name__)


def layer_omega(
    model: nn.Module,
    normalized_traces: Mapping[str, float],
    bits: Mapping[str, Sequence[int]],
) -> dict[str, dict[int, float]]:
    """HAWQ-V2's sensitivity ``omega[l][b]`` of each layer of ``bits`` at each of its
    bit-widths (:func:`~optuna_kmtpe._compress.allocate.sensitivities`).

    A layer without a trace (a space built by hand) gets trace 1: its weight perturbation
    alone ranks its bit-widths.
    """
    pert: dict[str, dict[int, float]] = {}
    for name, layer_bits in bits.items():
        pert.update(perturbations(model, [name], layer_bits))
    traces = {n: float(normalized_traces.get(n, 1.0)) for n in bits}
    return sensitivities(traces, pert)


def feasible_uniform(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    bits: Mapping[str, Sequence[int]],
    widths: Mapping[str, Sequence[float]] | None = None,
    fixed: Mapping[str, int] | None = None,
) -> list[Allocation]:
    """Every bit-width ``b`` at which a uniform configuration meets the limits, with the
    widest shared width multiplier that makes it feasible; most bits first.

    Layers of ``bits`` with one candidate keep it; the others (the free layers) all take
    ``b`` from the bit-widths every free layer allows. Width multipliers come from those
    every layer of ``widths`` allows (1 without ``widths``). Layers outside ``bits`` keep
    ``fixed`` bits (default 16, float).
    """
    widths = widths or {}
    free = [n for n, b in bits.items() if len(b) > 1]
    if not free:
        return []
    held = {**(fixed or {}), **{n: int(b[0]) for n, b in bits.items() if len(b) == 1}}
    shared_bits = set.intersection(*(set(bits[n]) for n in free))
    per_layer = [set(w) for w in widths.values()]
    shared_widths = sorted(set.intersection(*per_layer)) if per_layer else [1.0]
    found = []
    for b in sorted(shared_bits, reverse=True):
        try:
            found += uniform_candidates(cost, limits, free, [b], shared_widths, list(widths), held)
        except ValueError:  # no width makes b bits feasible
            continue
    return found


def undominated(uniform: Sequence[Allocation], width_layers: Sequence[str]) -> list[Allocation]:
    """The uniform allocations of :func:`feasible_uniform` (most bits first) that no other
    one dominates (more bits and at least as wide in ``width_layers``), in order: the
    candidates of the ``uniform`` baseline."""

    def width(a: Allocation) -> float:
        return max((a.widths[n] for n in width_layers), default=1.0)

    return [a for i, a in enumerate(uniform) if not any(width(o) >= width(a) for o in uniform[:i])]


def reference_allocations(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    bits: Mapping[str, Sequence[int]],
    widths: Mapping[str, Sequence[float]] | None = None,
    fixed: Mapping[str, int] | None = None,
    omega: Mapping[str, Mapping[int, float]] | None = None,
) -> dict[str, list[Allocation]]:
    """The feasible uniform configurations (all of them, most bits first) and, with
    ``omega``, the ILP's and the greedy's allocation, by method.

    A method that finds nothing within the limits is left out (logged), so the result may
    be empty for a limit that only mixed bit-widths meet.
    """
    found = {"uniform": feasible_uniform(cost, limits, bits, widths, fixed)}
    if omega is not None:
        free = {n: per_bit for n, per_bit in omega.items() if n in bits}
        for method, allocate in (("ilp", ilp_allocation), ("greedy", greedy_allocation)):
            try:
                found[method] = [allocate(cost, limits, free, fixed)]
            except ValueError as e:
                _logger.info(f"{method} allocation: none within the limits ({e})")
    return found
