"""CatCMAwM (the ``cmaes`` package's CMA-ES for mixed continuous / integer / categorical
variables, Hamano et al. 2025) as an Optuna sampler, for ``kmtpe bench --samplers catcmawm``.

A small adapter, single-process and in memory: the first trial is random (it defines the
search space), then every trial asks the optimizer for one solution and the finished trials
are told back a generation (``population_size`` trials) at a time. Floats are continuous
(log-scaled ones in log space), integers with 3 or more values are CatCMAwM's integer
variables, and categoricals (and two-valued integers, as the ``cmaes`` docs recommend) its
categorical ones. A failed or pruned trial's solution is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


def _cmaes() -> Any:
    try:
        import cmaes
    except ImportError as e:
        raise ImportError(
            "The `catcmawm` sampler needs the `cmaes` package (0.12 or later). Install it with "
            "`pip install cmaes` (or the `peers` extra: `pip install optuna-kmtpe[peers]`)."
        ) from e
    return cmaes


class CatCMAwMSampler(BaseSampler):
    """CatCMAwM through Optuna's relative-sampling interface.

    Example:
        >>> study = optuna.create_study(sampler=CatCMAwMSampler(seed=0))
        >>> study.optimize(
        ...     lambda t: t.suggest_float("x", -1, 1) ** 2 + t.suggest_int("n", 0, 4),
        ...     n_trials=12,
        ... )
        >>> study.best_value < 2.1  # the integer part at its mean 2, x near 0
        True
    """

    def __init__(self, seed: int | None = None, population_size: int | None = None) -> None:
        self._seed = seed
        self._population_size = population_size
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._space: dict[str, BaseDistribution] | None = None
        self._optimizer: Any = None
        self._asked: dict[int, Any] = {}
        self._told: list[tuple[Any, float]] = []
        self._intersection = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._intersection.calculate(study)
        return {n: d for n, d in space.items() if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if self._space != search_space:  # a new (or the first) space: a fresh optimizer
            self._space = dict(search_space)
            self._optimizer = self._make_optimizer(self._space)
            self._asked, self._told = {}, []
        solution = self._optimizer.ask()
        self._asked[trial.number] = solution
        return self._params(solution)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        solution = self._asked.pop(trial.number, None)
        if solution is None or state != TrialState.COMPLETE or values is None:
            return
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        self._told.append((solution, sign * float(values[0])))
        if len(self._told) == self._optimizer.population_size:
            self._optimizer.tell(self._told)
            self._told = []

    def _kind(self, distribution: BaseDistribution) -> str:
        if isinstance(distribution, FloatDistribution) and distribution.step is None:
            return "x"
        if (
            isinstance(distribution, CategoricalDistribution)
            or len(self._values(distribution)) < 3
        ):
            return "c"
        return "z"

    @staticmethod
    def _values(distribution: BaseDistribution) -> list[Any]:
        if isinstance(distribution, CategoricalDistribution):
            return list(distribution.choices)
        assert isinstance(distribution, (IntDistribution, FloatDistribution))
        step = distribution.step or 1
        count = int(round((distribution.high - distribution.low) / step)) + 1
        return [distribution.low + i * step for i in range(count)]

    def _make_optimizer(self, space: dict[str, BaseDistribution]) -> Any:
        x_space, z_space, c_space = [], [], []
        for distribution in space.values():
            kind = self._kind(distribution)
            if kind == "x":
                assert isinstance(distribution, FloatDistribution)
                bounds = [distribution.low, distribution.high]
                x_space.append([math.log(b) for b in bounds] if distribution.log else bounds)
            elif kind == "z":
                z_space.append(self._values(distribution))
            else:
                c_space.append(len(self._values(distribution)))
        return _cmaes().CatCMAwM(
            x_space=x_space or None,
            z_space=z_space or None,
            c_space=c_space or None,
            population_size=self._population_size,
            seed=self._seed,
        )

    def _params(self, solution: Any) -> dict[str, Any]:
        assert self._space is not None
        params: dict[str, Any] = {}
        position = {"x": 0, "z": 0, "c": 0}
        for name, distribution in self._space.items():
            kind = self._kind(distribution)
            i = position[kind]
            position[kind] += 1
            if kind == "x":
                assert isinstance(distribution, FloatDistribution)
                value = float(solution.x[i])
                value = math.exp(value) if distribution.log else value
                params[name] = min(max(value, distribution.low), distribution.high)
            elif kind == "z":
                value = solution.z[i]
                params[name] = (
                    int(round(value)) if isinstance(distribution, IntDistribution) else value
                )
            else:
                params[name] = self._values(distribution)[int(np.argmax(solution.c[i]))]
        return params
