"""``MixedPrecisionSearch`` on user-defined models and loaders (scikit-learn digits, 8x8)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from sklearn.datasets import load_digits
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

from optuna_kmtpe import HardwareLimits
from optuna_kmtpe import KMeansTPESampler
from optuna_kmtpe import LayerChoice
from optuna_kmtpe import MixedPrecisionSearch
from optuna_kmtpe._compress.quant import QuantConv2d
from optuna_kmtpe._compress.quant import QuantLinear


torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
LAYERS = ["stem", "conv_a", "conv_b", "grouped", "head"]


class ResidualNet(nn.Module):
    """A small CNN with BatchNorm, a residual addition and a grouped convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False)
        self.bn_g = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        y = F.relu(self.bn_a(self.conv_a(x)))
        x = F.relu(x + self.bn_b(self.conv_b(y)))
        x = F.relu(self.bn_g(self.grouped(x)))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class BranchyNet(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        if x.mean() > 10.0:  # never true here, but fx cannot know
            x = x * 0.5
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=64, shuffle=True, generator=g)
    val = DataLoader(TensorDataset(x[1400:1528], y[1400:1528]), batch_size=128)
    return train, val


def _trained(model: nn.Module, train: DataLoader[Any]) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        for x, y in train:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
            opt.step()
    return model


def _search(model: nn.Module, loaders: Any, **kw: Any) -> MixedPrecisionSearch:
    train, val = loaders
    options: dict[str, Any] = dict(
        train_loader=train,
        val_loader=val,
        input_shape=(1, 1, 8, 8),
        epochs=1,
        hessian_batches=1,
        hessian_samples=3,
    )
    options.update(kw)
    return MixedPrecisionSearch(model, **options)


def _weights(model: nn.Module) -> dict[str, int]:
    found = {}
    for name in LAYERS:
        weight = model.get_submodule(name).weight
        assert isinstance(weight, torch.Tensor)
        found[name] = int(weight.numel())
    return found


def test_search_on_a_user_model_returns_every_layer_and_builds_it(loaders: Any) -> None:
    base = _trained(ResidualNet(), loaders[0])
    full = _search(base, loaders).cost_model.baseline().size_mb
    limit = full / 2.5
    search = _search(base, loaders, limits=HardwareLimits(size_mb=limit), seed=0)
    assert search.layers == tuple(LAYERS)
    study = optuna.create_study(direction="maximize", sampler=KMeansTPESampler(seed=0))
    search.optimize(study, n_trials=4)
    assert len(study.trials) == 4
    best = search.best(study)
    assert list(best.bits) == LAYERS and list(best.widths) == LAYERS
    assert all(isinstance(b, int) for b in best.bits.values())
    assert best.size_mb <= limit and 0.0 <= best.accuracy <= 1.0 and best.speedup > 1.0
    # Grouped conv and its input keep width 1 (documented rule); conv_a's width is searched.
    assert best.widths["grouped"] == best.widths["stem"] == 1.0
    assert "width/conv_a" in best.params
    qmodel = search.build(best)
    assert qmodel(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert all(isinstance(qmodel.get_submodule(n), QuantConv2d | QuantLinear) for n in LAYERS), (
        qmodel
    )
    # The built model is what the cost model priced: same weights per layer, same size.
    bits = {n: int(b or 16) for n, b in best.bits.items()}
    report = search.cost_model.evaluate(list(bits.values()), list(best.widths.values()))
    assert _weights(qmodel) == {n: int(v) for n, v in report.layers["weights"].items()}
    size = sum(w * bits[n] for n, w in _weights(qmodel).items()) / 8 / 1e6
    assert size == pytest.approx(best.size_mb) and size <= limit
    # The user's model is untouched and the study holds the record.
    assert not any(isinstance(m, QuantConv2d) for m in base.modules())
    assert "kmtpe:space" in study.user_attrs


def test_layer_choices_float_fixed_and_restricted(loaders: Any) -> None:
    base = _trained(ResidualNet(), loaders[0])
    search = _search(
        base,
        loaders,
        layer_choices={
            "stem": 8,
            "head": 8,
            "grouped": "float",
            "conv_b": [4, 6],
            "conv_a": LayerChoice(widths=[1.0, 1.25]),
        },
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    search.optimize(study, n_trials=3)
    best = search.best(study)
    assert best.bits["stem"] == best.bits["head"] == 8
    assert best.bits["grouped"] is None and best.bits["conv_b"] in (4, 6)
    assert best.widths["conv_a"] in (1.0, 1.25)
    assert "bits/grouped" not in best.params
    qmodel = search.build(best)
    assert type(qmodel.get_submodule("grouped")) is nn.Conv2d  # kept in float
    assert qmodel(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_bits_only_search_on_a_model_with_data_dependent_control_flow(loaders: Any) -> None:
    base = _trained(BranchyNet(), loaders[0])
    with pytest.raises(ValueError, match="search_widths=False"):
        _search(base, loaders)
    search = _search(base, loaders, search_widths=False, limits=HardwareLimits(size_mb=0.01))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    search.optimize(study, n_trials=3)
    best = search.best(study)
    assert list(best.bits) == ["conv", "fc"] and set(best.widths.values()) == {1.0}
    assert not any(k.startswith("width/") for k in best.params)
    assert search.build(best)(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize(
    ("model", "kw", "error", "message"),
    [
        (nn.Sequential(nn.Flatten(), nn.ReLU()), {}, ValueError, "no quantisable layer"),
        (
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 3)),
            {},
            ValueError,
            "Layer '1' is a ConvTranspose2d",
        ),
        (None, {"input_shape": (1, 3, 32, 32)}, ValueError, "cannot take an input of shape"),
        (None, {"input_shape": (8, 8)}, ValueError, "cannot take an input"),
        (None, {"input_shape": (1, 1, 0)}, ValueError, "as positive integers"),
        (None, {"layer_choices": {"fc9": 8}}, ValueError, r"names \['fc9'\].*stem, conv_a"),
        (None, {"layer_choices": {"stem": 5}}, ValueError, "Layer 'stem': bits"),
        (None, {"layer_choices": {"stem": "fp32"}}, ValueError, "only string choice"),
        (
            None,
            {"layer_choices": {"conv_b": LayerChoice(widths=[0.5])}},
            ValueError,
            "does not set its own width",
        ),
        (
            None,
            {"limits": HardwareLimits(size_mb=1e-6)},
            ValueError,
            "No configuration in the search space meets size_mb.*best reachable",
        ),
        (None, {"train_loader": None}, ValueError, "`train_loader` is required"),
        (None, {"epochs": -1}, ValueError, "`epochs` must be an integer >= 0"),
        (None, {"objective": "max"}, ValueError, "`objective` must be one of"),
        (None, {"limits": 0.01}, TypeError, "must be a HardwareLimits"),
        ("not a model", {}, TypeError, "must be a torch.nn.Module"),
    ],
)
def test_bad_input_is_refused_in_the_constructor(
    loaders: Any, model: Any, kw: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _search(ResidualNet() if model is None else model, loaders, **kw)


def test_a_study_with_wrong_directions_is_refused(loaders: Any) -> None:
    search = _search(ResidualNet(), loaders)
    with pytest.raises(ValueError, match="needs a study with directions"):
        search.optimize(optuna.create_study(direction="minimize"), n_trials=1)


def test_best_without_a_feasible_trial_says_so(loaders: Any) -> None:
    search = _search(ResidualNet(), loaders)
    with pytest.raises(ValueError, match="No configuration met the limits in the 0 completed"):
        search.best(optuna.create_study(direction="maximize"))


class _SamePoint(optuna.samplers.BaseSampler):
    """Always proposes the first choice of every parameter."""

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return {}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        assert isinstance(param_distribution, optuna.distributions.CategoricalDistribution)
        return param_distribution.choices[0]


def _counting(search: MixedPrecisionSearch) -> list[int]:
    calls: list[int] = []
    inner = search._train_fn

    def train_fn(model: nn.Module, *, epochs: int, seed: int) -> None:
        calls.append(seed)
        inner(model, epochs=epochs, seed=seed)

    search._train_fn = train_fn
    return calls


def test_a_repeated_configuration_is_reused_not_trained(loaders: Any) -> None:
    search = _search(_trained(ResidualNet(), loaders[0]), loaders, objective="constraints")
    calls = _counting(search)
    study = optuna.create_study(direction="maximize", sampler=_SamePoint())
    search.optimize(study, n_trials=3, warm_start=False)  # one point three times
    first = study.trials[0]
    study.enqueue_trial(first.params)  # an enqueued repeat
    search.optimize(study, n_trials=1, warm_start=False)
    assert len(calls) == 1 and [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    for t in study.trials[1:]:
        assert t.user_attrs["reused_from_trial"] == 0
        assert t.value == first.value and t.constraints == first.constraints
        assert t.user_attrs["accuracy"] == first.user_attrs["accuracy"]
    assert "reused_from_trial" not in first.user_attrs
    # Without reuse every trial trains.
    again = _search(search._model, loaders, reuse_repeats=False)
    calls = _counting(again)
    again.optimize(
        optuna.create_study(direction="maximize", sampler=_SamePoint()),
        n_trials=2,
        warm_start=False,
    )
    assert len(calls) == 2


def test_docstring_example_runs() -> None:
    from tests.test_docstring_examples import _testcode_blocks

    blocks = _testcode_blocks(MixedPrecisionSearch.__doc__ or "")
    assert blocks
    for block in blocks:
        exec(compile(block, "<MixedPrecisionSearch docstring>", "exec"), {})
