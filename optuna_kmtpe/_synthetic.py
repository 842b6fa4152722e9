"""Cheap objectives with flat, quantised landscapes, for comparing samplers.

They stand in for the expensive searches this package is for: they cost microseconds, so a
sampler comparison over many seeds runs in minutes, and they are deterministic given their
``problem_seed``, so every sampler faces the same problem. They are synthetic and say so
(``name`` starts with ``synthetic-``); they are not data.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np
import optuna


BITS = (2, 3, 4, 6, 8)
WIDTHS = (0.75, 0.875, 1.0, 1.125, 1.25)


@dataclass(frozen=True)
class MixedPrecisionProxy:
    """A mixed-precision + width search in miniature, with an accuracy-like flat objective.

    Each of ``n_layers`` layers picks a bit-width in :data:`BITS` and a width multiplier in
    :data:`WIDTHS`. The score is a validation "accuracy" that loses
    ``sensitivity * 4 ** -(bits - 2)`` per layer (quantisation noise power halves twice per bit),
    gains a little from wider layers, is rounded to ``resolution`` (as an accuracy measured on
    ``1 / resolution`` images is), and drops by a large penalty when the model size
    (sum of weights * width * bits) exceeds ``size_budget`` times the all-8-bit size. Layer
    sensitivities span three decades, as Hessian traces do. Higher is better.

    Example:
        >>> task = MixedPrecisionProxy()
        >>> study = optuna.create_study(direction="maximize")
        >>> study.optimize(task, n_trials=3)
    """

    n_layers: int = 16
    resolution: float = 0.005
    size_budget: float = 0.5
    problem_seed: int = 0
    name: str = "synthetic-mixed-precision"
    _sensitivity: np.ndarray = field(init=False, repr=False)
    _weights: np.ndarray = field(init=False, repr=False)
    _width_gain: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.RandomState(self.problem_seed)
        object.__setattr__(self, "_sensitivity", 10 ** rng.uniform(-3.0, 0.0, self.n_layers))
        object.__setattr__(self, "_weights", 10 ** rng.uniform(3.0, 5.0, self.n_layers))
        object.__setattr__(self, "_width_gain", rng.uniform(0.0, 0.02, self.n_layers))

    def score(self, bits: np.ndarray, widths: np.ndarray) -> float:
        """The objective for per-layer ``bits`` and ``widths`` arrays."""
        drop = np.sum(self._sensitivity * 4.0 ** -(bits - 2.0) / widths)
        gain = np.sum(self._width_gain * np.log(widths))
        accuracy = 0.9 * np.exp(-drop) + gain
        size = np.sum(self._weights * widths * bits)
        budget = self.size_budget * np.sum(self._weights * 8.0)
        penalty = 0.5 if size > budget else 0.0
        return float(np.round((accuracy - penalty) / self.resolution) * self.resolution)

    def __call__(self, trial: optuna.Trial) -> float:
        bits = [trial.suggest_categorical(f"bits_{i}", BITS) for i in range(self.n_layers)]
        widths = [trial.suggest_categorical(f"width_{i}", WIDTHS) for i in range(self.n_layers)]
        return self.score(np.array(bits, dtype=float), np.array(widths, dtype=float))


@dataclass(frozen=True)
class TerracedRosenbrock:
    """A 6-D Rosenbrock valley seen through a coarse floor: wide terraces, few distinct values.

    ``-floor(log1p(rosenbrock(x)) / step)`` on ``[-2, 2]^6`` with integer and float parameters;
    higher is better, 0 at the optimum ``x = 1``.
    """

    dims: int = 6
    step: float = 0.5
    name: str = "synthetic-terraced-rosenbrock"

    def __call__(self, trial: optuna.Trial) -> float:
        x = np.array(
            [
                trial.suggest_float(f"x{i}", -2.0, 2.0)
                if i % 2 == 0
                else trial.suggest_float(f"x{i}", -2.0, 2.0, step=0.25)
                for i in range(self.dims)
            ]
        )
        value = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        return -float(np.floor(np.log1p(value) / self.step))
