"""The hardware-aware objective (paper section III-C) in three forms.

    maximise accuracy  s.t.  size <= mu, latency <= tau, energy <= eps, throughput >= pi,
                             EBOPs <= beta

Any subset of the five limits may be set (:class:`HardwareLimits`). Violations are relative,
``metric / limit - 1`` for upper limits and ``1 - throughput / pi`` for the lower one, so
``> 0`` means infeasible in every form and units do not matter:

* :func:`lagrangian`: ``accuracy - multiplier * sum(max(0, violation))``, one scalar for any
  sampler (the paper's Lagrangian with large multipliers).
* :func:`set_constraints`: the same violations as Optuna constraints
  (``Trial.set_constraint``; feasible when every value is ``<= 0``).
* :func:`pareto_values` / :func:`pareto_directions`: accuracy against size, latency, energy or
  throughput for multi-objective studies.

Example:
    >>> import optuna
    >>> from torch import nn
    >>> from optuna_kmtpe import DSPPackingModel
    >>> net = nn.Sequential(nn.Conv2d(1, 16, 3), nn.Conv2d(16, 16, 3), nn.Flatten())
    >>> net.append(nn.Linear(256, 64)).append(nn.Linear(64, 10))  # doctest: +ELLIPSIS
    Sequential(...)
    >>> cost = DSPPackingModel(net, (1, 8, 8))
    >>> limits = HardwareLimits(size_mb=0.02)
    >>> def objective(trial: optuna.Trial) -> float:
    ...     bits = [trial.suggest_categorical(f"b{i}", [2, 4, 8]) for i in range(4)]
    ...     report = cost.evaluate(bits)
    ...     accuracy = 0.9  # train and score the model here
    ...     set_constraints(trial, report, limits)
    ...     return lagrangian(accuracy, report, limits)
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(objective, n_trials=3)
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING

import numpy as np


if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from optuna_kmtpe._compress.cost import CostReport
    from optuna_kmtpe._compress.cost import DSPPackingModel


#: The forms of the objective a search can optimise.
OBJECTIVES = ("lagrangian", "constraints", "pareto")

#: Metrics usable in :func:`pareto_values`, with their Optuna direction.
METRIC_DIRECTIONS = {
    "size_mb": "minimize",
    "latency_ms": "minimize",
    "energy_mj": "minimize",
    "throughput_fps": "maximize",
    "ebops": "minimize",
}


@dataclass(frozen=True)
class HardwareLimits:
    """Limits on a configuration's cost; ``None`` leaves a metric free.

    Args:
        size_mb: mu, the largest model size (MB, 10^6 bytes).
        latency_ms: tau, the largest latency.
        energy_mj: eps, the largest energy per input.
        throughput_fps: pi, the smallest throughput (inputs per second).
        ebops: beta, the most effective bit operations (HGQ's FPGA resource measure, see
            :attr:`~optuna_kmtpe._compress.cost.CostReport.ebops`).

    Example:
        >>> HardwareLimits(size_mb=0.5, ebops=2e6).ebops
        2000000.0
    """

    size_mb: float | None = None
    latency_ms: float | None = None
    energy_mj: float | None = None
    throughput_fps: float | None = None
    ebops: float | None = None

    def __post_init__(self) -> None:
        for name in METRIC_DIRECTIONS:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"Limit `{name}` must be a finite number > 0, got {value!r}.")

    def violations(self, report: CostReport) -> dict[str, float]:
        """Relative violation per set limit (``> 0``: infeasible, ``<= 0``: met).

        Example:
            >>> from torch import nn
            >>> from optuna_kmtpe import DSPPackingModel
            >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
            >>> report = DSPPackingModel(net, (1, 8, 8)).evaluate(16)
            >>> HardwareLimits(size_mb=report.size_mb / 2).violations(report)
            {'size_mb': 1.0}
        """
        found: dict[str, float] = {}
        for name in METRIC_DIRECTIONS:
            limit = getattr(self, name)
            if limit is None:
                continue
            value = float(getattr(report, name))
            if METRIC_DIRECTIONS[name] == "minimize":
                found[name] = value / limit - 1.0
            else:
                found[name] = 1.0 - value / limit
        return found

    def check_attainable(
        self,
        cost_model: DSPPackingModel,
        bit_choices: Sequence[int] | Sequence[Sequence[int]],
        width_choices: Sequence[float] | Sequence[Sequence[float]] = (1.0,),
    ) -> None:
        """Raise if no configuration of the search space can meet the limits.

        Every metric is monotone in each layer's bit-width and width (fewer bits and fewer
        channels never cost more), so the cheapest configuration uses the smallest bit-width
        and width of every layer; if it violates a limit, every configuration does.

        Args:
            cost_model: The model's :class:`~optuna_kmtpe._compress.cost.DSPPackingModel`.
            bit_choices: Candidate bit-widths, shared or one list per layer.
            width_choices: Candidate width multipliers, shared or one list per layer.

        Raises:
            ValueError: Names each limit that cannot be met and the best value reachable.
        """
        bits = _smallest(bit_choices, cost_model.num_layers, "bit_choices")
        widths = _smallest(width_choices, cost_model.num_layers, "width_choices")
        best = cost_model.evaluate(bits.astype(int), widths)
        bad = {k: v for k, v in self.violations(best).items() if v > 0}
        if bad:
            parts = [
                f"{k} limit {getattr(self, k):g} (best reachable: {getattr(best, k):.6g})"
                for k in bad
            ]
            raise ValueError(
                "No configuration in the search space meets "
                + "; ".join(parts)
                + f". The cheapest one uses bits {sorted(set(bits.astype(int).tolist()))} and "
                f"widths {sorted(set(widths.tolist()))}; relax the limit or widen the space."
            )


def _smallest(choices: object, n: int, what: str) -> np.ndarray:
    seq = list(choices)  # type: ignore[call-overload]
    if not seq:
        raise ValueError(f"`{what}` is empty.")
    if all(np.ndim(c) == 0 for c in seq):
        return np.full(n, min(float(c) for c in seq))
    if len(seq) != n:
        raise ValueError(f"`{what}` has {len(seq)} per-layer lists but the model has {n} layers.")
    return np.array([min(float(c) for c in layer) for layer in seq])


def lagrangian(
    accuracy: float, report: CostReport, limits: HardwareLimits, multiplier: float = 1000.0
) -> float:
    """``accuracy - multiplier * sum of positive relative violations`` (maximise it).

    With the default multiplier, exceeding a limit by 0.1% costs 1 accuracy unit, so any
    infeasible configuration scores below any feasible one when accuracy is in [0, 1] or %.
    """
    penalty = sum(max(0.0, v) for v in limits.violations(report).values())
    return float(accuracy) - multiplier * penalty


def set_constraints(
    trial: optuna.Trial, report: CostReport, limits: HardwareLimits
) -> dict[str, float]:
    """Record each limit's relative violation with ``trial.set_constraint`` and return them.

    Samplers that read ``trial.constraints`` (Optuna 5's TPE, NSGA-II, this package's
    k-means TPE) then treat ``> 0`` as infeasible.
    """
    found = limits.violations(report)
    for name, value in found.items():
        trial.set_constraint(name, value)
    return found


def pareto_directions(metrics: Sequence[str] = ("size_mb",)) -> list[str]:
    """Study directions for ``(accuracy, *metrics)``; pass to ``optuna.create_study``."""
    _check_metrics(metrics)
    return ["maximize"] + [METRIC_DIRECTIONS[m] for m in metrics]


def pareto_values(
    accuracy: float, report: CostReport, metrics: Sequence[str] = ("size_mb",)
) -> tuple[float, ...]:
    """Objective values ``(accuracy, *metrics)`` for a multi-objective study."""
    _check_metrics(metrics)
    return (float(accuracy), *(float(getattr(report, m)) for m in metrics))


def _check_metrics(metrics: Sequence[str]) -> None:
    unknown = [m for m in metrics if m not in METRIC_DIRECTIONS]
    if unknown or not metrics:
        raise ValueError(f"Unknown metrics {unknown}; choose from {list(METRIC_DIRECTIONS)}.")
