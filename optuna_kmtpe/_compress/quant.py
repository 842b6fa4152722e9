"""Fake-quantised Conv1d / Conv2d / Linear layers for quantisation-aware training (QAT).

One bit-width ``b`` per layer, shared by its weights and its input activations (paper section
III-A: "the same bit-width for weights and input activations ... for improved hardware
performance"). Everything else (BatchNorm, ReLU, pooling, residual additions) stays in float,
as in the usual fake-quantisation simulation of an integer accelerator.

Weights: symmetric, per output channel, narrow range. ``q = 2**(b-1) - 1``,
``scale_c = max|W_c| / q``, ``W_c -> clamp(round(W_c / scale_c), -q, q) * scale_c``.
So 2 bits is ternary ``{-s, 0, s}``, 3 bits uses ``-3..3``, 8 bits ``-127..127``. The scale
follows the current weights every step (no state), so no weight is ever clipped.

Input activations: affine, per tensor, ``2**b`` levels ``0 .. 2**b - 1`` over the range
``[min(lo, 0), max(hi, 0)]`` with ``scale = (hi - lo) / (2**b - 1)`` and zero point
``round(-lo / scale)`` (PyTorch's min/max observer scheme). After a ReLU ``lo = 0``, the zero
point is 0 and the activations are plain unsigned ``b``-bit integers; signed inputs (the
normalised image of the first layer, a residual sum) get an asymmetric range with zero
inside it. The range ``[lo, hi]`` is *calibrated*, not learned: in training mode it is an
exponential moving average (constant :data:`EMA_DECAY`) of each batch's min / max,
initialised by the first batch; in eval mode it is frozen (a module that has never seen data
calibrates on its first eval batch instead). An LSQ-style learned scale was measured slower
(ResNet-20 training step 1.57x float vs 1.42x, see ``docs/search.md``).

Gradients pass straight through both rounding steps (``torch.fake_quantize_per_channel_affine``
and ``torch.fake_quantize_per_tensor_affine`` implement the STE: gradient 1 inside the
clamping range, 0 outside).

Example:
    >>> import torch
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8])
    >>> [m.bits for m in net.modules() if isinstance(m, QuantConv2d | QuantLinear)]
    [8, 4, 3, 8]
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import copy
from typing import TypeVar

import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.layers import quantisable_layers


__all__ = [
    "EMA_DECAY",
    "QuantConv1d",
    "QuantConv2d",
    "QuantLinear",
    "activation_qparams",
    "fake_quantize_activation",
    "fake_quantize_weight",
    "quantize_model",
    "quantized_layers",
]

#: Weight of the newest batch in the moving average of the activation range.
EMA_DECAY = 0.1
#: Bit-widths a layer may use (1 bit has no symmetric narrow range).
MIN_BITS, MAX_BITS = 2, 16


def _check_bits(bits: int, where: str = "") -> int:
    if isinstance(bits, bool) or int(bits) != bits or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(
            f"Bit-width must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}{where}."
        )
    return int(bits)


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel fake quantisation with straight-through gradients.

    Example:
        >>> w = torch.tensor([[1.0, -0.4, 0.2], [0.3, 0.0, -0.15]])
        >>> (fake_quantize_weight(w, 2) + 0.0).tolist()  # ternary: scale = max |w| per row
        [[1.0, 0.0, 0.0], [0.30000001192092896, 0.0, 0.0]]
    """
    qmax = 2 ** (_check_bits(bits) - 1) - 1
    amax = weight.detach().abs().flatten(1).amax(dim=1)
    scale = torch.clamp(amax / qmax, min=torch.finfo(torch.float32).tiny).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -qmax, qmax)


def activation_qparams(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """Scale and zero point of the affine ``bits``-bit grid that covers ``[lo, hi]`` and 0.

    Example:
        >>> activation_qparams(0.0, 3.0, 2)  # unsigned after ReLU: levels 0, 1, 2, 3
        (1.0, 0)
        >>> activation_qparams(-1.0, 2.0, 2)  # signed input: zero point 1
        (1.0, 1)
    """
    scale, zero_point = _qparams(torch.tensor(float(lo)), torch.tensor(float(hi)), bits)
    return float(scale), int(zero_point)


def _qparams(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor version of :func:`activation_qparams` (no host-device synchronisation)."""
    levels = 2 ** _check_bits(bits) - 1
    lo = torch.clamp(lo.float(), max=0.0)
    hi = torch.clamp(hi.float(), min=0.0)
    width = hi - lo
    scale = torch.where(width > 0, width / levels, torch.ones_like(width))
    zero_point = torch.clamp(torch.round(-lo / scale), 0, levels).to(torch.int32)
    return scale.reshape(()), zero_point.reshape(())


def fake_quantize_activation(
    x: torch.Tensor, lo: float | torch.Tensor, hi: float | torch.Tensor, bits: int
) -> torch.Tensor:
    """Per-tensor affine fake quantisation of ``x`` to the ``bits``-bit grid of ``[lo, hi]``.

    Example:
        >>> fake_quantize_activation(torch.tensor([0.2, 1.6, 5.0]), 0.0, 3.0, 2)
        tensor([0., 2., 3.])
    """
    lo_t = torch.as_tensor(lo, device=x.device)
    hi_t = torch.as_tensor(hi, device=x.device)
    scale, zero_point = _qparams(lo_t, hi_t, bits)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 2**bits - 1)


class _ActRange(nn.Module):
    """Observed range of a layer's input: EMA while training, frozen in eval mode.

    The first batch seen (in either mode) initialises the range. Written without
    ``.item()`` so that it never synchronises with a GPU.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    lo: torch.Tensor
    hi: torch.Tensor
    initialised: torch.Tensor

    def update(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the range with ``x``; returns ``(lo, hi, guard)``.

        ``guard`` is 0, or NaN when ``x`` or the stored range holds NaN / inf: added to the
        layer's output it keeps a diverged network visibly NaN (``fake_quantize`` itself
        maps NaN to the zero point, which would hide it).
        """
        with torch.no_grad():
            lo, hi = torch.aminmax(x.detach())
            lo, hi = lo.float(), hi.float()
            guard = (lo + hi) * 0.0
            if self.training:
                self.lo.copy_(torch.where(self.initialised, self.lo.lerp(lo, EMA_DECAY), lo))
                self.hi.copy_(torch.where(self.initialised, self.hi.lerp(hi, EMA_DECAY), hi))
            else:
                self.lo.copy_(torch.where(self.initialised, self.lo, lo))
                self.hi.copy_(torch.where(self.initialised, self.hi, hi))
            self.initialised.fill_(True)
            guard = guard + (self.lo + self.hi) * 0.0
        return self.lo, self.hi, guard


class _QuantMixin:
    bits: int
    act_range: _ActRange

    def _init_quant(self, bits: int) -> None:
        self.bits = _check_bits(bits)
        self.act_range = _ActRange()

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi, guard = self.act_range.update(x)
        return fake_quantize_activation(x, lo, hi, self.bits) + guard


class _QuantConvMixin(_QuantMixin):
    """What the fake-quantised convolutions share; listed before the ``nn.ConvNd`` base."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, *args: object, bits: int = 8, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # the nn.ConvNd constructor, next in the MRO
        self._init_quant(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = fake_quantize_weight(self.weight, self.bits)
        return self._conv_forward(self._quant_input(x), w, self.bias)  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"  # type: ignore[misc]


class QuantConv2d(_QuantConvMixin, nn.Conv2d):
    """``nn.Conv2d`` with fake-quantised weights and input (see the module docstring)."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, bits: int) -> QuantConv2d:
        """A quantised copy of ``conv`` that shares nothing with it."""
        return _conv_from_float(cls, conv, bits)


class QuantConv1d(_QuantConvMixin, nn.Conv1d):
    """``nn.Conv1d`` with fake-quantised weights and input (see the module docstring)."""

    @classmethod
    def from_float(cls, conv: nn.Conv1d, bits: int) -> QuantConv1d:
        """A quantised copy of ``conv`` that shares nothing with it."""
        return _conv_from_float(cls, conv, bits)


_Q = TypeVar("_Q", QuantConv1d, QuantConv2d)


def _conv_from_float(cls: type[_Q], conv: nn.Conv1d | nn.Conv2d, bits: int) -> _Q:
    q = cls(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        bits=bits,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    q.load_state_dict(conv.state_dict(), strict=False)
    return q


class QuantLinear(nn.Linear, _QuantMixin):
    """``nn.Linear`` with fake-quantised weights and input (see the module docstring)."""

    def __init__(self, *args: object, bits: int = 8, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._init_quant(bits)

    @classmethod
    def from_float(cls, linear: nn.Linear, bits: int) -> QuantLinear:
        """A quantised copy of ``linear`` that shares nothing with it."""
        q = cls(
            linear.in_features, linear.out_features, bias=linear.bias is not None, bits=bits
        ).to(device=linear.weight.device, dtype=linear.weight.dtype)
        q.load_state_dict(linear.state_dict(), strict=False)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = fake_quantize_weight(self.weight, self.bits)
        return F.linear(self._quant_input(x), w, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"  # type: ignore[no-untyped-call]


def quantized_layers(model: nn.Module) -> list[str]:
    """Names of the quantisable layers (:mod:`optuna_kmtpe._compress.layers`: ``Conv1d``,
    ``Conv2d``, ``Linear``; quantised or not) in module order."""
    return list(quantisable_layers(model, allow_empty=True))


def quantize_model(
    model: nn.Module,
    bits: Mapping[str, int | None] | Sequence[int] | int,
    *,
    inplace: bool = False,
) -> nn.Module:
    """Replace every quantisable layer (``Conv1d`` / ``Conv2d`` / ``Linear``) by its
    fake-quantised version.

    Weights, biases and everything else are kept; the activation ranges start uncalibrated
    and calibrate on the first batch.

    Args:
        model: A float model (or an already quantised one, to change its bit-widths).
        bits: One bit-width for every layer, one per layer in :func:`quantized_layers`
            order, or a mapping ``layer name -> bits`` naming every layer (``None`` keeps
            that layer in float).
        inplace: Modify ``model`` instead of a deep copy.

    Returns:
        The quantised model.

    Raises:
        ValueError: Wrong number of bit-widths (the message lists the layers in order),
            unknown or missing layer names, or a bit-width outside [2, 16].
    """
    names = list(quantisable_layers(model))
    per_layer = _per_layer_bits(bits, names)
    if not inplace:
        model = copy.deepcopy(model)
    for name in names:
        layer = model.get_submodule(name)
        b = per_layer[name]
        new: nn.Module
        if isinstance(layer, _QuantMixin):
            if b is None:
                raise ValueError(
                    f"Layer {name!r} is already quantised; it cannot go back to float here."
                )
            layer.bits = b
            continue
        if b is None:  # kept in float on request
            continue
        if isinstance(layer, nn.Conv2d):
            new = QuantConv2d.from_float(layer, b)
        elif isinstance(layer, nn.Conv1d):
            new = QuantConv1d.from_float(layer, b)
        else:
            assert isinstance(layer, nn.Linear)
            new = QuantLinear.from_float(layer, b)
        new.train(layer.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def _per_layer_bits(
    bits: Mapping[str, int | None] | Sequence[int] | int, names: list[str]
) -> dict[str, int | None]:
    if isinstance(bits, Mapping):
        missing = [n for n in names if n not in bits]
        unknown = [n for n in bits if n not in names]
        if missing or unknown:
            raise ValueError(
                f"`bits` must name every Conv/Linear layer once; missing {missing}, unknown "
                f"{unknown}. Layers in order: {names}."
            )
        return {
            n: None if bits[n] is None else _check_bits(bits[n], f" for layer {n!r}")  # type: ignore[arg-type]
            for n in names
        }
    if isinstance(bits, int | float):  # bool included: rejected by _check_bits
        return {n: _check_bits(bits) for n in names}  # type: ignore[arg-type]
    seq = list(bits)
    if len(seq) == 1:
        seq = seq * len(names)
    if len(seq) != len(names):
        order = ", ".join(f"{i}:{n}" for i, n in enumerate(names))
        raise ValueError(
            f"`bits` has {len(seq)} entries but the model has {len(names)} Conv/Linear layers; "
            f"give one value (broadcast) or {len(names)} in this order: {order}."
        )
    return {n: _check_bits(b, f" for layer {n!r}") for n, b in zip(names, seq)}
