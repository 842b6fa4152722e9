"""hyperopt's TPE (the k-means TPE paper's comparator) as an Optuna sampler."""

from __future__ import annotations

import math
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_kmtpe import _optuna_compat


if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial


_SEED_MAX = 2**31 - 1


def _hyperopt() -> Any:
    try:
        import hyperopt
        import hyperopt.tpe
    except ImportError as e:
        raise ImportError(
            "The `hyperopt` sampler runs hyperopt's TPE from the `hyperopt` package. Install "
            "it with `pip install hyperopt` (or the `bench` extra: "
            "`pip install optuna-kmtpe[bench]`)."
        ) from e
    return hyperopt


class HyperoptSampler(BaseSampler):
    """Sampler that asks hyperopt's :func:`hyperopt.tpe.suggest` for every model-based trial.

    On each call the joint search space (Optuna's intersection of the finished trials' spaces)
    is translated into a hyperopt space, a :class:`hyperopt.Trials` is rebuilt from the
    study's COMPLETE trials, and hyperopt's TPE proposes one point, which is translated back
    into Optuna's values. Nothing is kept between calls apart from the search-space cache and
    the random state, as with Optuna's own samplers.

    Translation: a float is ``hp.uniform`` (``hp.loguniform`` with ``log``); a stepped float
    and a linear int are ``hp.quniform`` over the step index ``0 .. n - 1``; a log int is
    ``hp.qloguniform(log(low - 0.5), log(high + 0.5), 1)``; a categorical is ``hp.choice``
    over its indices. Returned values are clipped into the bounds and are Python scalars.
    Maximised studies hand hyperopt the negated values as its losses.

    Until ``n_startup_trials`` trials are COMPLETE, and for parameters outside the joint space,
    the sampler draws from :class:`~optuna.samplers.RandomSampler` with the same ``seed`` (not
    from hyperopt's random search), so its startup trials match those of Optuna's TPE.
    Single-objective only: a multi-objective study gets a ``ValueError`` once it has a joint
    space.

    - `Algorithms for Hyper-Parameter Optimization
      <https://proceedings.neurips.cc/paper/2011/hash/86e8f7ab32cfd12577bc2619bc635690-Abstract.html>`__
    - `Hyperopt: A Python Library for Optimizing the Hyperparameters of Machine Learning
      Algorithms <https://proceedings.scipy.org/articles/Majora-8b375195-003>`__

    Args:
        seed:
            Seed of the random state that seeds each hyperopt call and of the random sampler.
        n_startup_trials:
            Random trials before hyperopt's TPE takes over; also hyperopt's
            ``n_startup_jobs``.
        n_ei_candidates:
            Candidates hyperopt draws per proposal (its ``n_EI_candidates``).
    """

    def __init__(
        self, *, seed: int | None = None, n_startup_trials: int = 20, n_ei_candidates: int = 24
    ) -> None:
        if n_startup_trials < 0:
            raise ValueError(
                f"`n_startup_trials` must be non-negative, but got {n_startup_trials}."
            )
        if n_ei_candidates < 1:
            raise ValueError(f"`n_ei_candidates` must be positive, but got {n_ei_candidates}.")
        self._rng = _optuna_compat.LazyRandomState(seed)
        self._random_sampler = RandomSampler(seed=seed)
        self._n_startup_trials = n_startup_trials
        self._n_ei_candidates = n_ei_candidates
        self._search_space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._rng.rng.seed()
        self._random_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {
            name: dist
            for name, dist in self._search_space.calculate(study).items()
            if not dist.single()
        }

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._raise_error_if_multi_objective(study)
        if not search_space:
            return {}
        complete = _optuna_compat.get_trials(study, (TrialState.COMPLETE,), use_cache=True)
        if len(complete) < max(self._n_startup_trials, 1):
            return {}
        # Only trials that hold every parameter of the space, inside its current bounds.
        usable = [
            t
            for t in complete
            if all(_holds(dist, t.params.get(name)) for name, dist in search_space.items())
        ]
        if not usable:
            return {}
        seed = int(self._rng.rng.randint(_SEED_MAX))
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        return _suggest(
            search_space,
            [({n: t.params[n] for n in search_space}, sign * float(t.values[0])) for t in usable],
            seed=seed,
            n_startup_jobs=self._n_startup_trials,
            n_ei_candidates=self._n_ei_candidates,
        )

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._random_sampler.after_trial(study, trial, state, values)


def _holds(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    assert isinstance(dist, (IntDistribution, FloatDistribution))
    return value is not None and dist.low <= value <= dist.high


def _n_steps(dist: FloatDistribution | IntDistribution) -> int:
    assert dist.step is not None
    return int(round((dist.high - dist.low) / dist.step)) + 1


def _to_hyperopt_space(search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
    hp = _hyperopt().hp
    space: dict[str, Any] = {}
    for name, dist in search_space.items():
        if isinstance(dist, CategoricalDistribution):
            space[name] = hp.choice(name, list(range(len(dist.choices))))
        elif isinstance(dist, IntDistribution) and dist.log:
            space[name] = hp.qloguniform(
                name, math.log(dist.low - 0.5), math.log(dist.high + 0.5), 1
            )
        elif isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
            space[name] = hp.quniform(name, -0.5, _n_steps(dist) - 0.5, 1)
        elif isinstance(dist, FloatDistribution) and dist.log:
            space[name] = hp.loguniform(name, math.log(dist.low), math.log(dist.high))
        elif isinstance(dist, FloatDistribution):
            space[name] = hp.uniform(name, dist.low, dist.high)
        else:
            raise ValueError(f"The hyperopt sampler cannot translate {dist} (parameter {name}).")
    return space


def _to_hyperopt_value(dist: BaseDistribution, value: Any) -> float:
    if isinstance(dist, CategoricalDistribution):
        return float(dist.to_internal_repr(value))
    assert isinstance(dist, (IntDistribution, FloatDistribution))
    if isinstance(dist, IntDistribution) and dist.log:
        return float(value)
    if dist.step is not None:
        return float(round((value - dist.low) / dist.step))
    return float(value)


def _to_optuna_value(dist: BaseDistribution, value: float) -> Any:
    if isinstance(dist, CategoricalDistribution):
        index = int(np.clip(round(value), 0, len(dist.choices) - 1))
        return dist.to_external_repr(index)
    assert isinstance(dist, (IntDistribution, FloatDistribution))
    if isinstance(dist, IntDistribution) and dist.log:
        return int(np.clip(round(value), dist.low, dist.high))
    if dist.step is not None:
        index = int(np.clip(round(value), 0, _n_steps(dist) - 1))
        if isinstance(dist, IntDistribution):
            return int(dist.low + index * dist.step)
        return float(min(dist.low + index * dist.step, dist.high))
    return float(np.clip(value, dist.low, dist.high))


def _suggest(
    search_space: dict[str, BaseDistribution],
    observations: list[tuple[dict[str, Any], float]],
    *,
    seed: int,
    n_startup_jobs: int,
    n_ei_candidates: int,
) -> dict[str, Any]:
    """hyperopt's TPE proposal given (params, loss) observations, in Optuna's values."""
    hyperopt = _hyperopt()
    domain = hyperopt.base.Domain(lambda _: 0.0, _to_hyperopt_space(search_space))
    trials = hyperopt.Trials()
    tids = list(range(len(observations)))
    miscs = [
        {
            "tid": tid,
            "cmd": domain.cmd,
            "workdir": None,
            "idxs": {name: [tid] for name in search_space},
            "vals": {
                name: [_to_hyperopt_value(dist, params[name])]
                for name, dist in search_space.items()
            },
        }
        for tid, (params, _) in zip(tids, observations)
    ]
    results = [{"status": hyperopt.STATUS_OK, "loss": loss} for _, loss in observations]
    docs = trials.new_trial_docs(tids, [None] * len(tids), results, miscs)
    for doc in docs:
        doc["state"] = hyperopt.JOB_STATE_DONE
    trials.insert_trial_docs(docs)
    trials.refresh()
    new = hyperopt.tpe.suggest(
        [len(tids)],
        domain,
        trials,
        seed,
        n_startup_jobs=n_startup_jobs,
        n_EI_candidates=n_ei_candidates,
        verbose=False,
    )
    vals = new[0]["misc"]["vals"]
    return {name: _to_optuna_value(dist, vals[name][0]) for name, dist in search_space.items()}
