"""Property-based test: random spaces and hostile objective values never break the sampler."""

from __future__ import annotations

import math
from typing import Any
from typing import Literal

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
import pytest

from optuna_kmtpe import KMeansTPESampler


optuna.logging.set_verbosity(optuna.logging.WARNING)


@st.composite
def distributions(draw: st.DrawFn) -> BaseDistribution:
    kind = draw(st.sampled_from(["float", "log", "step", "int", "intlog", "intstep", "cat"]))
    if kind == "cat":
        choices = draw(
            st.lists(
                st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "c"]), st.none()),
                min_size=1,
                max_size=4,
                unique=True,
            )
        )
        return CategoricalDistribution(choices)
    if kind in ("int", "intlog", "intstep"):
        low = draw(st.integers(1, 20))
        high = low + draw(st.integers(0, 50))
        if kind == "intstep":
            step = draw(st.integers(1, 5))
            return IntDistribution(low, low + (high - low) // step * step, step=step)
        return IntDistribution(low, high, log=kind == "intlog")
    f_low = draw(st.floats(1e-4, 10.0))
    f_high = f_low + draw(st.floats(0.0, 100.0))
    if kind == "step":
        f_step = draw(st.sampled_from([0.1, 0.5, 1.0]))
        n = math.floor((f_high - f_low) / f_step + 1e-9)
        return FloatDistribution(f_low, f_low + n * f_step, step=f_step)
    return FloatDistribution(f_low, f_high, log=kind == "log")


objective_values = st.one_of(
    st.sampled_from([0.0, 1.0, 1.0, 1.0, -1.0]),  # ties and plateaus
    st.floats(allow_nan=True, allow_infinity=True),  # NaN, inf, huge and tiny magnitudes
    st.sampled_from([1e-300, -1e-300, 1e300, -1e300, 5e-324]),
)


@pytest.mark.filterwarnings("ignore:The distribution is specified by")
@pytest.mark.filterwarnings("ignore:The value nan is not acceptable")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    space=st.dictionaries(
        st.sampled_from(list("abcdef")), distributions(), min_size=1, max_size=4
    ),
    conditional=st.dictionaries(st.sampled_from(list("xyz")), distributions(), max_size=2),
    values=st.lists(objective_values, min_size=1, max_size=14),
    direction=st.sampled_from(["minimize", "maximize"]),
    options=st.fixed_dictionaries(
        {
            "n_startup_trials": st.integers(0, 4),
            "multivariate": st.booleans(),
            "constant_liar": st.booleans(),
            "k_init": st.integers(3, 6),
            "alpha": st.floats(0.5, 1.0),
            "split": st.sampled_from(["paper", "dead-zone"]),
        }
    ),
)
def test_every_suggestion_is_inside_its_distribution(
    space: dict[str, BaseDistribution],
    conditional: dict[str, BaseDistribution],
    values: list[float],
    direction: Literal["minimize", "maximize"],
    options: dict[str, Any],
) -> None:
    study = optuna.create_study(direction=direction, sampler=KMeansTPESampler(seed=0, **options))
    for i, value in enumerate(values):
        trial = study.ask()
        params = {name: trial._suggest(name, dist) for name, dist in space.items()}
        if i % 2:  # Conditional parameters appear in every other trial.
            params |= {name: trial._suggest(name, dist) for name, dist in conditional.items()}
        for name, param in params.items():
            dist = space.get(name) or conditional[name]
            assert dist._contains(dist.to_internal_repr(param)), (name, param, dist)
        if i % 5 == 3:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)  # NaN becomes a FAIL trial, inf stays COMPLETE.
    states = {t.state for t in study.trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
