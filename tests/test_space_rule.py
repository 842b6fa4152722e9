"""The default search space, the warm start, the repair of infeasible proposals and the speed
rule of the choice (docs/search.md)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import optuna
import pytest
import torch
from torch import nn

import optuna_kmtpe
from optuna_kmtpe import HardwareLimits
from optuna_kmtpe import MixedPrecisionSearch
from optuna_kmtpe._compress.search_space import bit_subsets
from optuna_kmtpe._search.choice_rule import pick
from optuna_kmtpe._search.choice_rule import Scored
from optuna_kmtpe._search.choice_rule import tie_band
from optuna_kmtpe._search.selection import candidates
from optuna_kmtpe._search.selection import speed_reference
from tests._logs import captured_logs


if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
_G = torch.Generator().manual_seed(0)
_X, _Y = torch.randn(32, 1, 8, 8, generator=_G), torch.randint(0, 3, (32,), generator=_G)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(1024, 3),
    )


class _Recorder:
    """``train_fn`` that trains nothing and records the configuration of every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: nn.Module, *, epochs: int, seed: int) -> None:
        self.calls.append(_signature(model))


def _signature(model: nn.Module) -> str:
    """The candidate's bits and channel counts (enough to tell configurations apart)."""
    parts = []
    for name, m in model.named_modules():
        if hasattr(m, "bits"):
            parts.append(f"{name}:{m.bits}:{tuple(m.weight.shape)}")
    return "|".join(parts)


def _search(avg_bits: float = 2.5, **kw: Any) -> tuple[MixedPrecisionSearch, _Recorder]:
    record = _Recorder()
    probe = MixedPrecisionSearch(
        _model(), train_fn=record, eval_fn=lambda m: 0.5, input_shape=(1, 1, 8, 8),
        hessian_data=[(_X, _Y)], hessian_samples=3, space_rule="paper",
    )  # fmt: skip
    full = probe.cost_model.baseline().size_mb
    options: dict[str, Any] = dict(
        train_fn=record,
        eval_fn=lambda m: 0.5,
        input_shape=(1, 1, 8, 8),
        hessian_data=[(_X, _Y)],
        hessian_samples=3,
        limits=HardwareLimits(size_mb=full * avg_bits / 16),
    )
    options.update(kw)
    return MixedPrecisionSearch(_model(), **options), record


def test_the_default_space_holds_every_feasible_uniform_and_the_ilp_and_greedy_bits() -> None:
    search, _ = _search()
    space = search.space
    assert space.rule == "baselines"
    cost, limits, layers = search.cost_model, search.limits, search.layers
    widths = sorted(set.intersection(*(set(w) for w in space.widths.values())))
    n_feasible = 0
    for b, w in itertools.product(search.bit_choices, widths):
        report = cost.evaluate(
            [b] * len(layers), [w if n in space.widths else 1.0 for n in layers]
        )
        if all(v <= 0 for v in limits.violations(report).values()):
            n_feasible += 1
            assert all(b in space.bits[n] for n in layers), (b, w, space.bits)
            assert all(w in space.widths[n] for n in space.widths)
    assert n_feasible >= 2
    for method in ("ilp", "greedy"):
        found = search.baseline(method)
        assert all(found.bits[n] in space.bits[n] for n in layers), (method, found.bits)
    # The paper's rule: each layer has exactly its cluster's subset (here no configuration
    # of it meets 2.5 bits per weight, so it is built without the limit).
    paper, _ = _search(space_rule="paper", limits=None)
    k = max(paper.space.clusters.values()) + 1
    subsets = bit_subsets(paper.bit_choices, k)
    assert paper.space.rule == "paper"
    assert paper.space.bits == {n: subsets[c] for n, c in paper.space.clusters.items()}
    assert all(set(paper.space.bits[n]) <= set(space.bits[n]) for n in layers)


def test_a_given_space_is_left_as_it_is() -> None:
    paper, _ = _search(space_rule="paper", avg_bits=4)
    search, _ = _search(space=paper.space, avg_bits=4)
    assert search.space == paper.space


def test_warm_start_trials_come_first_in_order_and_train_once() -> None:
    search, record = _search()
    warm = search.warm_start_params()
    assert [m for m, _ in warm][:1] == ["uniform"] and {"ilp", "greedy"} & {m for m, _ in warm}
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    search.optimize(study, n_trials=len(warm) + 3)
    trials = study.trials
    assert len(trials) == len(warm) + 3  # counted in n_trials
    assert [(t.user_attrs["warm_start"], t.params) for t in trials[: len(warm)]] == warm
    assert all(t.user_attrs["feasible"] and t.user_attrs["trained"] for t in trials)
    # A second call (a resumed study) enqueues nothing again.
    assert search.enqueue_warm_start(study) == 0
    search.optimize(study, n_trials=2)
    assert sum("warm_start" in t.user_attrs for t in study.trials) == len(warm)
    # Each configuration trained once: repeats reuse.
    assert len(record.calls) == len(set(record.calls))
    trained = [t for t in study.trials if "reused_from_trial" not in t.user_attrs]
    assert len(record.calls) == len(trained)


def test_the_penalty_and_no_warm_start_keep_the_former_behaviour() -> None:
    search, record = _search(infeasible="penalty", space_rule="paper", avg_bits=4)
    study = optuna.create_study(direction="maximize")
    top: dict[str, float] = {f"bits/{n}": max(b) for n, b in search.space.bits.items()}
    top.update({f"width/{n}": max(w) for n, w in search.space.widths.items()})
    study.enqueue_trial(top)
    search.optimize(study, n_trials=1, warm_start=False)
    t = study.trials[0]
    assert not t.user_attrs["feasible"] and not t.user_attrs["trained"] and not record.calls
    assert "proposed" not in t.user_attrs


def test_repair_trains_a_feasible_configuration_and_records_the_proposal() -> None:
    search, record = _search()
    study = optuna.create_study(direction="maximize")
    top: dict[str, float] = {f"bits/{n}": max(b) for n, b in search.space.bits.items()}
    top.update({f"width/{n}": max(w) for n, w in search.space.widths.items()})
    study.enqueue_trial(top)
    search.optimize(study, n_trials=1, warm_start=False)
    t = study.trials[0]
    assert t.params == top and t.user_attrs["feasible"] and t.user_attrs["trained"]
    proposed = t.user_attrs["proposed"]
    assert not proposed["feasible"] and proposed["size_mb"] > search.limits.size_mb
    assert t.user_attrs["size_mb"] <= search.limits.size_mb and len(record.calls) == 1
    best = search.best(study)
    assert best.params == t.user_attrs["repaired_params"] != top
    assert search.objective().configuration(best.params)[0] == dict(
        zip(search.layers, t.user_attrs["bits"])
    )
    assert _signature(search.build(t)) == _signature(search.build(best)) == record.calls[0]
    # Random proposals: every trial trains a feasible configuration.
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    search.optimize(study, n_trials=12, warm_start=False)
    assert any("proposed" in t.user_attrs for t in study.trials)
    assert all(t.user_attrs["feasible"] for t in study.trials)


def test_the_speed_rule_takes_the_faster_of_equal_scores() -> None:
    slow = Scored(trial=0, scores=(0.9,), speedup=4.8, size_mb=0.010)
    fast = Scored(trial=1, scores=(0.9,), speedup=7.3, size_mb=0.011)
    assert pick([slow, fast]).trial == 1
    assert pick([slow, fast], "score").trial == 0  # the former rule: the smaller
    better = Scored(trial=2, scores=(0.95,), speedup=1.0, size_mb=0.011)
    assert pick([slow, fast, better]).trial == 2  # no re-scores: no band
    noisy = [Scored(3, (0.90, 0.96), 2.0, 0.01), Scored(4, (0.95, 0.87), 9.0, 0.01)]
    assert tie_band(noisy) > 0.03 and pick(noisy).trial == 4  # means 0.93 and 0.91
    assert pick(noisy, band=0.0).trial == 3
    # Through the search: every score is 0.5, so the fastest trial is chosen.
    search, record = _search()
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=2)
    )
    search.optimize(study, n_trials=6)
    speed = {t.number: t.user_attrs["speedup"] for t in study.trials}
    assert len(set(speed.values())) > 1
    assert search.best(study).speedup == max(speed.values())
    smallest = min(t.user_attrs["size_mb"] for t in study.trials)
    assert search.best(study, choice_rule="score").size_mb == smallest
    # Re-scoring also re-scores the speed reference.
    top = candidates(study)[0]
    (fastest,) = speed_reference(candidates(study))
    n = len(record.calls)
    chosen = search.best(study, rescore=1, rescore_repeats=1)
    assert len(record.calls) - n == 1 + (top.number != fastest.number)
    assert chosen.speedup >= fastest.user_attrs["speedup"] and chosen.tie_band == 0.0
    # A choice slower than the fastest warm-start configuration says so.
    with captured_logs() as logs:
        small = search.best(study, choice_rule="score")
    slower = small.speedup < fastest.user_attrs["speedup"]
    assert slower == any("slower than the fastest baseline choice" in m for m in logs)
    assert slower  # here the smallest configuration is not the fastest


def _imports(module: str) -> set[str]:
    """The ``optuna_kmtpe`` modules ``module`` imports, ``TYPE_CHECKING`` ones included."""
    path = Path(optuna_kmtpe.__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optuna_kmtpe"):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("optuna_kmtpe.")}
    return {m for m in found if m != "optuna_kmtpe"}


def test_the_baselines_do_not_reach_the_search_api() -> None:
    seen: set[str] = set()
    todo = ["optuna_kmtpe._search.baselines", "optuna_kmtpe._search.allocations"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(module))
    assert "optuna_kmtpe._search.api" not in seen
    assert "optuna_kmtpe._search.baselines" in _imports("optuna_kmtpe._search.api")


@pytest.mark.parametrize("bad", [{"space_rule": "given"}, {"infeasible": "skip"}])
def test_bad_rules_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        _search(**bad)


def test_the_speed_reference_is_a_baseline_choice_not_any_fast_warm_start() -> None:
    def trial(number: int, accuracy: float, speedup: float, method: str | None) -> FrozenTrial:
        attrs: dict[str, Any] = {"accuracy": accuracy, "speedup": speedup}
        if method is not None:
            attrs["warm_start"] = method
        t = optuna.trial.create_trial(value=accuracy, user_attrs=attrs)
        t.number = number
        return t

    pool = [
        trial(0, 0.85, 8.2, "uniform"),  # uniform's choice on the proxy
        trial(1, 0.20, 9.3, "uniform"),  # faster, but 2-bit: nobody would pick it
        trial(2, 0.87, 6.3, "ilp"),
        trial(3, 0.90, 12.0, None),  # not a warm start
    ]
    assert [t.number for t in speed_reference(pool)] == [0]
    assert speed_reference(pool[3:]) == []
