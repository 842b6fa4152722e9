"""COCO's ``bbob`` and ``bbob-mixint`` functions as benchmark tasks, offline from the
``coco-experiment`` package (``import cocoex``).

A task is named ``SUITE/fNN-dD``: ``bbob/f01-d5`` is the sphere in 5 dimensions and
``bbob-mixint/f21-d10`` the mixed-integer Gallagher 101 peaks in 10. A task uses COCO's
instance 1 (a fixed shift and rotation), so all samplers and seeds minimise the same function;
``SUITE/fNN-dD-iI`` takes COCO's instance index ``I`` (1-15) instead, the same function shifted
and rotated differently: a held-out copy of a task (``bbob-mixint/f06-d5-i2``).
The objective is the raw COCO value ``problem(x)`` (not ``f(x) - f_opt``: comparisons are
within a task, where the offset is the same for everyone).

The first ``problem.number_of_integer_variables`` coordinates are integers (``bbob-mixint``
only; their bounds come from ``lower_bounds`` / ``upper_bounds``) and are suggested with
:meth:`optuna.Trial.suggest_int`, the others with :meth:`optuna.Trial.suggest_float`; the
parameters are called ``x0`` .. ``x{D-1}``.
"""

from __future__ import annotations

import re
from typing import Any
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import optuna


SUITES = ("bbob", "bbob-mixint")
FUNCTIONS = tuple(range(1, 25))
DIMENSIONS = (5, 10)
INSTANCE = 1
INSTANCES = tuple(range(1, 16))
N_TRIALS = 100
N_STARTUP_TRIALS = 10
PATTERN = "bbob/fNN-dD, bbob-mixint/fNN-dD"
DESCRIPTION = (
    f"COCO functions, minimised ({PATTERN}; NN = 01..24, D = 5 or 10; instance {INSTANCE}, "
    "or I = 1..15 with a -iI suffix; "
    f"{N_TRIALS} trials, {N_STARTUP_TRIALS} random; SUITE/dD or SUITE names all of a suite's "
    "tasks at one or both sizes)"
)
_NAME = re.compile(
    r"(?P<suite>bbob|bbob-mixint)/f(?P<function>\d\d)-d(?P<dimension>\d+)(-i(?P<instance>\d+))?"
)
_GROUP = re.compile(r"(?P<suite>bbob|bbob-mixint)(/d(?P<dimension>\d+))?")


def task_name(suite: str, function: int, dimension: int) -> str:
    return f"{suite}/f{function:02d}-d{dimension}"


def parse_task_name(name: str) -> tuple[str, int, int, int] | None:
    """(suite, function, dimension, instance) of a COCO task name, or None for another name.

    Example:
        >>> parse_task_name("bbob-mixint/f21-d5")
        ('bbob-mixint', 21, 5, 1)
        >>> parse_task_name("bbob-mixint/f06-d5-i2")
        ('bbob-mixint', 6, 5, 2)
        >>> parse_task_name("bbob/f25-d5") is None
        True
    """
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    function, dimension = int(match["function"]), int(match["dimension"])
    instance = INSTANCE if match["instance"] is None else int(match["instance"])
    if function not in FUNCTIONS or dimension not in DIMENSIONS or instance not in INSTANCES:
        return None
    return match["suite"], function, dimension, instance


def expand_group(name: str) -> list[str] | None:
    """The tasks a group name stands for (``bbob-mixint/d5``: its 24 functions at d = 5;
    ``bbob``: all 48 of the suite), or None for another name.

    Example:
        >>> expand_group("bbob/d10")[:2]
        ['bbob/f01-d10', 'bbob/f02-d10']
        >>> len(expand_group("bbob-mixint"))
        48
    """
    match = _GROUP.fullmatch(name)
    if match is None:
        return None
    dimensions: tuple[int, ...]
    if match["dimension"] is None:
        dimensions = DIMENSIONS
    elif int(match["dimension"]) in DIMENSIONS:
        dimensions = (int(match["dimension"]),)
    else:
        return None
    return [task_name(match["suite"], f, d) for d in dimensions for f in FUNCTIONS]


def _cocoex() -> Any:
    try:
        import cocoex
    except ImportError as e:
        raise ImportError(
            "The bbob and bbob-mixint tasks evaluate COCO's functions from the "
            "`coco-experiment` package. Install it with `pip install coco-experiment` (or the "
            "`bench` extra: `pip install optuna-kmtpe[bench]`)."
        ) from e
    return cocoex


class CocoObjective:
    """``problem(x)`` of one COCO function and instance as an Optuna objective.

    Args:
        suite:
            ``"bbob"`` or ``"bbob-mixint"``.
        function:
            The function number, 1 to 24.
        dimension:
            The number of variables.
        instance:
            COCO's instance index, 1 to 15 (default :data:`INSTANCE`).
    """

    def __init__(
        self, *, suite: str, function: int, dimension: int, instance: int = INSTANCE
    ) -> None:
        if suite not in SUITES:
            raise ValueError(f"`suite` must be one of {SUITES}, but got {suite!r}.")
        if function not in FUNCTIONS:
            raise ValueError(f"`function` must be in 1..24, but got {function}.")
        if instance not in INSTANCES:
            raise ValueError(f"`instance` must be in 1..15, but got {instance}.")
        cocoex = _cocoex()
        options = f"function_indices:{function} dimensions:{dimension} instance_indices:{instance}"
        # The problem belongs to its suite: keep the suite alive as long as the problem.
        self._suite = cocoex.Suite(suite, "", options)
        if len(self._suite) != 1:
            raise ValueError(
                f"COCO's {suite} suite has no function {function} in {dimension} dimensions."
            )
        self._problem = self._suite[0]
        self.n_integers = int(self._problem.number_of_integer_variables)
        self.lower = [float(b) for b in self._problem.lower_bounds]
        self.upper = [float(b) for b in self._problem.upper_bounds]

    def __call__(self, trial: optuna.Trial) -> float:
        x: list[float] = []
        for i, (low, high) in enumerate(zip(self.lower, self.upper)):
            if i < self.n_integers:
                x.append(trial.suggest_int(f"x{i}", round(low), round(high)))
            else:
                x.append(trial.suggest_float(f"x{i}", low, high))
        return float(self._problem(x))
