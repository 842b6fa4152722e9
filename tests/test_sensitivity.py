from __future__ import annotations

import math
from typing import Any
from typing import Literal
import weakref

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
import torch.nn.functional as F

from optuna_kmtpe import hessian_traces
from optuna_kmtpe import TraceEstimate


torch.set_num_threads(1)


class _SmallNet(nn.Module):
    """Conv + BatchNorm + Linear: three weights with nonzero, non-diagonal Hessian blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.body = nn.Sequential(nn.Linear(12, 6), nn.Tanh())
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.bn(self.conv(x)))
        x = F.avg_pool2d(x, 2).flatten(1)
        return self.head(self.body(x))


def _model_and_data(
    n_batches: int = 1,
) -> tuple[_SmallNet, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = _SmallNet()
    assert model.bn.running_mean is not None and model.bn.running_var is not None
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode matters
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    data = [(torch.randn(16, 2, 6, 6), torch.randint(0, 3, (16,))) for _ in range(n_batches)]
    return model, data


def _exact_traces(
    model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Exact tr(H_ll) per weight (mean over batches) with torch.autograd.functional.hessian."""
    model.eval()
    params = dict(model.named_parameters())
    out = {}
    for name in ("conv", "body.0", "head"):
        key = f"{name}.weight"
        traces = []
        for x, y in data:

            def loss_of(w: torch.Tensor, x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
                return F.cross_entropy(functional_call(model, {**params, key: w}, (x,)), y)

            w = params[key].detach()
            h = torch.autograd.functional.hessian(loss_of, w)  # type: ignore[no-untyped-call]
            h = h.reshape(w.numel(), w.numel())
            traces.append(float(torch.diagonal(h).sum()))
        out[name] = float(np.mean(traces))
    model.train()
    return out


def test_estimates_match_exact_hessian_within_stderr() -> None:
    model, data = _model_and_data()
    exact = _exact_traces(model, data)
    traces = hessian_traces(model, F.cross_entropy, data, rtol=0.05, max_samples=400, seed=1)
    assert list(traces) == ["conv", "body.0", "head"]
    for name, est in traces.items():
        assert isinstance(est, TraceEstimate)
        assert est.numel == dict(model.named_modules())[name].weight.numel()
        assert est.normalized == pytest.approx(est.trace / est.numel)
        assert est.rel_stderr <= 0.05 or est.n_samples == 400
        assert abs(est.trace - exact[name]) <= 4 * est.stderr, (name, est, exact[name])


@pytest.mark.parametrize("method", ["layerwise", "whole"])
def test_reference_methods_are_unbiased(method: Literal["layerwise", "whole"]) -> None:
    model, data = _model_and_data()
    exact = _exact_traces(model, data)
    traces = hessian_traces(
        model, F.cross_entropy, data, rtol=0.0, max_samples=150, seed=2, method=method
    )
    for name, est in traces.items():
        assert est.n_samples == 150
        assert abs(est.trace - exact[name]) <= 4 * est.stderr, (name, est, exact[name])


def test_stderr_is_honest_over_seeds() -> None:
    # Fixed sample size (rtol=0): |error| <= 1 s.e. about 67% of the time and <= 2 s.e.
    # about 94% (Student t, 19 d.o.f.). 40 seeds x 3 layers = 120 checks; bounds at ~4 sigma.
    model, data = _model_and_data()
    exact = _exact_traces(model, data)
    z = []
    for seed in range(40):
        traces = hessian_traces(
            model, F.cross_entropy, data, rtol=0.0, max_samples=20, seed=seed, progress=False
        )
        z += [(est.trace - exact[name]) / est.stderr for name, est in traces.items()]
    z_abs = np.abs(z)
    assert 0.45 <= np.mean(z_abs <= 1.0) <= 0.85
    assert np.mean(z_abs <= 2.0) >= 0.82


def test_several_batches_estimate_the_mean_trace() -> None:
    model, data = _model_and_data(n_batches=3)
    exact = _exact_traces(model, data)
    traces = hessian_traces(model, F.cross_entropy, data, rtol=0.05, max_samples=600, seed=3)
    for name, est in traces.items():
        assert abs(est.trace - exact[name]) <= 4 * est.stderr, (name, est, exact[name])


def test_adaptive_stops_layers_separately_and_is_reproducible() -> None:
    model, data = _model_and_data()
    a = hessian_traces(model, F.cross_entropy, data, rtol=0.1, max_samples=300, seed=5)
    b = hessian_traces(model, F.cross_entropy, data, rtol=0.1, max_samples=300, seed=5)
    assert a == b
    counts = {name: est.n_samples for name, est in a.items()}
    assert len(set(counts.values())) > 1, counts  # precise layers stopped earlier
    assert min(counts.values()) < 50, counts
    for est in a.values():
        assert est.n_samples >= 5
        assert est.rel_stderr <= 0.1 or est.n_samples == 300
    c = hessian_traces(model, F.cross_entropy, data, rtol=0.1, max_samples=7, seed=5)
    assert all(est.n_samples <= 7 for est in c.values())


def test_modes_flags_and_statistics_restored() -> None:
    model, data = _model_and_data()
    model.train()
    model.body.eval()
    model.head.weight.requires_grad_(False)
    assert model.bn.running_mean is not None
    bn_mean = model.bn.running_mean.clone()
    traces = hessian_traces(model, F.cross_entropy, data, max_samples=5, seed=0)
    assert model.training and model.conv.training and not model.body.training
    assert not model.head.weight.requires_grad and model.conv.weight.requires_grad
    assert torch.equal(model.bn.running_mean, bn_mean)  # BatchNorm was frozen
    assert model.conv.weight.grad is None
    assert traces["head"].n_samples == 5  # frozen weights still get a trace


class _Tracked(torch.autograd.Function):
    """Identity whose graph node (ctx) we can watch with a weak reference."""

    alive: list[weakref.ref[Any]] = []

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        _Tracked.alive.append(weakref.ref(ctx))
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


def test_one_graph_alive_at_a_time() -> None:
    model, data = _model_and_data(n_batches=3)
    live_counts = []

    def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        live_counts.append(sum(r() is not None for r in _Tracked.alive))
        return F.cross_entropy(_Tracked.apply(outputs), targets)

    _Tracked.alive.clear()
    hessian_traces(model, loss_fn, data, max_samples=6, seed=0)
    assert len(live_counts) >= 3
    assert max(live_counts) == 0  # the previous batch's graph was freed before the next
    assert all(r() is None for r in _Tracked.alive)


def test_bad_inputs() -> None:
    model, data = _model_and_data()
    with pytest.raises(ValueError, match="no Conv / Linear"):
        hessian_traces(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), F.cross_entropy, data)
    with pytest.raises(ValueError, match="batches is empty"):
        hessian_traces(model, F.cross_entropy, [])
    with pytest.raises(ValueError, match="scalar"):
        hessian_traces(model, lambda o, t: F.cross_entropy(o, t, reduction="none"), data)

    def nan_curvature(o: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(o, t) + 0 * (o - o.detach()).abs().sqrt().sum()

    with pytest.raises(ValueError, match="Hessian-vector product of layer .* nan"):
        hessian_traces(model, nan_curvature, data)
    with pytest.raises(ValueError, match="loss on batch 0 is nan"):
        hessian_traces(model, lambda o, t: F.cross_entropy(o, t) * math.nan, data)
    with pytest.raises(ValueError, match="not an \\(inputs, targets\\) pair"):
        hessian_traces(model, F.cross_entropy, [torch.randn(4, 2, 6, 6)])
    with pytest.raises(ValueError, match="method"):
        hessian_traces(model, F.cross_entropy, data, method="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_samples"):
        hessian_traces(model, F.cross_entropy, data, min_samples=1)
    assert model.training  # restored after an error too


def test_time_limit_returns_partial_estimates() -> None:
    model, data = _model_and_data()
    traces = hessian_traces(
        model, F.cross_entropy, data, rtol=0.0, max_samples=10**6, time_limit=0.3, seed=0
    )
    assert all(1 <= est.n_samples < 10**6 for est in traces.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_exact_and_frees_memory() -> None:
    model, data = _model_and_data()
    exact = _exact_traces(model, data)
    model = model.cuda()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    traces = hessian_traces(model, F.cross_entropy, data, rtol=0.05, max_samples=400, seed=1)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
    for name, est in traces.items():
        assert abs(est.trace - exact[name]) <= 4 * est.stderr
