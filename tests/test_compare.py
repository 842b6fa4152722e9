"""Baselines through the API, choosing under noise, and ``kmtpe compare`` end to end."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
import json
from pathlib import Path
import re
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
import pytest
from sklearn.datasets import load_digits
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

from optuna_kmtpe import DSPPackingModel
from optuna_kmtpe import HardwareLimits
from optuna_kmtpe import MixedPrecisionSearch
from optuna_kmtpe import MixedPrecisionSpace
from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._runs.compare_run import CompareConfig
from optuna_kmtpe._runs.compare_run import run_compare
from optuna_kmtpe._runs.zoo import SearchError
from optuna_kmtpe._search.selection import rescore_top
from optuna_kmtpe.cli import main


torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@pytest.fixture(scope="module")
def search_parts() -> tuple[nn.Module, DataLoader[Any], DataLoader[Any]]:
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=64, shuffle=True, generator=g)
    val = DataLoader(TensorDataset(x[1400:1528], y[1400:1528]), batch_size=128)
    torch.manual_seed(0)
    model = _Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for xb, yb in train:
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model, train, val


def _search(parts: Any, avg_bits: float, **kw: Any) -> MixedPrecisionSearch:
    model, train, val = parts
    limit = DSPPackingModel(model, (1, 8, 8)).baseline().size_mb * avg_bits / 16
    return MixedPrecisionSearch(
        model,
        train_loader=train,
        val_loader=val,
        input_shape=(1, 1, 8, 8),
        limits=HardwareLimits(size_mb=limit),
        epochs=1,
        hessian_batches=1,
        hessian_samples=3,
        **kw,
    )


def test_baselines_meet_the_limits_and_build(search_parts: Any) -> None:
    search = _search(search_parts, 3.0)
    limit = search.limits.size_mb
    assert limit is not None
    for method in ("uniform", "ilp", "greedy"):
        result = search.baseline(method)
        assert result.size_mb <= limit * (1 + 1e-12)
        assert list(result.bits) == list(search.layers)
        net = search.build(result.params)
        assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
        if method == "uniform":
            assert len({b for b in result.bits.values()}) == 1
            assert result.epochs_spent == len(result.candidates) >= 1
            assert result.val_accuracy == max(c["val_accuracy"] for c in result.candidates)
        else:
            assert result.epochs_spent == 0 and result.omega > 0
            assert set(result.widths.values()) == {1.0}
    with pytest.raises(ValueError, match="Unknown baseline 'hawq'; choose from uniform"):
        search.baseline("hawq")


def test_the_ilp_respects_fixed_layers(search_parts: Any) -> None:
    search = _search(search_parts, 6.0, layer_choices={"conv1": 8, "fc": "float"})
    result = search.baseline("ilp")
    assert result.bits["conv1"] == 8 and result.bits["fc"] is None
    assert "bits/fc" not in result.params


def test_baselines_need_traces(search_parts: Any) -> None:
    search = _search(search_parts, 3.0)
    hand_made = MixedPrecisionSpace(search.space.layers, search.space.bits, {})
    bare = _search(search_parts, 3.0, space=hand_made)
    with pytest.raises(ValueError, match="need the Hessian traces"):
        bare.baseline("ilp")


@dataclass
class _FakeBuilder:
    plan: None = None

    def build(self, bits: dict[str, int | None], widths: Any = None) -> nn.Module:
        net = nn.Identity()
        net.bits = bits["a"]  # type: ignore[assignment]
        return net


@dataclass
class _FakeObjective:
    """Configuration a: lucky once (0.99), 0.90 on fresh seeds; b: a steady 0.97."""

    builder: _FakeBuilder = field(default_factory=_FakeBuilder)
    epochs: int = 3
    seed: int = 0
    seeds: list[int] = field(default_factory=list)

    def configuration(self, params: dict[str, Any]) -> tuple[dict[str, int | None], list[float]]:
        return {"a": int(params["bits/a"])}, [1.0]

    def train_fn(self, model: nn.Module, *, epochs: int, seed: int) -> None:
        self.seeds.append(seed)

    def eval_fn(self, model: nn.Module) -> float:
        return 0.90 if model.bits == 8 else 0.97  # type: ignore[comparison-overlap]


def test_rescoring_does_not_choose_the_luckiest_trial() -> None:
    study = optuna.create_study(direction="maximize")
    dist: dict[str, BaseDistribution] = {"bits/a": CategoricalDistribution([8, 4, 2])}
    for bits, acc in ((8, 0.99), (4, 0.97), (2, 0.5)):
        attrs = {"feasible": True, "trained": True, "accuracy": acc, "size_mb": 1.0 * bits}
        study.add_trial(
            optuna.trial.create_trial(
                params={"bits/a": bits}, distributions=dist, value=acc, user_attrs=attrs
            )
        )
    fake = _FakeObjective()
    ranked = rescore_top(study, fake, top=2, repeats=2)  # type: ignore[arg-type]
    assert [r.trial for r in ranked] == [1, 0]
    assert ranked[0].mean == pytest.approx(0.97) and ranked[1].mean == pytest.approx(0.93)
    assert len(fake.seeds) == 4 and all(s >= 100_000 for s in fake.seeds)
    with pytest.raises(ValueError, match="must be >= 1"):
        rescore_top(study, fake, top=0)  # type: ignore[arg-type]


class _DivergingObjective(_FakeObjective):
    def train_fn(self, model: nn.Module, *, epochs: int, seed: int) -> None:
        if model.bits == 8:  # type: ignore[comparison-overlap]
            raise DivergenceError("Training loss became nan")


def test_a_diverging_rescore_is_left_out() -> None:
    study = optuna.create_study(direction="maximize")
    dist: dict[str, BaseDistribution] = {"bits/a": CategoricalDistribution([8, 4])}
    for bits, acc in ((8, 0.99), (4, 0.97)):
        attrs = {"feasible": True, "trained": True, "accuracy": acc, "size_mb": 1.0 * bits}
        study.add_trial(
            optuna.trial.create_trial(
                params={"bits/a": bits}, distributions=dist, value=acc, user_attrs=attrs
            )
        )
    ranked = rescore_top(study, _DivergingObjective(), top=2, repeats=1)  # type: ignore[arg-type]
    assert [r.trial for r in ranked] == [1]


TINY = [
    "--dataset", "digits", "--trials", "4", "--startup", "2", "--seeds", "2", "--epochs", "1",
    "--base-epochs", "1", "--final-epochs", "1", "--rescore", "2", "--rescore-repeats", "1",
    "--avg-bits", "3",
]  # fmt: skip


def test_compare_command_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    methods = "uniform,ilp,greedy,learned,random"
    assert main(["compare", *TINY, "--methods", methods, "--out", str(out), "--json"]) == 0
    summary = json.loads((out / "comparison.json").read_text())
    limit = summary["setting"]["limits"]["size_mb"]
    assert list(summary["methods"]) == ["uniform", "ilp", "greedy", "learned", "random"]
    for m, e in summary["methods"].items():
        assert len(e["bits"]) == 2 and e["seeds"] == [0, 1]
        assert e["size_mb"] <= limit * (1 + 1e-12)
        assert 0.0 <= e["test_accuracy"] <= 1.0 and e["speedup"] > 1.0
    assert summary["methods"]["random"]["search_epochs"] >= 2  # the re-scores at least
    assert {t["baseline"] for t in summary["tests"]} == {"uniform", "ilp", "greedy", "learned"}
    assert summary["methods"]["learned"]["search_epochs"] == 3  # 3 x --epochs 1
    learned = json.loads((out / "runs" / "learned-seed0.json").read_text())["learned"]
    assert learned["epochs"] == 3 and set(learned["rounded_bits"].values()) <= {8, 6, 4, 3, 2}
    for name in ("comparison.md", "comparison.png", "explored.csv", "setting.json"):
        assert (out / name).stat().st_size > 0
    assert "| ilp | 2 |" in (out / "comparison.md").read_text()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    seen: list[dict[str, Any]] = []
    cfg = CompareConfig(
        dataset="digits", methods=("ilp", "random"), trials=4, startup=2, seeds=2, epochs=1,
        base_epochs=1, final_epochs=1, rescore=2, rescore_repeats=1, avg_bits=3, out=str(out),
    )  # fmt: skip
    run_compare(cfg, on_run=seen.append)
    assert seen == []  # every run was there: nothing was run again
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == before
    # A resume with other options is refused before anything is written.
    setting = (out / "setting.json").read_text()
    with pytest.raises(SearchError, match="narrow: 'magnitude' there, 'first' now"):
        run_compare(replace(cfg, narrow="first"))
    assert (out / "setting.json").read_text() == setting
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "ilp,hawq"], "Unknown methods \\['hawq'\\]"),
        (["--avg-bits", "1"], "avg-bits. must be in \\[2, 16\\]"),
        (["--size-limit-mb", "1e-7", "--methods", "ilp"], "No configuration .* meets size_mb"),
    ],
)
def test_compare_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["compare", *TINY, *extra, "--out", str(tmp_path / "x")]) == 2
    assert re.search(message, capsys.readouterr().err)
