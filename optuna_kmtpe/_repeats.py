"""Configurations of a fully discrete search space as hashable grid keys (Optuna and NumPy only).

The sampler's no-repeat rule needs three things: whether a search space is fully discrete
(every parameter categorical, integer or a float with a ``step``), how many configurations it
holds, and a key per configuration that is exact (grid indices, not floats) so that a
candidate drawn in Optuna's internal representation and a parameter dict read from storage
compare equal when they name the same point.
"""

from __future__ import annotations

import itertools
import math
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


if TYPE_CHECKING:
    from collections.abc import Iterable

    from optuna.distributions import BaseDistribution


Key = tuple[int, ...]


def is_fully_discrete(search_space: dict[str, BaseDistribution]) -> bool:
    """Whether every parameter takes finitely many values.

    Example:
        >>> is_fully_discrete({"b": IntDistribution(2, 8), "w": FloatDistribution(0, 1, step=0.5)})
        True
        >>> is_fully_discrete({"lr": FloatDistribution(1e-4, 1e-1, log=True)})
        False
    """
    return bool(search_space) and all(
        not isinstance(d, FloatDistribution) or d.step is not None for d in search_space.values()
    )


def n_configurations(search_space: dict[str, BaseDistribution]) -> int:
    """Number of configurations of a fully discrete space (an exact Python int).

    Example:
        >>> n_configurations(
        ...     {"b": CategoricalDistribution([2, 4, 8]), "w": IntDistribution(0, 10, step=5)}
        ... )
        9
    """
    return math.prod(len(_grid(d)) for d in search_space.values())


def key_of_params(params: dict[str, Any], search_space: dict[str, BaseDistribution]) -> Key:
    """The grid key of a configuration given as external values (a trial's ``params``)."""
    return tuple(_index(d, d.to_internal_repr(params[name])) for name, d in search_space.items())


def keys_of_samples(
    samples: dict[str, np.ndarray], search_space: dict[str, BaseDistribution]
) -> list[Key]:
    """Grid keys of candidates given in internal representation, one array per parameter."""
    if not search_space:
        return []
    return list(zip(*grid_indices(samples, search_space).tolist()))


def grid_indices(
    samples: dict[str, np.ndarray], search_space: dict[str, BaseDistribution]
) -> np.ndarray:
    """The grid indices of candidates, one row per parameter and one column per candidate."""
    internal = np.stack([np.asarray(samples[name], dtype=float) for name in search_space])
    return grid_indices_of_table(internal, search_space)


def grid_indices_of_table(
    internal: np.ndarray, search_space: dict[str, BaseDistribution]
) -> np.ndarray:
    """:func:`grid_indices` of candidates given as one row per parameter, in space order."""
    # One array operation for all parameters: index = rint((internal - origin) / step).
    origins, steps = np.array([_origin_and_step(d) for d in search_space.values()], dtype=float).T
    return np.rint((internal - origins[:, None]) / steps[:, None]).astype(np.int64)


def first_unseen(candidates: np.ndarray, seen: np.ndarray, order: Iterable[int]) -> int | None:
    """The first candidate in ``order`` whose configuration is no column of ``seen``.

    ``candidates`` and ``seen`` hold grid indices (see :func:`grid_indices`). One comparison
    with every seen configuration per candidate tried, and no Python object per configuration:
    cheaper than a set of keys when only a few candidates are tried.

    Example:
        >>> seen = np.array([[0, 1], [2, 2]])
        >>> first_unseen(np.array([[1, 1, 0], [2, 0, 2]]), seen, [0, 2, 1])
        1
    """
    for i in order:
        if not (seen == candidates[:, i, None]).all(axis=0).any():
            return int(i)
    return None


def unseen_configurations(
    search_space: dict[str, BaseDistribution], seen: set[Key]
) -> dict[str, np.ndarray]:
    """Every configuration whose key is not in ``seen``, in internal representation.

    Enumerates the whole grid, so call it only on spaces of a size one can enumerate.

    Example:
        >>> space = {"b": CategoricalDistribution(["x", "y"]), "n": IntDistribution(1, 2)}
        >>> {k: v.tolist() for k, v in unseen_configurations(space, {(0, 0), (1, 1)}).items()}
        {'b': [0.0, 1.0], 'n': [2.0, 1.0]}
    """
    grids = [_grid(d) for d in search_space.values()]
    rows = [
        values
        for indices, values in zip(
            itertools.product(*(range(len(g)) for g in grids)), itertools.product(*grids)
        )
        if indices not in seen
    ]
    columns = np.asarray(rows, dtype=float).reshape(len(rows), len(grids))
    return {name: columns[:, i] for i, name in enumerate(search_space)}


def random_configurations(
    search_space: dict[str, BaseDistribution], rng: np.random.RandomState, size: int
) -> dict[str, np.ndarray]:
    """``size`` configurations drawn uniformly from the grid, in internal representation."""
    samples = {}
    for name, dist in search_space.items():
        grid = np.asarray(_grid(dist))
        samples[name] = grid[rng.randint(len(grid), size=size)]
    return samples


def _grid(dist: BaseDistribution) -> list[float]:
    """The values of one parameter in internal representation, in grid order."""
    if isinstance(dist, CategoricalDistribution):
        return [float(i) for i in range(len(dist.choices))]
    if isinstance(dist, IntDistribution):
        return [float(v) for v in range(dist.low, dist.high + 1, dist.step)]
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = int(round((dist.high - dist.low) / dist.step)) + 1
        return [dist.low + i * dist.step for i in range(n)]
    raise ValueError(f"{dist} is not discrete: it has no grid of configurations.")


def _index(dist: BaseDistribution, internal: float) -> int:
    return int(_indices(dist, np.asarray([internal]))[0])


def _indices(dist: BaseDistribution, internal: np.ndarray) -> np.ndarray:
    origin, step = _origin_and_step(dist)
    return np.rint((internal - origin) / step).astype(np.int64)


def _origin_and_step(dist: BaseDistribution) -> tuple[float, float]:
    """The internal value of grid index 0 and the grid spacing."""
    if isinstance(dist, CategoricalDistribution):
        return 0.0, 1.0
    if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
        return dist.low, dist.step
    raise ValueError(f"{dist} is not discrete: it has no grid of configurations.")
