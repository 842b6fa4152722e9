"""The search space of a model: Hessian traces of its quantisable layers, clustered into
per-layer bit-width candidates (the first step of Algorithm 1), and widened by the
allocations a user would try by hand (:func:`widen_space`).

Shared by :class:`~optuna_kmtpe.MixedPrecisionSearch` and ``kmtpe sensitivity``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
import time
from typing import Any
from typing import Literal
import warnings

from torch import nn

from optuna_kmtpe._compress.allocate import Allocation
from optuna_kmtpe._compress.loops import LossFn
from optuna_kmtpe._compress.search_space import DEFAULT_BITS
from optuna_kmtpe._compress.search_space import DEFAULT_WIDTHS
from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
from optuna_kmtpe._compress.search_space import prune_search_space
from optuna_kmtpe._compress.sensitivity import hessian_traces
from optuna_kmtpe._compress.sensitivity import TraceEstimate
from optuna_kmtpe._logging import get_logger


__all__ = ["SpaceEstimate", "estimate_space", "widen_space"]

_logger = get_logger(__name__)


@dataclass(frozen=True)
class SpaceEstimate:
    """Traces of every quantisable layer, the pruned space, and the time the traces took."""

    traces: dict[str, TraceEstimate]
    space: MixedPrecisionSpace
    seconds: float


def estimate_space(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    *,
    layers: Sequence[str] | None = None,
    width_layers: Sequence[str] = (),
    n_clusters: int = 4,
    scale: Literal["log", "linear"] = "log",
    bit_choices: Sequence[int] = DEFAULT_BITS,
    width_choices: Sequence[float] = DEFAULT_WIDTHS,
    max_samples: int = 50,
    rtol: float = 0.1,
    min_samples: int = 5,
    seed: int | None = 0,
    progress: bool = False,
) -> SpaceEstimate:
    """Estimate the traces on ``batches`` and prune the space of ``layers`` (default: all).

    Clustering notes (fewer distinct traces than clusters, non-positive traces) are logged.
    """
    t0 = time.perf_counter()
    traces = hessian_traces(
        model,
        loss_fn,
        batches,
        max_samples=max_samples,
        rtol=rtol,
        min_samples=min_samples,
        seed=seed,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    searched = traces if layers is None else {n: traces[n] for n in layers}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        space = prune_search_space(
            searched,
            n_clusters=n_clusters,
            scale=scale,
            bit_choices=bit_choices,
            width_choices=width_choices,
            width_layers=list(width_layers),
        )
    for w in caught:
        _logger.info(f"note: {w.message}")
    return SpaceEstimate(traces=traces, space=space, seconds=seconds)


def widen_space(
    space: MixedPrecisionSpace, allocations: Mapping[str, Sequence[Allocation]]
) -> MixedPrecisionSpace:
    """``space`` with, for every layer, the bit-widths (and, where widths are searched, the
    width multipliers) of ``allocations`` added: rule ``"baselines"``.

    The paper's cluster subsets are fixed whatever the limit and can leave out what a user
    tries by hand (measured on ``mnist_cnn`` at 2.5 bits per weight: the largest layer got
    {3, 2}, so the uniform 4-bit configuration was outside the space); adding the feasible
    uniform, ILP and greedy allocations puts them back.

    Example:
        >>> from optuna_kmtpe._compress.search_space import prune_search_space
        >>> from optuna_kmtpe._compress.allocate import Allocation
        >>> space = prune_search_space({"a": 1.0, "b": 1e-3}, n_clusters=2, width_layers=[])
        >>> space.bits
        {'a': (8, 6), 'b': (3, 2)}
        >>> four = Allocation("uniform", {"a": 4, "b": 4}, {"a": 1.0, "b": 1.0}, None)
        >>> wide = widen_space(space, {"uniform": [four]})
        >>> wide.bits, wide.rule
        ({'a': (8, 6, 4), 'b': (4, 3, 2)}, 'baselines')
    """
    bits = {n: set(b) for n, b in space.bits.items()}
    widths = {n: set(w) for n, w in space.widths.items()}
    for found in allocations.values():
        for a in found:
            for n in space.layers:
                bits[n].add(int(a.bits[n]))
            for n in widths:
                widths[n].add(float(a.widths[n]))
    return replace(
        space,
        bits={n: tuple(sorted(b, reverse=True)) for n, b in bits.items()},
        widths={n: tuple(sorted(w)) for n, w in widths.items()},
        bit_choices=tuple(sorted(set(space.bit_choices).union(*bits.values()), reverse=True)),
        rule="baselines",
    )
