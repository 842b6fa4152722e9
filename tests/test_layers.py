"""One definition of a quantisable layer, shared by traces, bits, widths and cost."""

from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe import DSPPackingModel
from optuna_kmtpe import hessian_traces
from optuna_kmtpe._compress.layers import quantisable_layers
from optuna_kmtpe._compress.layers import UnsupportedLayerError
from optuna_kmtpe._compress.quant import QuantConv1d
from optuna_kmtpe._compress.quant import quantize_model
from optuna_kmtpe._compress.quant import quantized_layers
from optuna_kmtpe._compress.widths import plan_widths


class _Signal(nn.Module):
    """A 1-D CNN: plain, grouped and depthwise Conv1d, BatchNorm1d and a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.grouped = nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.dw = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8 * 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = F.relu(self.dw(self.grouped(x)))
        return self.fc(x.flatten(1))


def test_conv1d_model_traces_bits_and_cost_rows_agree() -> None:
    torch.manual_seed(0)
    net = _Signal()
    names = list(quantisable_layers(net))
    assert names == ["conv", "grouped", "dw", "fc"]
    data = [(torch.randn(16, 2, 16), torch.randint(0, 3, (16,)))]
    traces = hessian_traces(net, F.cross_entropy, data, max_samples=5, seed=0, progress=False)
    assert list(traces) == names
    assert quantized_layers(net) == names
    cost = DSPPackingModel(net, (2, 16))
    assert list(cost.layer_names) == names
    table = cost.evaluate(8).layers
    assert list(table.index) == names
    # Conv1d rows: kernel 3, 16 positions, the groups as built.
    row = table.loc["grouped"]
    assert (row["kernel"], row["out_pixels"], row["groups"]) == (3, 16, 2)
    assert row["weights"] == net.grouped.weight.numel()
    q = quantize_model(net, [8, 4, 4, 8])
    assert isinstance(q.get_submodule("conv"), QuantConv1d)
    assert q(torch.randn(4, 2, 16)).shape == (4, 3)
    assert plan_widths(net, 2).names == tuple(names)


def test_size_counts_every_quantisable_weight() -> None:
    net = _Signal()
    n_weights = sum(
        int(p.numel()) for n, p in net.named_parameters() if n.endswith("weight") and "bn" not in n
    )
    assert DSPPackingModel(net, (2, 16)).evaluate(8).size_bytes == n_weights


def test_unsupported_layer_is_named_everywhere() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 3), nn.Flatten())
    for call in (
        lambda: quantisable_layers(net),
        lambda: quantize_model(net, 8),
        lambda: DSPPackingModel(net, (1, 6, 6)),
        lambda: hessian_traces(net, lambda o, t: o.sum(), [(torch.zeros(1, 1, 6, 6), 0)]),
    ):
        with pytest.raises(UnsupportedLayerError, match="Layer '1' is a ConvTranspose2d"):
            call()


def test_no_quantisable_layer() -> None:
    with pytest.raises(ValueError, match="no quantisable layer"):
        quantisable_layers(nn.Sequential(nn.ReLU()))
    assert quantisable_layers(nn.Sequential(nn.ReLU()), allow_empty=True) == {}
