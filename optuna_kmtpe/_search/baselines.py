"""The baselines of a :class:`~optuna_kmtpe.MixedPrecisionSearch`: the allocation an
engineer would get without a search, under the same limits and cost model.

* ``uniform``: one bit-width (and one width multiplier, where widths are searched) for
  every searched layer. The undominated feasible ones
  (:func:`~optuna_kmtpe._compress.allocate.uniform_candidates`; 3 in the measured runs) are
  each trained like a trial (``epochs`` epochs) and the best on validation is the answer.
* ``ilp``: HAWQ-V3's integer linear program over the Hessian traces the search already has
  (:func:`~optuna_kmtpe._compress.allocate.ilp_allocation`), bits only, widths 1.
* ``greedy``: the same sensitivities, lowered greedily
  (:func:`~optuna_kmtpe._compress.allocate.greedy_allocation`).
* ``learned``: bit-widths learned by gradient in one quantisation-aware training run (the
  search's ``train_fn``, ``epochs`` epochs, default :data:`LEARNED_EPOCHS_PER_EPOCH` times the
  search's), under a size / latency / energy penalty tuned by dual ascent, then projected
  onto the allowed bits (:mod:`optuna_kmtpe._compress.learned`); bits only, widths 1.

The ILP, the greedy and ``learned`` choose from all the search's bit-widths ``B`` (not the
Hessian-pruned subsets: they do their own sensitivity weighing), except where
``layer_choices`` fixes or restricts a layer's bits. The ILP and the greedy train nothing
(``epochs_spent`` 0).
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import time
from typing import Any
from typing import Protocol
from typing import TYPE_CHECKING

from optuna_kmtpe._compress.allocate import Allocation
from optuna_kmtpe._compress.allocate import greedy_allocation
from optuna_kmtpe._compress.allocate import ilp_allocation
from optuna_kmtpe._compress.learned import learn_bits
from optuna_kmtpe._compress.search_space import Configuration
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._search.allocations import feasible_uniform
from optuna_kmtpe._search.allocations import layer_omega
from optuna_kmtpe._search.allocations import undominated


if TYPE_CHECKING:
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits
    from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
    from optuna_kmtpe._search.choices import LayerChoice
    from optuna_kmtpe._search.objective import TrialObjective


__all__ = ["BASELINES", "BaselineResult", "SearchLike", "run_baseline"]

BASELINES = ("uniform", "ilp", "greedy", "learned")
#: The ``learned`` baseline trains this many times the search's ``epochs`` by default (the
#: uniform baseline's budget with its usual three candidates).
LEARNED_EPOCHS_PER_EPOCH = 3
_FLOAT_BITS = 16
_logger = get_logger(__name__)


class SearchLike(Protocol):
    """What a baseline reads of a :class:`~optuna_kmtpe.MixedPrecisionSearch` (which has
    all of it); a protocol, so that this module does not import the search API."""

    @property
    def layers(self) -> tuple[str, ...]: ...

    @property
    def space(self) -> MixedPrecisionSpace: ...

    @property
    def cost_model(self) -> DSPPackingModel: ...

    @property
    def limits(self) -> HardwareLimits: ...

    @property
    def layer_choices(self) -> dict[str, LayerChoice]: ...

    @property
    def bit_choices(self) -> tuple[int, ...]: ...

    def objective(self, *, budget: int | None = None) -> TrialObjective: ...


@dataclass(frozen=True)
class BaselineResult:
    """A baseline's configuration (:meth:`MixedPrecisionSearch.baseline`).

    Attributes:
        method: ``"uniform"``, ``"ilp"``, ``"greedy"`` or ``"learned"``.
        bits: Layer -> bit-width (``None``: kept in float), every quantisable layer.
        widths: Layer -> width multiplier in force.
        params: The configuration as trial parameters (``search.build(result.params)``
            builds it; ``study.enqueue_trial`` takes them when its bits are in the space).
        size_mb, speedup, latency_ms, energy_mj: Its cost on the cost model.
        omega: Sum of HAWQ's sensitivities of the searched layers (ILP / greedy; else nan).
        val_accuracy: Validation score after ``epochs`` epochs (uniform only; else None).
        epochs_spent: Training epochs spent choosing it.
        seconds: Wall time spent choosing it.
        candidates: The uniform candidates tried: bits, width, size_mb, val_accuracy.
        learned: ``learned`` only: the continuous and the rounded bits per layer, the final
            penalty weights and relative surrogate costs, epochs and steps
            (:meth:`~optuna_kmtpe._compress.learned.LearnedBits.to_dict`).
    """

    method: str
    bits: dict[str, int | None]
    widths: dict[str, float]
    params: dict[str, Any]
    size_mb: float
    speedup: float
    latency_ms: float
    energy_mj: float
    omega: float
    val_accuracy: float | None
    epochs_spent: int
    seconds: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    learned: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def run_baseline(search: SearchLike, method: str, *, epochs: int | None = None) -> BaselineResult:
    """The ``method`` baseline of ``search`` (see the module docstring).

    Args:
        search: The search whose limits, cost model, bits and training it uses.
        method: One of :data:`BASELINES`.
        epochs: ``learned`` only: training epochs of the bit learning.

    Raises:
        ValueError: Unknown method, ``epochs`` for another method, or no configuration of
            that kind meets the limits.
    """
    if method not in BASELINES:
        raise ValueError(f"Unknown baseline {method!r}; choose from {', '.join(BASELINES)}.")
    if epochs is not None and method != "learned":
        raise ValueError(f"`epochs` applies to the learned baseline only, not to {method!r}.")
    t0 = time.perf_counter()
    space = search.space
    fixed = {n: _FLOAT_BITS for n in search.layers if n not in space.layers}
    if method == "uniform":
        return _uniform(search, fixed, t0)
    if method == "learned":
        return _learned(search, fixed, t0, epochs)
    omega = _omega(search)
    allocate = ilp_allocation if method == "ilp" else greedy_allocation
    found = allocate(search.cost_model, search.limits, omega, fixed)
    return _result(search, found, None, 0, time.perf_counter() - t0)


def candidate_bits(search: SearchLike) -> dict[str, tuple[int, ...]]:
    """Per searched layer, all of ``B``, unless ``layer_choices`` fixes or restricts the
    layer's bits (then the space's)."""
    out = {}
    for layer in search.space.layers:
        choice = search.layer_choices.get(layer)
        restricted = choice is not None and choice.bits is not None
        out[layer] = tuple(search.space.bits[layer] if restricted else search.bit_choices)
    return out


def _omega(search: SearchLike) -> dict[str, dict[int, float]]:
    space = search.space
    missing = [n for n in space.layers if n not in space.normalized_traces]
    if missing:
        raise ValueError(
            f"The ILP and greedy baselines need the Hessian traces of every searched layer; "
            f"the space has none for {missing} (a space built by hand). Build the search "
            "without `space=` so that it estimates them."
        )
    model = search.objective().builder.base
    return layer_omega(model, space.normalized_traces, candidate_bits(search))


def _uniform(search: SearchLike, fixed: dict[str, int], t0: float) -> BaselineResult:
    space = search.space
    bits = candidate_bits(search)
    if all(len(b) == 1 for b in bits.values()):
        raise ValueError("Every searched layer has fixed bits; there is nothing to allocate.")
    options = undominated(
        feasible_uniform(search.cost_model, search.limits, bits, space.widths, fixed),
        list(space.widths),
    )
    if not options:
        search.limits.check_attainable(search.cost_model, search.bit_choices)  # the reason
        raise ValueError(
            f"No uniform configuration (bits {sorted(search.bit_choices)}) meets the limits; "
            "relax them."
        )
    job = search.objective()
    scored: list[tuple[float, Allocation]] = []
    tried = []
    for option in options:
        layer_bits = _bits_with_float(search, option)
        widths = [option.widths[n] for n in search.layers]
        net = job.builder.build(layer_bits, widths if job.builder.plan is not None else None)
        job.train_fn(net, epochs=job.epochs, seed=job.seed)
        score = float(job.eval_fn(net))
        scored.append((score, option))
        tried.append(
            {
                "bits": sorted({b for b in layer_bits.values() if b is not None}),
                "width": max((option.widths[n] for n in space.widths), default=1.0),
                "size_mb": option.report.size_mb,
                "val_accuracy": score,
            }
        )
        _logger.info(f"uniform candidate {tried[-1]}")
    best_score, best = max(scored, key=lambda s: s[0])  # first (most bits) on ties
    return _result(
        search,
        best,
        best_score,
        job.epochs * len(options),
        time.perf_counter() - t0,
        tried,
    )


def _learned(
    search: SearchLike, fixed: dict[str, int], t0: float, epochs: int | None
) -> BaselineResult:
    job = search.objective()
    n_epochs = max(1, LEARNED_EPOCHS_PER_EPOCH * job.epochs) if epochs is None else epochs
    found = learn_bits(
        job.builder.base,
        job.train_fn,
        search.cost_model,
        search.limits,
        candidate_bits(search),
        fixed,
        epochs=n_epochs,
        seed=job.seed,
    )
    _logger.info(f"learned bits {found.to_dict()}")
    return _result(
        search,
        found.allocation,
        None,
        n_epochs,
        time.perf_counter() - t0,
        learned=found.to_dict(),
    )


def _bits_with_float(search: SearchLike, a: Allocation) -> dict[str, int | None]:
    return {n: (a.bits[n] if n in search.space.layers else None) for n in search.layers}


def _result(
    search: SearchLike,
    a: Allocation,
    val: float | None,
    epochs: int,
    seconds: float,
    candidates: list[dict[str, Any]] | None = None,
    learned: dict[str, Any] | None = None,
) -> BaselineResult:
    bits = _bits_with_float(search, a)
    space = search.space
    params = space.params(Configuration({n: a.bits[n] for n in space.layers}, a.widths))
    job = search.objective()
    effective = job.effective_widths([a.widths[n] for n in search.layers])
    r = a.report
    return BaselineResult(
        method=a.method,
        bits=bits,
        widths=dict(zip(search.layers, effective)),
        params=params,
        size_mb=r.size_mb,
        speedup=r.speedup,
        latency_ms=r.latency_ms,
        energy_mj=r.energy_mj,
        omega=a.omega,
        val_accuracy=val,
        epochs_spent=epochs,
        seconds=seconds,
        candidates=list(candidates or []),
        learned=dict(learned or {}),
    )
