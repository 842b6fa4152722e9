"""The sampler's shortcuts give the results of the code they replace (benchmarks/
bench_sampler_overhead.py measures what they save)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_kmtpe import _repeats
import optuna_kmtpe._sampler as sampler_module


_NAN = float("nan")


@pytest.mark.parametrize(
    "dist, values",
    [
        (FloatDistribution(-1.0, 1.0), [0.5, -1, 1.0, np.float32(0.25)]),
        (FloatDistribution(1e-3, 1.0, log=True), [1e-3, 0.5, 1]),
        (FloatDistribution(0.0, 1.0, step=0.25), [0.0, 0.75]),
        (IntDistribution(0, 10), [0, 3, np.int64(7), True]),
        (IntDistribution(1, 1024, log=True), [1, 512]),
        (CategoricalDistribution(["a", "b", 3, None]), ["b", 3, None, "a", 3.0]),
        # Equal choices: ``choices.index`` finds the first one.
        (CategoricalDistribution([1, True, 1.0, 0.5]), [True, 1.0, 1, 0.5, np.float64(0.5)]),
        (CategoricalDistribution([0.0, -0.0, 2]), [-0.0, 0.0, 2]),
        # A NaN choice is found by Optuna's NaN-aware fallback, not by equality.
        (CategoricalDistribution([_NAN, 1.0]), [float("nan"), 1.0, _NAN]),
        (CategoricalDistribution([np.float64(0.75), 1.25]), [0.75, 1.25]),
        (CategoricalDistribution(["x"]), []),
    ],
)
def test_internal_repr_matches_optuna(dist: BaseDistribution, values: list[Any]) -> None:
    column = sampler_module._internal_repr(dist, values)
    expected = [dist.to_internal_repr(v) for v in values]
    assert column.dtype == np.float64
    assert column.tolist() == expected


@pytest.mark.parametrize(
    "dist, values",
    [
        (FloatDistribution(-1.0, 1.0), [0.5, _NAN]),
        (FloatDistribution(1e-3, 1.0, log=True), [0.5, 0.0]),
        (IntDistribution(0, 10), [1, "not a number"]),
        (IntDistribution(0, 10), [1, None]),
        (CategoricalDistribution(["a", "b"]), ["a", "c"]),
        (CategoricalDistribution(["a", "b"]), ["a", ["unhashable"]]),
    ],
)
def test_internal_repr_raises_as_optuna(dist: BaseDistribution, values: list[Any]) -> None:
    with pytest.raises(ValueError) as expected:
        [dist.to_internal_repr(v) for v in values]
    with pytest.raises(ValueError) as got:
        sampler_module._internal_repr(dist, values)
    assert str(got.value) == str(expected.value)


def test_internal_repr_of_integers_beyond_float_precision() -> None:
    dist = IntDistribution(0, 2**60)
    values = [2**53 + 1, 2**60 - 1]
    assert sampler_module._internal_repr(dist, values).tolist() == [float(v) for v in values]


def test_keys_of_samples_number_the_grid_in_order() -> None:
    space: dict[str, BaseDistribution] = {
        "c": CategoricalDistribution(["a", None, 3.5]),
        "i": IntDistribution(-4, 8, step=4),
        "f": FloatDistribution(0.1, 0.7, step=0.3),
        "l": IntDistribution(1, 4, log=True),
    }
    every = _repeats.unseen_configurations(space, set())
    expected = list(itertools.product(range(3), range(4), range(3), range(4)))
    assert _repeats.keys_of_samples(every, space) == expected
    assert all(isinstance(i, int) for key in expected for i in key)
    params = {name: dist.to_external_repr(every[name][-1]) for name, dist in space.items()}
    assert _repeats.key_of_params(params, space) == expected[-1]
