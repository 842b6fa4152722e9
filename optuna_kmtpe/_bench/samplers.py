"""A sampler wrapper that times the sampler's own work, per trial."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import time
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial
from optuna.trial import TrialState


class TimedSampler(BaseSampler):
    """Delegates to ``sampler`` and adds up the seconds it spends, per trial number."""

    def __init__(self, sampler: BaseSampler) -> None:
        self._sampler = sampler
        self.seconds: dict[int, float] = {}

    def _timed(self, trial: FrozenTrial, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[trial.number] = self.seconds.get(trial.number, 0.0) + elapsed

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._timed(trial, lambda: self._sampler.infer_relative_search_space(study, trial))

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._timed(
            trial, lambda: self._sampler.sample_relative(study, trial, search_space)
        )

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._timed(
            trial,
            lambda: self._sampler.sample_independent(study, trial, param_name, param_distribution),
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._timed(trial, lambda: self._sampler.before_trial(study, trial))

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._timed(trial, lambda: self._sampler.after_trial(study, trial, state, values))

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()
