"""Raw pixels as the QONNX graph input: an unsigned 8-bit ``Quant``, then the normalisation.

FINN's hardware flow reads integer pixels. With a :class:`PixelInput` the QONNX export's graph
input is the raw pixel tensor (float container, integer values ``0..2**bits - 1``), read by
``Quant(scale 1, zero point 0, bits, signed 0, narrow 0)`` and normalised in the graph as the
training code does (``DataSplits.prepare``): ``Mul(scale) -> Sub(mean) -> Div(std)``, per
channel. The graph input is annotated with qonnx's datatype ``UINT<bits>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Protocol
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from optuna_kmtpe._export._layers import _QuantFn
from optuna_kmtpe._export._layers import ExportError
from optuna_kmtpe._export._layers import QuantSpec


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence


class _Normalised(Protocol):
    """What :meth:`PixelInput.of` reads (e.g. ``optuna_kmtpe._zoo.data.DataSplits``)."""

    @property
    def scale(self) -> float: ...

    @property
    def mean(self) -> Sequence[float]: ...

    @property
    def std(self) -> Sequence[float]: ...


@dataclass(frozen=True)
class PixelInput:
    """The raw pixels a model's normalised input ``(pixels * scale - mean) / std`` comes from.

    Attributes:
        scale: Factor that maps raw pixels to [0, 1] (``1/255``, ``1/16`` for digits).
        mean: Per-channel mean subtracted after ``scale``.
        std: Per-channel standard deviation divided by after the mean.
        bits: Bit-width of the unsigned pixel ``Quant`` (pixels ``0..2**bits - 1``).
    """

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bits: int = 8

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ExportError(
                f"PixelInput needs one mean and one std per channel, got {self.mean=}, "
                f"{self.std=}."
            )
        if not 1 <= self.bits <= 8:
            raise ExportError(f"PixelInput bits must be in 1..8, got {self.bits}.")

    @classmethod
    def of(cls, data: _Normalised) -> PixelInput:
        """The pixel input of a dataset (its ``scale``, ``mean`` and ``std``)."""
        return cls(float(data.scale), tuple(data.mean), tuple(data.std))

    def wrap(
        self, net: nn.Module, emit: Callable[[Any, Any, QuantSpec], Any] | None = None
    ) -> nn.Module:
        """``net`` behind the pixel quantiser and the normalisation (``emit`` writes the
        ``Quant`` node when traced for export; ``None`` for PyTorch use only)."""
        return _PixelModel(self, net, emit)


def _unused_emit(g: Any, x: Any, spec: QuantSpec) -> Any:
    raise ExportError("PixelInput.wrap(net) without emit cannot be exported.")


class _PixelModel(nn.Module):
    def __init__(
        self, pixels: PixelInput, net: nn.Module, emit: Callable[..., Any] | None
    ) -> None:
        super().__init__()
        self.net = net
        self.spec = QuantSpec(
            "pixels",
            "input",
            pixels.bits,
            np.asarray(1.0, dtype=np.float32),
            0,
            signed=False,
            narrow=False,
            emit=emit or _unused_emit,
        )
        self.scale = float(pixels.scale)
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(pixels.mean).reshape(shape), persistent=False)
        self.register_buffer("std", torch.tensor(pixels.std).reshape(shape), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = _QuantFn.apply(pixels, self.spec) * self.scale
        return self.net((x - self.mean) / self.std)


def annotate_input(model: Any, pixels: PixelInput) -> None:
    """Annotate the graph input of a qonnx ``ModelWrapper`` as ``UINT<bits>`` (in place)."""
    from qonnx.core.datatype import DataType

    model.set_tensor_datatype(model.graph.input[0].name, DataType[f"UINT{pixels.bits}"])
