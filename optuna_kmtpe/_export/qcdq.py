"""QCDQ export: standard ONNX ``QuantizeLinear -> Clip -> DequantizeLinear`` that runtimes run.

``QuantizeLinear`` / ``DequantizeLinear`` only have 8-bit integer types before opset 21, so a
``b``-bit quantiser (``b <= 8``) is an 8-bit container with a ``Clip`` to the ``b``-bit range
in between (as qonnx's ``QuantToQCDQ`` does, but also with non-zero zero points):

* weights: ``int8``, per axis (``axis=0``, one scale per output channel), zero point 0,
  ``Clip`` to ``[-(2**(b-1)-1), 2**(b-1)-1]`` (narrow range, as trained);
* input activations: ``uint8``, per tensor, the observer's zero point, ``Clip`` to
  ``[0, 2**b - 1]`` (no ``Clip`` at 8 bits).

Layers with more than 8 bits raise :class:`~optuna_kmtpe._export._layers.ExportError` (they
would need opset 21's 16-bit types). BatchNorm is kept, as in the QONNX export. Opset 13.

Example:
    >>> import tempfile, pathlib
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> from optuna_kmtpe._compress.quant import quantize_model
    >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8]).eval()
    >>> x = torch.randn(8, 1, 8, 8)
    >>> _ = net(x)
    >>> model = export_qcdq(net, (1, 8, 8), path=pathlib.Path(tempfile.mkdtemp()) / "q.onnx")
    >>> float(abs(run_qcdq(model, x.numpy()) - net(x).detach().numpy()).max()) < 1e-4
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from optuna_kmtpe._export._layers import export_copy
from optuna_kmtpe._export._layers import ExportError
from optuna_kmtpe._export._layers import QuantSpec
from optuna_kmtpe._export._layers import read_quantization
from optuna_kmtpe._export._layers import to_onnx


__all__ = ["export_qcdq", "run_qcdq"]

_MAX_CONTAINER_BITS = 8


def _emit_qcdq(g: Any, x: Any, spec: QuantSpec) -> Any:
    dtype = torch.int8 if spec.signed else torch.uint8
    scale = torch.as_tensor(spec.scale, dtype=torch.float32)
    axis: dict[str, int] = {}
    if scale.dim() > 0:
        scale = scale.reshape(-1)
        zero = torch.zeros(scale.shape, dtype=dtype)
        axis = {"axis_i": 0}
    else:
        zero = torch.tensor(spec.zero_point, dtype=dtype)
    if spec.signed:
        qmin, qmax = -(2 ** (spec.bits - 1)) + int(spec.narrow), 2 ** (spec.bits - 1) - 1
    else:
        qmin, qmax = 0, 2**spec.bits - 1 - int(spec.narrow)
    s = g.op("Constant", value_t=scale)
    z = g.op("Constant", value_t=zero)
    q = g.op("QuantizeLinear", x, s, z, **axis)
    info = torch.iinfo(dtype)
    if (qmin, qmax) != (info.min, info.max):
        lo = g.op("Constant", value_t=torch.tensor(qmin, dtype=dtype))
        hi = g.op("Constant", value_t=torch.tensor(qmax, dtype=dtype))
        q = g.op("Clip", q, lo, hi)
    return g.op("DequantizeLinear", q, s, z, **axis).setType(x.type())


def export_qcdq(
    model: nn.Module, input_shape: tuple[int, ...], *, path: str | Path | None = None
) -> Any:
    """Export a fake-quantised model as QCDQ ONNX (a ``onnx.ModelProto``, saved at ``path``).

    Raises:
        ExportError: A layer above 8 bits, or a layer or op the export cannot express (named).
    """
    import onnx

    input_shape = tuple(int(d) for d in input_shape)
    quant = read_quantization(model)
    wide = [f"{q.name} ({q.bits} bits)" for q in quant if q.bits > _MAX_CONTAINER_BITS]
    if wide:
        raise ExportError(
            f"QCDQ uses 8-bit QuantizeLinear containers (opset 13); layers {wide} have more "
            "than 8 bits. Use --format qonnx, or search bit-widths of at most 8."
        )
    proto = to_onnx(export_copy(model, quant, _emit_qcdq), input_shape)
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
    return proto


def run_qcdq(model: Any, x: np.ndarray, *, optimize: bool = False, batch: int = 1) -> np.ndarray:
    """Run a QCDQ model with onnxruntime (CPU, one thread), ``batch`` inputs per call.

    ``optimize=False`` turns onnxruntime's graph optimisations off: they fuse Conv and
    BatchNorm in float, which moves activations by an ulp and, rarely, across a rounding
    boundary of the next quantiser. The graph has batch size 1 (what toolchains expect), so
    inputs are fed one at a time.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(x, dtype=np.float32)
    outs = [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)
