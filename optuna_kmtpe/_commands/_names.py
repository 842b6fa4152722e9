"""The names the command line offers, without importing optuna, numpy or torch, so that a
usage error answers at once. ``tests/test_cli_errors.py`` checks them against their sources:
:data:`optuna_kmtpe._sampler_registry.SEARCH_SAMPLERS`,
:data:`optuna_kmtpe._compress.limits.OBJECTIVES`,
:mod:`optuna_kmtpe._search.pruning`, the space rules of
:data:`optuna_kmtpe._compress.search_space.SPACE_RULES` (less the API's ``"given"``),
:data:`optuna_kmtpe._search.repair.INFEASIBLE_MODES`,
:data:`optuna_kmtpe._search.choice_rule.CHOICE_RULES` and
:data:`optuna_kmtpe._compress.inherit.NARROW_RULES`.

Example:
    >>> SAMPLERS[0], DEFAULT_PRUNER in PRUNERS
    ('kmeans-tpe', True)
"""

from __future__ import annotations


SAMPLERS = (
    "kmeans-tpe",
    "kmeans-tpe-dead-zone",
    "kmeans-tpe-paper",
    "tpe",
    "tpe-univariate",
    "random",
    "hyperopt",
    "gp",
    "catcmawm",
)
OBJECTIVES = ("lagrangian", "constraints", "pareto")
PRUNERS = ("none", "median", "successive-halving", "hyperband")
DEFAULT_PRUNER = "successive-halving"
SPACE_RULES = ("baselines", "paper")
INFEASIBLE_MODES = ("repair", "penalty")
CHOICE_RULES = ("speed-band", "score")
NARROW_RULES = ("first", "magnitude")
