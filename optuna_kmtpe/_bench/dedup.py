"""Optuna's FAQ recipe against repeated parameters, as a user writes it in the objective.

Optuna's FAQ ("How can I avoid evaluating the same parameters?", optuna/optuna PR #5006)
looks, inside the objective, for an earlier COMPLETE trial with the same parameters and returns
that trial's value instead of evaluating again. The repeat still uses a trial of the budget,
and the sampler sees the same point twice. :func:`reuse_earlier_value` wraps any objective that
way; the ``tpe-dedup`` entry of ``kmtpe bench --samplers`` is ``TPESampler()`` with it.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.trial import TrialState


Objective = Callable[[optuna.Trial], float]


def reuse_earlier_value(objective: Objective) -> Objective:
    """``objective`` that returns the latest earlier COMPLETE trial's value when the trial
    repeats its parameters.

    The objective runs first (it suggests the parameters; the cheap tabular and synthetic
    tasks also evaluate, and the value is discarded), then the recipe's check decides.

    Example:
        >>> def objective(trial: optuna.Trial) -> float:
        ...     return trial.suggest_int("x", 0, 1) + 0.1 * trial.number
        >>> study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
        >>> study.enqueue_trial({"x": 1})
        >>> study.enqueue_trial({"x": 1})
        >>> study.optimize(reuse_earlier_value(objective), n_trials=2)
        >>> [t.value for t in study.trials]
        [1.0, 1.0]
    """

    def deduplicated(trial: optuna.Trial) -> float:
        value = objective(trial)
        earlier = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        for past in reversed(earlier):
            if past.params == trial.params:
                assert past.value is not None
                return past.value
        return value

    return deduplicated
