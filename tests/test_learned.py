"""The learned baseline: bit-widths learned by gradient under a resource penalty."""

from __future__ import annotations

from typing import Any

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
from optuna_kmtpe._compress.learned import CostSurrogate
from optuna_kmtpe._compress.learned import learn_bits
from optuna_kmtpe._compress.learned import learned_activation_quant
from optuna_kmtpe._compress.learned import learned_weight_quant
from optuna_kmtpe._compress.learned import project_bits
from optuna_kmtpe._compress.quant import fake_quantize_activation
from optuna_kmtpe._compress.quant import fake_quantize_weight


torch.set_num_threads(1)
B = (8, 6, 4, 3, 2)
COMPUTE_BOUND: dict[str, Any] = {"dram_gbps": None}


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
def parts() -> tuple[nn.Module, DataLoader[Any], DataLoader[Any]]:
    """A small CNN trained one epoch on 256 scikit-learn digits; 128 others validate."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    # Shuffled by torch's global RNG, which each training seeds: the same seed, the same order.
    train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[1400:1528], y[1400:1528]), batch_size=128)
    torch.manual_seed(0)
    model = _Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for xb, yb in train:
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model, train, val


def _search(parts: Any, limits: HardwareLimits) -> MixedPrecisionSearch:
    model, train, val = parts
    return MixedPrecisionSearch(
        model,
        train_loader=train,
        val_loader=val,
        input_shape=(1, 1, 8, 8),
        limits=limits,
        epochs=1,
        hessian_batches=1,
        hessian_samples=3,
        search_widths=False,
        hardware=COMPUTE_BOUND,
        layer_choices=dict.fromkeys(("conv1", "conv2", "fc"), list(B)),  # the full B
    )


def _fip16(parts: Any) -> Any:
    return DSPPackingModel(parts[0], (1, 8, 8), **COMPUTE_BOUND).baseline()


@pytest.mark.parametrize("limit", ["size", "latency"])
def test_learned_baseline_meets_the_limit_within_b(parts: Any, limit: str) -> None:
    fip16 = _fip16(parts)
    limits = (
        HardwareLimits(size_mb=fip16.size_mb * 3 / 16)
        if limit == "size"
        else HardwareLimits(latency_ms=fip16.latency_ms / 8)  # >= 8x faster than FiP16
    )
    search = _search(parts, limits)
    result = search.baseline("learned", epochs=3)
    assert result.method == "learned" and result.epochs_spent == 3
    assert result.learned["steps"] == 3 * 8  # one bit update per training batch
    assert set(result.bits.values()) <= set(B)
    assert set(result.widths.values()) == {1.0}
    report = search.cost_model.evaluate([b or 16 for b in result.bits.values()])
    assert report.size_mb == pytest.approx(result.size_mb)
    assert all(v <= 1e-12 for v in limits.violations(report).values())
    # The run moved the bits away from where they started (the uniform real budget), and the
    # tuned penalty kept the surrogate cost near the limit.
    learned = result.learned["learned_bits"]
    assert len({round(b, 3) for b in learned.values()}) == 3
    (relative,) = result.learned["relative_cost"].values()
    assert 0.8 <= relative <= 1.2
    net = search.build(result.params)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    # Deterministic: the same seed gives the same bits, to the last digit.
    again = search.baseline("learned", epochs=3)
    assert again.learned == result.learned and again.bits == result.bits


def test_the_penalty_is_the_cost_model_on_integer_bits() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
    cost = DSPPackingModel(net, (1, 8, 8), dram_gbps=None)
    surrogate = CostSurrogate(cost, {"0": B, "2": B})
    for b0 in B:
        for b2 in B:
            got = surrogate({"0": torch.tensor(float(b0)), "2": torch.tensor(float(b2))})
            exact = cost.evaluate([b0, b2])
            # By hand: 4*1*3*3 = 36 and 144*10 = 1440 weights at b bits, in MB.
            assert float(got["size_mb"]) == pytest.approx((36 * b0 + 1440 * b2) / 8 / 1e6)
            assert float(got["size_mb"]) == pytest.approx(exact.size_mb)
            # Cycles: exact at the packing hull's corners (2, 4, 8), never above elsewhere.
            if {b0, b2} <= {2, 4, 8}:
                assert float(got["cycles"]) == pytest.approx(exact.cycles)
            assert float(got["cycles"]) <= exact.cycles + 1e-9
    # 3 bits packs like 4 (6 products per DSP): the hull goes under it, with a slope.
    b = torch.tensor(3.0, requires_grad=True)
    cycles = surrogate({"0": b, "2": torch.tensor(8.0)})["cycles"]
    cycles.backward()  # type: ignore[no-untyped-call]
    assert b.grad is not None and float(b.grad) > 0


def test_the_quantisers_are_the_search_quantisers_at_integer_bits() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 3, 3, 3, generator=g)
    x = torch.randn(4, 3, 5, 5, generator=g)
    lo, hi = torch.tensor(-1.5), torch.tensor(2.0)
    for bits in B:
        b = torch.tensor(float(bits))
        assert torch.allclose(learned_weight_quant(w, b), fake_quantize_weight(w, bits), atol=1e-6)
        assert torch.allclose(
            learned_activation_quant(x, lo, hi, b),
            fake_quantize_activation(x, lo, hi, bits),
            atol=1e-6,
        )
    # The bit-width gets a gradient (through the step size), the weights a straight-through one.
    b = torch.tensor(3.3, requires_grad=True)
    wr = w.clone().requires_grad_(True)
    learned_weight_quant(wr, b).pow(2).sum().backward()  # type: ignore[no-untyped-call]
    assert b.grad is not None and float(b.grad) != 0.0
    assert wr.grad is not None and torch.isfinite(wr.grad).all()


def test_projection_rounds_then_repairs() -> None:
    cost = DSPPackingModel(nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 4)), (10,))
    allowed = {"0": B, "1": B}
    roomy = HardwareLimits(size_mb=cost.evaluate(8).size_mb)
    assert project_bits(cost, roomy, {"0": 5.2, "1": 6.9}, allowed).bits == {"0": 6, "1": 6}
    tight = HardwareLimits(size_mb=cost.evaluate([4, 4]).size_mb)
    found = project_bits(cost, tight, {"0": 5.2, "1": 7.9}, allowed)
    assert found.method == "learned" and found.report.size_mb <= tight.size_mb  # type: ignore[operator]
    assert found.bits["0"] <= 6 and found.bits["1"] <= 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "`epochs` of the learned bit-widths must be an integer >= 1, got 0"),
        ({"lr": -1.0}, "`lr` must be a finite number > 0, got -1.0"),
        ({"dual_rate": float("nan")}, "`dual_rate` must be a finite number > 0"),
        (
            {"allowed": {"fc": B}},
            "`allowed` names layers the cost model does not have: \\['fc'\\]",
        ),
        ({"allowed": {"0": (8, 5)}}, "Bit-widths \\[5\\] have no packing rule"),
        ({"allowed": {"0": (8, 1)}}, "must be integers in \\[2, 16\\], got \\[8, 1\\]"),
        ({"allowed": {}}, "`allowed` is empty"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    net = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 4))
    cost = DSPPackingModel(net, (10,))
    args: dict[str, Any] = {"epochs": 1, "allowed": {"0": B, "1": B}, **kwargs}
    with pytest.raises(ValueError, match=message):
        learn_bits(net, lambda *a, **k: None, cost, HardwareLimits(size_mb=1e-4), **args)


def test_baseline_epochs_only_for_learned(parts: Any) -> None:
    search = _search(parts, HardwareLimits(size_mb=_fip16(parts).size_mb * 4 / 16))
    with pytest.raises(ValueError, match="`epochs` applies to the learned baseline only"):
        search.baseline("ilp", epochs=2)
    with pytest.raises(ValueError, match="cannot meet the limits"):
        learn_bits(
            parts[0],
            lambda *a, **k: None,
            search.cost_model,
            HardwareLimits(size_mb=1e-9),
            {"conv1": B, "conv2": B, "fc": B},
            epochs=1,
        )


def test_learned_keeps_fixed_and_float_layers(parts: Any) -> None:
    model, train, val = parts
    limit = _fip16(parts).size_mb * 6 / 16
    search = MixedPrecisionSearch(
        model,
        train_loader=train,
        val_loader=val,
        input_shape=(1, 1, 8, 8),
        limits=HardwareLimits(size_mb=limit),
        epochs=1,
        hessian_batches=1,
        hessian_samples=3,
        search_widths=False,
        hardware=COMPUTE_BOUND,
        layer_choices={"conv1": 8, "fc": "float"},
    )
    result = search.baseline("learned", epochs=1)
    assert result.bits["conv1"] == 8 and result.bits["fc"] is None
    assert result.learned["learned_bits"]["conv1"] == 8.0  # fixed: never stepped
    assert "bits/fc" not in result.params and result.size_mb <= limit
