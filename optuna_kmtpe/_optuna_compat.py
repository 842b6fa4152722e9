"""Every private Optuna symbol this package uses, in one place.

Optuna's TPE internals are not public API: their signatures changed in 3.4, 4.4, 4.7 and 5.0.
Only the Parzen estimator's constructor, ``sample`` and ``log_pdf`` have held since 3.0, so
that is all the sampler relies on, through the thin wrappers below.
``tests/test_optuna_compat.py`` exercises each of them; the Optuna range in ``pyproject.toml``
is the one those tests pass on. When a new Optuna breaks them, fix it here (or vendor the
estimator, as OptunaHub's c-TPE does) and nowhere else.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING

import numpy as np
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import _get_pruned_trial_score
from optuna.samplers._tpe.sampler import default_gamma
from optuna.samplers._tpe.sampler import default_weights
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace
from optuna.search_space.intersection import _calculate as _intersection_search_space
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.study._multi_objective import _fast_non_domination_rank


if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial
    from optuna.trial import TrialState


__all__ = [
    "GroupDecomposedSearchSpace",
    "IntersectionSearchSpace",
    "LazyRandomState",
    "ParzenEstimator",
    "build_parzen_estimator",
    "constraint_violation",
    "default_gamma",
    "get_trials",
    "non_domination_ranks",
    "pruned_trial_score",
    "set_trial_system_attr",
    "study_identity",
]

ParzenEstimator = _ParzenEstimator
GroupDecomposedSearchSpace = _GroupDecomposedSearchSpace

# TPESampler's defaults in Optuna 5.0 for the arguments it deprecated in 4.9; built with
# keywords because the field set of this NamedTuple changed three times since 3.4.
_PARZEN_PARAMETERS = _ParzenEstimatorParameters(
    prior_weight=1.0,
    consider_magic_clip=True,
    consider_endpoints=False,
    weights=default_weights,
    multivariate=True,
)


def build_parzen_estimator(
    observations: dict[str, np.ndarray],
    search_space: dict[str, BaseDistribution],
    weights: np.ndarray | None = None,
) -> _ParzenEstimator:
    """Optuna's TPE mixture (one kernel per observation plus the prior) over ``search_space``.

    ``observations`` holds internal representations, one array per parameter, oldest first;
    ``weights`` (one per observation) default to TPE's (older observations ramped down
    past 25). The prior kernel keeps weight 1 before normalisation.
    """
    return _ParzenEstimator(observations, search_space, _PARZEN_PARAMETERS, weights)


class IntersectionSearchSpace:
    """Optuna's ``IntersectionSearchSpace(include_pruned=True)``, without its copy.

    The same incremental computation (Optuna's own function) and the same answer, sorted by
    name; only the deep copy that Optuna makes of the answer on every call, most of the call's
    cost, is left out: its distributions are the trials' own objects, which nothing modifies.
    Bound to one study, like Optuna's (the sampler makes a new one for each study it meets).
    """

    def __init__(self) -> None:
        self._search_space: dict[str, BaseDistribution] | None = None
        self._cached_trial_number = -1

    def calculate(self, study: Study) -> dict[str, BaseDistribution]:
        """The intersection of the finished (COMPLETE, PRUNED) trials' distributions."""
        self._search_space, self._cached_trial_number = _intersection_search_space(
            study._get_trials(deepcopy=False, use_cache=True),
            True,
            self._search_space,
            self._cached_trial_number,
        )
        return dict(sorted((self._search_space or {}).items()))


def get_trials(
    study: Study, states: Container[TrialState], *, use_cache: bool
) -> list[FrozenTrial]:
    """Trials in ``states`` without deep copies; ``use_cache`` reuses this trial's snapshot."""
    return study._get_trials(deepcopy=False, states=states, use_cache=use_cache)


def constraint_violation(trial: FrozenTrial) -> float:
    """The sum of ``trial``'s positive constraint values (TPE's infeasibility score).

    ``FrozenTrial.constraints`` builds a dict from the system attributes on every read; most
    trials hold none, which one pass over the keys tells.
    """
    for key in trial.system_attrs:
        if key.startswith(_CONSTRAINTS_KEY):
            return sum(v for v in trial.constraints.values() if v > 0)
    return 0.0


def study_identity(study: Study) -> tuple[int, int, str]:
    """A key that tells studies apart, also across in-memory storages (which reuse id 0)."""
    return (id(study._storage), study._study_id, study.study_name)


def set_trial_system_attr(study: Study, trial: FrozenTrial, key: str, value: str | int) -> None:
    """Write a system attribute of a running trial straight to the study's storage."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def non_domination_ranks(loss_values: np.ndarray) -> np.ndarray:
    """Non-domination rank (0 = Pareto front) of each row of minimisation objectives."""
    return _fast_non_domination_rank(loss_values)


def pruned_trial_score(trial: FrozenTrial, study: Study) -> tuple[float, float]:
    """TPE's ordering of pruned trials: later pruning step first, then better last value."""
    return _get_pruned_trial_score(trial, study)
