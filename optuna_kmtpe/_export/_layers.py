"""Read the quantisation of a fake-quantised model and build its export copy.

Everything the exported formats carry comes from here, so that QONNX, QCDQ and hls4ml see the
same numbers: per layer the searched bit-width, the per-output-channel weight scales
(``max|W_c| / (2**(b-1) - 1)``, zero point 0, narrow signed range) and the per-tensor input
scale and zero point of the frozen observer range
(:func:`optuna_kmtpe._compress.quant.activation_qparams`).

The export copy replaces each ``QuantConv2d`` / ``QuantLinear`` by a module that runs exactly the
same fake quantisation in PyTorch but, when traced by ``torch.onnx.export``, emits the target
format's quantisation nodes (a ``torch.autograd.Function`` with a ``symbolic`` method). Its
weight tensors hold the *fake-quantised* weights ``q * scale``: re-quantising them with the same
scale gives back ``q`` exactly, so the exported graph cannot differ from PyTorch by a rounding
tie in the weights, and a toolchain recovers the integer weights bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.quant import activation_qparams
from optuna_kmtpe._compress.quant import fake_quantize_weight
from optuna_kmtpe._compress.quant import QuantConv2d
from optuna_kmtpe._compress.quant import QuantLinear


if TYPE_CHECKING:
    from collections.abc import Callable


class ExportError(ValueError):
    """A model, layer or option that a format cannot express; the message names it."""


#: Modules the export copies as they are (no parameters to quantise, standard ONNX ops).
_PASS_THROUGH: tuple[type[nn.Module], ...] = (
    nn.BatchNorm2d,
    nn.BatchNorm1d,
    nn.ReLU,
    nn.ReLU6,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Sequential,
    nn.ModuleList,
)


@dataclass(frozen=True)
class LayerQuant:
    """The quantisation of one Conv/Linear layer, as the fake-quantised model applies it.

    Attributes:
        name: Module name (``model.named_modules()``).
        kind: ``"conv"`` or ``"linear"``.
        bits: Bit-width of the weights and of the input activations.
        weight_scale: Per-output-channel weight scales (float32), zero point 0.
        weight_int: The integer weights ``round(W / scale)`` in ``[-(2**(b-1)-1), 2**(b-1)-1]``.
        act_lo: Lower end of the frozen input range.
        act_hi: Upper end of the frozen input range.
        act_scale: Per-tensor input scale (float32 value).
        act_zero_point: Input zero point in ``[0, 2**b - 1]`` (unsigned ``b``-bit grid).
    """

    name: str
    kind: str
    bits: int
    weight_scale: np.ndarray
    weight_int: np.ndarray
    act_lo: float
    act_hi: float
    act_scale: float
    act_zero_point: int

    @property
    def weight_qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def act_qmax(self) -> int:
        return 2**self.bits - 1


def read_quantization(model: nn.Module) -> list[LayerQuant]:
    """Per-layer quantisation of a fake-quantised model, in module order.

    Raises:
        ExportError: A layer the formats cannot express (named, with its type), a Conv/Linear
            that is not fake-quantised, or a layer whose input range was never calibrated.

    Example:
        >>> from optuna_kmtpe._zoo.models import build_model
        >>> from optuna_kmtpe._compress.quant import quantize_model
        >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8]).eval()
        >>> _ = net(torch.randn(4, 1, 8, 8))
        >>> [(q.name, q.bits) for q in read_quantization(net)][:2]
        [('conv1', 8), ('conv2', 4)]
    """
    check_exportable(model)
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, QuantConv2d | QuantLinear):
            continue
        if not bool(m.act_range.initialised):
            raise ExportError(
                f"Layer {name!r} has never seen data, so its input range is not calibrated; "
                "run at least one batch through the model (train or eval mode) before export."
            )
        bits = int(m.bits)
        qmax = 2 ** (bits - 1) - 1
        w = m.weight.detach().float().cpu()
        amax = w.abs().flatten(1).amax(dim=1)
        scale = torch.clamp(amax / qmax, min=torch.finfo(torch.float32).tiny).float()
        shape = (-1,) + (1,) * (w.dim() - 1)
        w_int = torch.clamp(torch.round(w / scale.reshape(shape)), -qmax, qmax)
        # The integers must be those torch's fake quantisation uses (it multiplies by 1/scale).
        fq = fake_quantize_weight(w, bits)
        if not torch.equal(w_int * scale.reshape(shape), fq):
            w_int = torch.round(fq / scale.reshape(shape))
        lo, hi = float(m.act_range.lo), float(m.act_range.hi)
        a_scale, a_zp = activation_qparams(lo, hi, bits)
        out.append(
            LayerQuant(
                name=name,
                kind="conv" if isinstance(m, nn.Conv2d) else "linear",
                bits=bits,
                weight_scale=scale.numpy().astype(np.float32),
                weight_int=w_int.numpy().astype(np.int32),
                act_lo=lo,
                act_hi=hi,
                act_scale=a_scale,
                act_zero_point=a_zp,
            )
        )
    if not out:
        raise ExportError("The model has no fake-quantised layer; quantise it first.")
    return out


def check_exportable(model: nn.Module) -> None:
    """Raise :class:`ExportError` naming the first module that cannot be exported."""
    for name, m in model.named_modules():
        if isinstance(m, QuantConv2d) and m.padding_mode != "zeros":
            raise ExportError(
                f"Layer {name!r} uses padding_mode={m.padding_mode!r}; only zero padding "
                "has an ONNX Conv equivalent."
            )
        if name == "" or isinstance(m, (QuantConv2d, QuantLinear, *_PASS_THROUGH)):
            continue
        if isinstance(m, nn.Conv2d | nn.Linear):
            raise ExportError(
                f"Layer {name!r} ({type(m).__name__}) is not fake-quantised, so it has no "
                "bit-width to export; quantise every Conv2d/Linear with quantize_model()."
            )
        if isinstance(m, nn.modules.conv._ConvNd | nn.modules.batchnorm._NormBase):
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                continue
            raise ExportError(
                f"Layer {name!r} ({type(m).__name__}) is not supported by the export (only "
                "QuantConv2d and QuantLinear carry quantisation)."
            )
        if next(m.parameters(recurse=False), None) is not None:
            raise ExportError(
                f"Layer {name!r} ({type(m).__name__}) has parameters but is neither a "
                "quantised Conv2d/Linear nor a BatchNorm; the export cannot express it."
            )


@dataclass(frozen=True, eq=False)
class QuantSpec:
    """One quantiser of the export graph: ``emit(g, x, spec)`` writes its ONNX nodes."""

    layer: str
    role: str  # "weight" or "input"
    bits: int
    scale: np.ndarray  # float32: shape () per tensor, (C, 1, ...) per output channel
    zero_point: int
    signed: bool
    narrow: bool
    emit: Callable[[Any, Any, QuantSpec], Any]

    def fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        if self.signed:
            qmin, qmax = -(2 ** (self.bits - 1)) + int(self.narrow), 2 ** (self.bits - 1) - 1
        else:
            qmin, qmax = 0, 2**self.bits - 1 - int(self.narrow)
        scale = torch.as_tensor(self.scale, dtype=torch.float32)
        if scale.dim() == 0:
            zp = torch.tensor(self.zero_point, dtype=torch.int32)
            return torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        scale = scale.reshape(-1)
        zeros = torch.zeros(scale.shape, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(x, scale, zeros, 0, qmin, qmax)


class _QuantFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:  # noqa: ARG004
        return spec.fake_quant(x)

    @staticmethod
    def symbolic(g: Any, x: Any, spec: QuantSpec) -> Any:
        return spec.emit(g, x, spec)


#: Where the export writes the per-channel weight scales: in the weight ``Quant`` node, or as a
#: ``Mul`` after the Conv / Gemm with integer weights under a scale-1 ``Quant``.
WEIGHT_SCALES = ("quant", "mul")


class _ExportLayer(nn.Module):
    """A quantised Conv2d/Linear for export: fake-quantised weights as its parameter, or
    (``weight_scales="mul"``) the integer weights and the per-channel scale applied to the
    output, ``conv(x, q) * s_c + bias`` (the same product as ``conv(x, q * s_c) + bias``)."""

    def __init__(
        self, layer: nn.Conv2d | nn.Linear, q: LayerQuant, emit: Any, weight_scales: str
    ) -> None:
        super().__init__()
        self.layer = layer
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        scale = torch.from_numpy(q.weight_scale).reshape(shape)
        self.out_scale: torch.Tensor | None = None
        if weight_scales == "mul":
            ints = torch.from_numpy(q.weight_int).float()
            self.weight = nn.Parameter(ints, requires_grad=False)
            out_shape = (-1,) + (1,) * (layer.weight.dim() - 2)  # (C, 1, 1) / (C,)
            self.out_scale = torch.from_numpy(q.weight_scale).reshape(out_shape)
            w_scale = np.asarray(1.0, dtype=np.float32)  # integers under a scale-1 Quant
        else:
            self.weight = nn.Parameter(
                torch.from_numpy(q.weight_int).float() * scale, requires_grad=False
            )
            # Broadcast shape of the weight (C, 1, 1, 1) / (C, 1), as QONNX's Quant wants it.
            w_scale = q.weight_scale.reshape(shape)
        self.bias = (
            None
            if layer.bias is None
            else nn.Parameter(layer.bias.detach().float().clone(), requires_grad=False)
        )
        self.w_spec = QuantSpec(
            q.name, "weight", q.bits, w_scale, 0, signed=True, narrow=True, emit=emit
        )
        self.x_spec = QuantSpec(
            q.name,
            "input",
            q.bits,
            np.asarray(q.act_scale, dtype=np.float32),
            q.act_zero_point,
            signed=False,
            narrow=False,
            emit=emit,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = _QuantFn.apply(x, self.x_spec)
        wq = _QuantFn.apply(self.weight, self.w_spec)
        layer = self.layer
        bias = self.bias if self.out_scale is None else None
        if isinstance(layer, nn.Conv2d):
            y = F.conv2d(xq, wq, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
        else:
            y = F.linear(xq, wq, bias)
        if self.out_scale is None:
            return y
        y = y * self.out_scale
        if self.bias is None:
            return y
        return y + self.bias.reshape(self.out_scale.shape)


def export_copy(
    model: nn.Module,
    quant: list[LayerQuant],
    emit: Callable[[Any, Any, QuantSpec], Any],
    weight_scales: str = "quant",
) -> nn.Module:
    """A deep copy of ``model`` in eval mode whose quantised layers emit ``emit``'s nodes
    (``weight_scales``: see :data:`WEIGHT_SCALES`)."""
    if weight_scales not in WEIGHT_SCALES:
        raise ExportError(
            f"Unknown weight_scales {weight_scales!r}; choose one of {', '.join(WEIGHT_SCALES)}."
        )
    import copy

    net = copy.deepcopy(model).cpu().float().eval()
    for q in quant:
        layer = net.get_submodule(q.name)
        assert isinstance(layer, nn.Conv2d | nn.Linear)
        parent_name, _, child = q.name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, _ExportLayer(layer, q, emit, weight_scales))
    return net


def execution_order(model: nn.Module, input_shape: tuple[int, ...]) -> list[str]:
    """Names of the quantised layers in the order one forward pass calls them."""
    order: list[str] = []
    hooks = [
        m.register_forward_pre_hook(lambda _m, _a, n=n: order.append(n))
        for n, m in model.named_modules()
        if isinstance(m, QuantConv2d | QuantLinear)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros((1, *input_shape), device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if len(order) != len(set(order)):
        twice = sorted({n for n in order if order.count(n) > 1})
        raise ExportError(f"Layers {twice} run more than once per forward; not supported.")
    return order


def to_onnx(net: nn.Module, input_shape: tuple[int, ...], *, opset: int = 13) -> Any:
    """``torch.onnx.export`` of an export copy (batch 1, TorchScript exporter) as a ModelProto."""
    import io
    import warnings

    import onnx

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                net,
                (torch.zeros((1, *input_shape)),),
                buf,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                input_names=["input"],
                output_names=["logits"],
            )
        except Exception as e:  # noqa: BLE001 - re-raised with the op named by torch
            raise ExportError(
                f"torch.onnx.export could not express the model ({type(e).__name__}: {e})."
            ) from e
    return constants_to_initializers(onnx.load_from_string(buf.getvalue()))


def constants_to_initializers(proto: Any) -> Any:
    """Move the values of ``Constant`` nodes into initializers (in place; returns ``proto``).

    qonnx's ``FoldConstants`` folds one node per pass and re-infers shapes in between, which
    took ~2 minutes for ResNet-20's ~300 constants; as initializers they need no folding.
    """
    from onnx import numpy_helper

    keep = []
    values = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and "value" in attrs and not node.domain:
            tensor = numpy_helper.to_array(attrs["value"].t)
        elif node.op_type == "Identity" and node.input[0] in values:
            tensor = numpy_helper.to_array(values[node.input[0]])
        else:
            keep.append(node)
            continue
        init = numpy_helper.from_array(tensor, node.output[0])
        proto.graph.initializer.append(init)
        values[init.name] = init
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    return proto
