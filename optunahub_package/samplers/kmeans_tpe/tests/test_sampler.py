"""Optuna's sampler conformance suite, run against the package as OptunaHub loads it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
from optuna.testing.pytest_samplers import RelativeSamplerTestCase
import optunahub
import pytest


# The registry root: package/ in optunahub-registry, optunahub_package/ in optuna-kmtpe.
_ROOT = Path(__file__).resolve().parents[3]
KMeansTPESampler = optunahub.load_local_module(
    package="samplers/kmeans_tpe", registry_root=str(_ROOT)
).KMeansTPESampler


class TestKMeansTPESampler(
    BasicSamplerTestCase, RelativeSamplerTestCase, MultiObjectiveSamplerTestCase
):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: KMeansTPESampler(n_startup_trials=0)


def test_no_configuration_repeats_on_a_discrete_space() -> None:
    study = optuna.create_study(sampler=KMeansTPESampler(seed=0))
    study.optimize(lambda t: t.suggest_int("x", 0, 4) * t.suggest_int("y", 0, 4), n_trials=25)
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) == 25
