"""Per-epoch reports and Optuna pruners: the objective, the training hooks and ``--pruner``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

from optuna_kmtpe import HardwareLimits
from optuna_kmtpe import MixedPrecisionSearch
from optuna_kmtpe._budget import counted
from optuna_kmtpe._runs import search_run
from optuna_kmtpe._runs.search_run import resolve_config
from optuna_kmtpe._runs.search_run import run_search
from optuna_kmtpe._runs.search_run import SearchConfig
from optuna_kmtpe._runs.search_run import SearchError
from optuna_kmtpe._search.api import choose
from optuna_kmtpe._search.pruning import make_pruner
from optuna_kmtpe._search.pruning import PRUNERS
from optuna_kmtpe.cli import build_parser
from optuna_kmtpe.cli import main
from tests.test_search import _study
from tests.test_search import _tiny
from tests.test_search import TINY


torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
_G = torch.Generator().manual_seed(0)
_X, _Y = torch.randn(64, 1, 8, 8, generator=_G), torch.randint(0, 3, (64,), generator=_G)


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


class _PruneOdd(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 1


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))


def _search(**kw: Any) -> MixedPrecisionSearch:
    # The training batches are shuffled with torch's global RNG.
    options: dict[str, Any] = dict(
        train_loader=DataLoader(TensorDataset(_X, _Y), batch_size=16, shuffle=True),
        val_loader=DataLoader(TensorDataset(_X, _Y), batch_size=32),
        input_shape=(1, 1, 8, 8),
        epochs=3,
        hessian_batches=1,
        hessian_samples=3,
    )
    options.update(kw)
    return MixedPrecisionSearch(_model(), **options)


def _count_evals(search: MixedPrecisionSearch) -> list[float]:
    scores: list[float] = []
    inner = search._eval_fn

    def eval_fn(model: nn.Module) -> float:
        scores.append(inner(model))
        return scores[-1]

    search._eval_fn = eval_fn
    return scores


def _rigged(scores: list[float], *, epochs: int = 2, **kw: Any) -> MixedPrecisionSearch:
    """A search whose training does nothing but call the hook, and whose successive scores
    are ``scores``."""
    left = iter(scores)

    def train_fn(
        model: nn.Module, *, epochs: int, seed: int, on_epoch: Callable[[int], None]
    ) -> None:
        for epoch in range(1, epochs + 1):
            on_epoch(epoch)

    return _search(
        train_fn=train_fn,
        eval_fn=lambda model: next(left),
        hessian_data=[(_X[:16], _Y[:16])],
        epochs=epochs,
        **kw,
    )


def _study_with(pruner: optuna.pruners.BasePruner, seed: int = 0) -> optuna.Study:
    sampler = optuna.samplers.RandomSampler(seed=seed)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("none", optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ("successive-halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ],
)
def test_make_pruner_builds_each_named_pruner(name: str, cls: type) -> None:
    assert name in PRUNERS
    assert type(make_pruner(name, epochs=4)) is cls


def test_hyperband_runs_up_to_the_epochs_and_unknown_names_are_refused() -> None:
    hyperband = make_pruner("hyperband", epochs=4)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert hyperband._max_resource == 4
    with pytest.raises(ValueError, match="Unknown pruner 'asha'; choose one of none, median"):
        make_pruner("asha", epochs=4)


def test_a_pruning_pruner_stops_every_trial_after_its_first_epoch() -> None:
    search = _search()
    scores = _count_evals(search)
    study = _study_with(_AlwaysPrune())
    search.optimize(study, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert len(scores) == 2  # one score per trial: after epoch 1
    for t, score in zip(study.trials, scores):
        a = t.user_attrs
        assert a["trained"] and a["accuracy"] == score
        assert a["epochs_trained"] == a["pruned_at_epoch"] == 1
        assert t.intermediate_values == {1: score} and t.value == score
    assert choose(study) is None  # a pruned trial is never the chosen configuration
    with pytest.raises(ValueError, match="in the 0 completed trials"):
        search.best(study)


def test_without_a_pruner_a_trial_is_scored_once_and_reports_nothing() -> None:
    search = _search(epochs=2)
    scores = _count_evals(search)
    study = _study_with(optuna.pruners.NopPruner())
    search.optimize(study, n_trials=2)
    assert len(scores) == 2 and [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for t in study.trials:
        assert t.intermediate_values == {} and t.user_attrs["epochs_trained"] == 2
        assert "pruned_at_epoch" not in t.user_attrs


def test_per_epoch_reports_leave_the_training_as_it_is() -> None:
    plain, reported = _search(reuse_repeats=False), _search(reuse_repeats=False)
    n_plain, n_reported = _count_evals(plain), _count_evals(reported)
    study = _study_with(optuna.pruners.NopPruner())
    plain.optimize(study, n_trials=3)
    never = optuna.pruners.MedianPruner(n_startup_trials=100)  # reports, never prunes
    watched = _study_with(never)
    reported.optimize(watched, n_trials=3)
    assert [t.value for t in watched.trials] == [t.value for t in study.trials]
    assert len(n_plain) == 3 and len(n_reported) == 3 * 3
    for t in watched.trials:
        assert sorted(t.intermediate_values) == [1, 2, 3]
        assert t.intermediate_values[3] == t.value and t.user_attrs["epochs_trained"] == 3


def test_median_pruner_prunes_below_the_median_and_a_pruned_configuration_trains_again() -> None:
    # Scores after epoch 1, 2: trials 0 and 1 complete, 2 is below their epoch-1 median.
    scores = [0.5, 0.5, 0.7, 0.7, 0.1, 0.9, 0.9, 0.8, 0.8]
    search = _rigged(scores, objective="constraints")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = _study_with(pruner)
    search.optimize(study, n_trials=3)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    pruned = study.trials[2]
    assert pruned.user_attrs["accuracy"] == 0.1 and pruned.value == 0.1
    assert pruned.user_attrs["epochs_trained"] == pruned.user_attrs["pruned_at_epoch"] == 1
    assert [t.user_attrs["epochs_trained"] for t in study.trials[:2]] == [2, 2]
    assert study.trials[1].intermediate_values == {1: 0.7, 2: 0.7}
    # The pruned configuration is trained again (scores 0.9, 0.9), not reused; its repeat
    # then reuses that COMPLETE trial.
    study.enqueue_trial(pruned.params)
    study.enqueue_trial(pruned.params)
    search.optimize(study, n_trials=2)
    retrained, repeat = study.trials[3], study.trials[4]
    assert retrained.state == TrialState.COMPLETE and retrained.value == 0.9
    assert "reused_from_trial" not in retrained.user_attrs
    assert repeat.user_attrs["reused_from_trial"] == 3
    assert repeat.user_attrs["epochs_trained"] == 0 and repeat.intermediate_values == {}
    chosen = choose(study)
    assert chosen is not None and chosen.number == retrained.number


def test_untrained_infeasible_trials_record_no_epochs() -> None:
    """With the penalty (the former default) an infeasible proposal trains nothing."""
    first = _rigged([])
    largest: dict[str, float] = {f"bits/{n}": max(b) for n, b in first.space.bits.items()}
    largest.update({f"width/{n}": max(w) for n, w in first.space.widths.items()})
    bits, widths = first.objective().configuration(largest)
    size = first.cost_model.evaluate([b or 16 for b in bits.values()], widths).size_mb
    search = _rigged(
        [], space=first.space, limits=HardwareLimits(size_mb=0.99 * size), infeasible="penalty"
    )
    study = _study_with(_AlwaysPrune())
    study.enqueue_trial(largest)
    search.optimize(study, n_trials=1, warm_start=False)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and not t.user_attrs["feasible"]
    assert not t.user_attrs["trained"] and t.user_attrs["epochs_trained"] == 0


def test_a_train_fn_without_the_hook_is_scored_after_training_and_never_pruned() -> None:
    def train_fn(model: nn.Module, *, epochs: int, seed: int) -> None:
        pass

    search = _search(train_fn=train_fn, eval_fn=lambda m: 0.25, hessian_data=[(_X, _Y)])
    study = _study_with(_AlwaysPrune())
    search.optimize(study, n_trials=2)
    for t in study.trials:
        assert t.state == TrialState.COMPLETE and t.user_attrs["epochs_trained"] == 3
        assert t.intermediate_values == {3: 0.25}


def test_a_pareto_study_reports_nothing() -> None:
    search = _rigged([0.5] * 4, objective="pareto", reuse_repeats=False)
    # The pareto objective's directions for accuracy and size (pareto_directions).
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=_AlwaysPrune())
    search.optimize(study, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(t.intermediate_values == {} for t in study.trials)


@pytest.mark.parametrize("name", ["median", "successive-halving", "hyperband"])
def test_each_named_pruner_runs_a_search(name: str) -> None:
    rng = torch.Generator().manual_seed(1)
    search = _rigged(torch.rand(60, generator=rng).tolist(), epochs=4, reuse_repeats=False)
    study = _study_with(make_pruner(name, epochs=4))
    search.optimize(study, n_trials=12)
    states = {t.state for t in study.trials}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for t in study.trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["epochs_trained"] == t.user_attrs["pruned_at_epoch"] < 4
        else:
            assert t.user_attrs["epochs_trained"] == 4 and max(t.intermediate_values) == 4


def test_search_counts_pruned_trials_towards_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[str, int]] = []

    def fake_make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
        made.append((name, epochs))
        return _PruneOdd()

    monkeypatch.setattr(search_run, "make_pruner", fake_make_pruner)
    result = run_search(_tiny(tmp_path, trials=4, epochs=2, final_epochs=0, pruner="median"))
    assert made == [("median", 2)]
    trials = _study(tmp_path, "kmtpe-small_cnn-digits").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"] * 2
    assert counted(_study(tmp_path, "kmtpe-small_cnn-digits")) == 4
    assert result.n_trials == 4 and result.n_pruned == 2 and result.n_complete == 2
    table = pd.read_csv(tmp_path / "results.csv")
    assert table["epochs_trained"].tolist() == [2, 1, 2, 1]
    assert table.loc[table["state"] == "PRUNED", "pruned_at_epoch"].tolist() == [1, 1]


def test_pruner_option() -> None:
    parser = build_parser()
    assert parser.parse_args(["search"]).pruner is None  # resolved by the search, below
    assert parser.parse_args(["search", "--pruner", "successive-halving"]).pruner == (
        "successive-halving"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--pruner", "asha"])


@pytest.mark.parametrize(
    ("objective", "epochs", "expected"),
    [("lagrangian", 2, "successive-halving"), ("pareto", 2, "none"), ("lagrangian", 1, "none")],
)
def test_the_default_pruner_is_successive_halving_where_it_can_prune(
    objective: str, epochs: int, expected: str
) -> None:
    config = SearchConfig(objective=objective, epochs=epochs)
    assert resolve_config(config).pruner == expected


def test_pruner_with_the_pareto_objective_or_an_unknown_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", "--out", str(tmp_path / "run"), *TINY, "--objective", "pareto"]
    assert main([*argv, "--pruner", "median"]) == 2
    err = capsys.readouterr().err
    assert "--pruner median cannot be used with --objective pareto" in err
    assert "Use --pruner none" in err
    with pytest.raises(SearchError, match="Unknown pruner 'asha'; choose from"):
        run_search(_tiny(tmp_path / "other", pruner="asha"))
