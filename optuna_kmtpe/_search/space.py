"""The search space of a model: Hessian traces of its quantisable layers, clustered into
per-layer bit-width candidates (the first step of Algorithm 1).

Shared by :class:`~optuna_kmtpe.MixedPrecisionSearch` and ``kmtpe sensitivity``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
import time
from typing import Any
from typing import Literal
import warnings

from torch import nn

from optuna_kmtpe._compress.loops import LossFn
from optuna_kmtpe._compress.search_space import DEFAULT_BITS
from optuna_kmtpe._compress.search_space import DEFAULT_WIDTHS
from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
from optuna_kmtpe._compress.search_space import prune_search_space
from optuna_kmtpe._compress.sensitivity import hessian_traces
from optuna_kmtpe._compress.sensitivity import TraceEstimate
from optuna_kmtpe._logging import get_logger


__all__ = ["SpaceEstimate", "estimate_space"]

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
