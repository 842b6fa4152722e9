"""Optuna's own sampler conformance suite, run against KMeansTPESampler."""

from __future__ import annotations

from collections.abc import Callable

from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
import pytest

from optuna_kmtpe import KMeansTPESampler


_CONFIGURATIONS: list[Callable[[], BaseSampler]] = [
    lambda: KMeansTPESampler(n_startup_trials=0),
    lambda: KMeansTPESampler(n_startup_trials=0, multivariate=False),
    lambda: KMeansTPESampler(n_startup_trials=0, group=True, seed=1),
    lambda: KMeansTPESampler(n_startup_trials=2, constant_liar=False, seed=0),
    lambda: KMeansTPESampler(n_startup_trials=0, split="dead-zone", seed=4),
    lambda: KMeansTPESampler(n_startup_trials=0, split="paper", seed=2),
    lambda: KMeansTPESampler(n_startup_trials=3, split="paper", avoid_repeats=False, seed=3),
]


class TestBasicKMeansTPE(BasicSamplerTestCase):
    @pytest.fixture(params=_CONFIGURATIONS)
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param


class TestRelativeKMeansTPE(RelativeSamplerTestCase):
    # Relative sampling is random (returns {}) until n_startup_trials trials exist, as in TPE.
    @pytest.fixture(params=_CONFIGURATIONS[:3])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param


class TestMultiObjectiveKMeansTPE(MultiObjectiveSamplerTestCase):
    @pytest.fixture(params=_CONFIGURATIONS)
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param
