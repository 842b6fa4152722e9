"""hls4ml's QONNX frontend on our QONNX export: convert, compile the C simulation, predict.

What hls4ml's QONNX frontend needs from the file (measured with hls4ml 1.3.0, see
docs/hls4ml.md):

* **Weights as integers under a scale-1 ``Quant``** (``export_qonnx(..., weight_scales="mul")``,
  ``kmtpe export --weight-scales mul``): a weight ``Quant`` with per-channel, non-power-of-two
  scales becomes a ``Constant`` layer plus a rescaling ``ApplyAlpha`` in hls4ml, the Conv /
  MatMul then has two non-constant inputs, and hls4ml's precision inference fails with an
  ``IndexError`` on the ``Constant`` layer (it reads an input the layer does not have). With
  scale 1 the weights fuse into the Conv2D / Dense as ``fixed<b, b>`` integers and the scales
  become an ``ApplyAlpha`` after it.
* **No zero point in a ``Quant``** (``zero_points="extract"``, the default): hls4ml turns a
  ``Quant`` with a power-of-two scale into a plain fixed-point type and drops a non-zero zero
  point silently; our offsets are ``Add`` / ``Sub`` nodes, which hls4ml keeps as the bias of
  an ``ApplyAlpha`` (:func:`offset_layers` reads them back so a test can see them).
* hls4ml's documented preparation (qonnx ``cleanup_model``, ``ConvertToChannelsLastAndClean``,
  ``GemmToMatMul``), then one fix of ours: qonnx leaves the per-channel ``Mul`` constants
  4-D ``(1, 1, 1, C)`` after the channels-last conversion, and hls4ml's ``MergeToApplyAlpha``
  cannot broadcast a 4-D constant to its 3-D ``(H, W, C)`` tensors (``ValueError: input
  operand has more dimensions than allowed by the axis remapping``), so the leading 1 of the
  constants of ``Mul`` / ``Add`` / ``Sub`` nodes is dropped (:func:`prepare`).

Example:
    >>> import tempfile, pathlib
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> from optuna_kmtpe._compress.quant import quantize_model
    >>> from optuna_kmtpe._export.qonnx import export_qonnx
    >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8]).eval()
    >>> _ = net(torch.randn(8, 1, 8, 8))
    >>> wrapper, _ = export_qonnx(net, (1, 8, 8), weight_scales="mul")
    >>> [n.op_type for n in prepare(wrapper).graph.node][4:7]
    ['Transpose', 'Add', 'Quant']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch  # noqa: F401 - the doctest uses it


__all__ = ["build", "offset_layers", "predict", "prepare"]


def prepare(model: Any) -> Any:
    """hls4ml's QONNX preparation of a ``ModelWrapper``, plus the 4-D constant fix above."""
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(model)
    model = model.transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul())
    model = cleanup_model(model)
    for node in model.graph.node:
        if node.op_type not in ("Mul", "Add", "Sub"):
            continue
        for name in node.input:
            value = model.get_initializer(name)
            if value is not None and value.ndim > 1 and value.shape[0] == 1:
                model.set_initializer(name, value.reshape(value.shape[1:]))
    return model


def build(
    path: str | Path,
    output_dir: str | Path,
    *,
    compile: bool = True,
    precision: str = "fixed<24,12>",
) -> Any:
    """Convert the QONNX file at ``path`` with hls4ml's QONNX frontend (Vitis backend, one
    config entry per layer, ``precision`` for everything hls4ml infers no type for) and, with
    ``compile``, build its C simulation with g++."""
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper

    model = prepare(ModelWrapper(str(path)))
    config = hls4ml.utils.config.config_from_onnx_model(
        model, granularity="name", backend="Vitis", default_precision=precision
    )
    hls_model = hls4ml.converters.convert_from_onnx_model(
        model, output_dir=str(output_dir), backend="Vitis", hls_config=config
    )
    if compile:
        hls_model.compile()
    return hls_model


def predict(hls_model: Any, x: np.ndarray) -> np.ndarray:
    """Run the C simulation on a batch of NCHW (or flat) inputs; returns ``(N, classes)``."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)  # hls4ml's QONNX graphs are channels-last
    out = hls_model.predict(np.ascontiguousarray(x))
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)


def offset_layers(hls_model: Any) -> list[dict[str, Any]]:
    """The ``ApplyAlpha`` layers of an hls4ml model with a non-zero bias: name, scale and bias
    (first element). The zero point ``z`` of an input ``Quant(s, z)`` shows up as one before
    the quantiser (``x / s + z``: scale ``1/s``, bias ``z``) and one after it (``q * s - z*s``:
    scale ``s``, bias ``-z*s``)."""
    found = []
    for layer in hls_model.get_layers():
        if layer.class_name != "ApplyAlpha":
            continue
        bias = np.asarray(layer.weights["bias"].data, dtype=np.float64).ravel()
        if np.any(bias != 0):
            scale = np.asarray(layer.weights["scale"].data, dtype=np.float64).ravel()
            found.append({"name": layer.name, "scale": float(scale[0]), "bias": float(bias[0])})
    return found
