"""One ``input_shape`` convention: one input's shape; a leading batch dimension of 1 accepted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optuna_kmtpe import DSPPackingModel
from optuna_kmtpe._compress.shapes import one_input_shape


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


@pytest.mark.parametrize("given", [(1, 8, 8), (1, 1, 8, 8), [1, 8, 8], torch.Size([1, 1, 8, 8])])
def test_both_readings_give_one_input(given: tuple[int, ...]) -> None:
    assert one_input_shape(_net(), given) == (1, 8, 8)


def test_the_cost_model_prices_both_readings_alike() -> None:
    a = DSPPackingModel(_net(), (1, 8, 8)).evaluate(4)
    b = DSPPackingModel(_net(), (1, 1, 8, 8)).evaluate(4)
    assert (a.size_mb, a.latency_ms, a.energy_mj) == (b.size_mb, b.latency_ms, b.energy_mj)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ((8, 8), r"cannot take an input of shape \(8, 8\): a batch of shape \(2, 8, 8\) fails"),
        ((3, 8, 8), r"batch of shape \(2, 3, 8, 8\) fails"),
        ((1, 0, 8), "as positive integers"),
        ("1x8x8", "as positive integers"),
    ],
)
def test_a_shape_the_model_cannot_take_is_named(given: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        one_input_shape(_net(), given)  # type: ignore[arg-type]
