"""QONNX export: ONNX with QONNX ``Quant`` nodes at each layer's searched bit-width.

Per quantised Conv/Linear layer the graph holds two ``Quant`` nodes (domain
``qonnx.custom_op.general``, ``rounding_mode="ROUND"``, i.e. round half to even like
``torch.fake_quantize_*``):

* on the weight initializer: ``signed=1, narrow=1``, scale per output channel (shape
  ``(C, 1, 1, 1)`` / ``(C, 1)``), zero point 0, bit-width ``b``; the initializer holds the
  fake-quantised weights ``q * scale``, so the node returns them unchanged and
  ``initializer / scale`` gives the integers ``q`` exactly;
* on the layer's input: ``signed=0, narrow=0``, one scale and one zero point (the frozen
  observer range of :mod:`optuna_kmtpe._compress.quant`), bit-width ``b``.

Zero points (``zero_points="extract"``, the default): FINN refuses a ``Quant`` with a non-zero
zero point (``ValueError: Only Quant nodes with zero-point == 0 are currently supported``) and
its maintainers ask exporters to make zero points explicit as qonnx's
``ExtractQuantScaleZeroPt`` does. A signed input (the normalised image of the first layer, a
residual sum) has an asymmetric range, so its ``Quant(x, s, z, b)`` is written as
``Add(x, z*s) -> Quant(s, 0, b) -> Sub(z*s)``: the same ``b``-bit unsigned grid, the offset as
two float adds that FINN's streamlining absorbs into the thresholds. Only the zero point is
moved out (qonnx's transformation also moves every scale, weights included); the model's
arithmetic is unchanged up to float rounding of ``x/s + z`` (the execution check covers it).
``zero_points="keep"`` writes the zero point into the ``Quant`` node.

A ``Relu`` whose output feeds an activation ``Quant`` and something else (a residual shortcut)
is duplicated, one per consumer (:func:`own_relu_per_quant`; FINN deletes the ``Relu`` in front
of a ``Quant``). With ``pixels`` (:class:`~optuna_kmtpe._export._pixels.PixelInput`) the graph
input is the raw pixels behind an unsigned 8-bit ``Quant``, normalised in the graph.

BatchNorm is **kept** as ``BatchNormalization`` after the Conv: folding it would change the
weight scales (``s_c * gamma_c / sigma_c``), so the graph would no longer carry the scales the
model was trained with; FINN's streamlining (``BatchNormToAffine`` and absorption into
thresholds) and hls4ml's QONNX / PyTorch frontends both fold it themselves. The graph is
cleaned with :func:`qonnx.util.cleanup.cleanup_model` (shape inference, constant folding that
keeps the ``Quant`` nodes, unique and readable names), batch size 1.

Example:
    >>> import tempfile, pathlib
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> from optuna_kmtpe._compress.quant import quantize_model
    >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8]).eval()
    >>> _ = net(torch.randn(8, 1, 8, 8))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.qonnx.onnx"
    >>> model, layers = export_qonnx(net, (1, 8, 8), path=path)
    >>> [int(b) for b in quant_bitwidths(model, layers)["weight"]]
    [8, 4, 3, 8]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from optuna_kmtpe._export._layers import execution_order
from optuna_kmtpe._export._layers import export_copy
from optuna_kmtpe._export._layers import ExportError
from optuna_kmtpe._export._layers import QuantSpec
from optuna_kmtpe._export._layers import read_quantization
from optuna_kmtpe._export._layers import to_onnx
from optuna_kmtpe._export._pixels import annotate_input
from optuna_kmtpe._export._pixels import PixelInput


__all__ = [
    "COMPUTE_OPS",
    "ZERO_POINTS",
    "compute_nodes",
    "export_qonnx",
    "extract_zero_points",
    "own_relu_per_quant",
    "quant_bitwidths",
    "run_qonnx",
]

QONNX_DOMAIN = "qonnx.custom_op.general"
#: ONNX ops that carry a quantised layer's multiply-accumulates.
COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
#: How :func:`export_qonnx` writes a non-zero activation zero point.
ZERO_POINTS = ("extract", "keep")


def _emit_quant(g: Any, x: Any, spec: QuantSpec) -> Any:
    return g.op(
        f"{QONNX_DOMAIN}::Quant",
        x,
        g.op("Constant", value_t=torch.as_tensor(spec.scale, dtype=torch.float32)),
        g.op("Constant", value_t=torch.tensor(float(spec.zero_point), dtype=torch.float32)),
        g.op("Constant", value_t=torch.tensor(float(spec.bits), dtype=torch.float32)),
        signed_i=int(spec.signed),
        narrow_i=int(spec.narrow),
        rounding_mode_s="ROUND",
    ).setType(x.type())


def export_qonnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    path: str | Path | None = None,
    zero_points: str = "extract",
    weight_scales: str = "quant",
    pixels: PixelInput | None = None,
) -> tuple[Any, list[str]]:
    """Export a fake-quantised model as a cleaned QONNX graph.

    Args:
        model: A model quantised with :func:`optuna_kmtpe._compress.quant.quantize_model`
            whose input ranges are calibrated (it has seen data).
        input_shape: One input without the batch dimension, e.g. ``(1, 8, 8)``.
        path: Where to save the ``.onnx`` file (not saved when ``None``).
        zero_points: ``"extract"`` (every ``Quant`` with zero point 0, offsets as Add / Sub;
            what FINN accepts) or ``"keep"`` (zero points in the ``Quant`` nodes).
        weight_scales: ``"quant"`` (per-channel scales in the weight ``Quant`` nodes) or
            ``"mul"`` (integer weights under a scale-1 ``Quant``, the scales as a ``Mul``
            after the Conv / Gemm: hls4ml's QONNX frontend then fuses the weights as
            fixed-point constants, see docs/hls4ml.md).
        pixels: Make the graph input the raw pixels: an unsigned ``pixels.bits``-bit
            ``Quant`` on the input, then the normalisation (:mod:`optuna_kmtpe._export._pixels`;
            what FINN's hardware flow reads). ``None``: the input is the normalised image.

    Returns:
        ``(ModelWrapper, layers)``: the qonnx model and the quantised layer names in the order
        of the graph's compute nodes (:func:`compute_nodes`).

    Raises:
        ExportError: A layer or op the format cannot express (named).
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    if zero_points not in ZERO_POINTS:
        raise ExportError(
            f"Unknown zero_points {zero_points!r}; choose one of {', '.join(ZERO_POINTS)}."
        )
    input_shape = tuple(int(d) for d in input_shape)
    if pixels is not None and len(pixels.mean) != input_shape[0]:
        raise ExportError(
            f"PixelInput has {len(pixels.mean)} channel(s) but the input shape is {input_shape}."
        )
    quant = read_quantization(model)
    order = execution_order(model, input_shape)
    net = export_copy(model, quant, _emit_quant, weight_scales)
    proto = to_onnx(net if pixels is None else pixels.wrap(net, _emit_quant), input_shape)
    wrapper = cleanup_model(ModelWrapper(proto))
    _check_structure(wrapper, order)
    wrapper = own_relu_per_quant(wrapper)
    if zero_points == "extract":
        wrapper = extract_zero_points(wrapper)
    if pixels is not None:
        annotate_input(wrapper, pixels)
    wrapper.set_metadata_prop("kmtpe:layers", ",".join(order))
    wrapper.set_metadata_prop("kmtpe:bits", ",".join(str(q.bits) for q in _by(quant, order)))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        wrapper.save(str(path))
    return wrapper, order


def extract_zero_points(model: Any) -> Any:
    """Rewrite each ``Quant(x, s, z, b)`` with ``z != 0`` as ``Add(x, z*s) -> Quant(x, s, 0, b)
    -> Sub(z*s)`` (see the module docstring); other nodes are left as they are.

    Returns:
        The transformed ``ModelWrapper`` (shapes inferred, nodes sorted).
    """
    from onnx import helper
    from qonnx.transformation.general import SortGraph
    from qonnx.transformation.infer_shapes import InferShapes

    graph = model.graph
    for node in list(graph.node):
        if node.op_type != "Quant":
            continue
        zero = model.get_initializer(node.input[2])
        scale = model.get_initializer(node.input[1])
        if zero is None or scale is None or not np.any(zero != 0):
            continue
        offset = np.asarray(zero * scale, dtype=np.float32)
        offset_name = model.make_new_valueinfo_name()
        model.set_initializer(offset_name, offset)
        zero_name = model.make_new_valueinfo_name()
        model.set_initializer(zero_name, np.zeros_like(zero, dtype=np.float32))
        shifted = model.make_new_valueinfo_name()
        graph.node.append(helper.make_node("Add", [node.input[0], offset_name], [shifted]))
        node.input[0] = shifted
        node.input[2] = zero_name
        quantised = model.make_new_valueinfo_name()
        graph.node.append(helper.make_node("Sub", [quantised, offset_name], [node.output[0]]))
        node.output[0] = quantised
    return model.transform(SortGraph()).transform(InferShapes())


def own_relu_per_quant(model: Any) -> Any:
    """Give every activation ``Quant`` fed by a shared ``Relu`` a ``Relu`` of its own.

    In a residual block the ``Relu`` output feeds both the next layer's ``Quant`` and the
    shortcut (the float sum, as in the PyTorch model). FINN's ``ConvertQONNXtoFINN`` turns
    ``Relu -> Quant`` into one ``MultiThreshold`` and deletes the ``Relu`` without looking at
    its other consumers, which are left reading a tensor nobody writes (FINN executes it as
    zeros). With a copy of the ``Relu`` per ``Quant`` the rewrite is exact and FINN deletes
    only the copy.

    Returns:
        The transformed ``ModelWrapper`` (nodes sorted).
    """
    from onnx import helper
    from qonnx.transformation.general import SortGraph

    graph = model.graph
    for node in list(graph.node):
        if node.op_type != "Quant" or model.get_initializer(node.input[0]) is not None:
            continue
        relu = model.find_producer(node.input[0])
        if relu is None or relu.op_type != "Relu" or len(model.find_consumers(relu.output[0])) < 2:
            continue
        own = model.make_new_valueinfo_name()
        graph.node.append(helper.make_node("Relu", [relu.input[0]], [own]))
        node.input[0] = own
    return model.transform(SortGraph())


def input_quant(model: Any, compute_node: Any) -> tuple[Any, float]:
    """The ``Quant`` node feeding a compute node's input and its zero point: read from the
    node, or, after :func:`extract_zero_points`, from the ``Sub`` that follows it."""
    producer = model.find_producer(compute_node.input[0])
    if producer is not None and producer.op_type == "Sub":
        quant = model.find_producer(producer.input[0])
        scale = np.asarray(model.get_initializer(quant.input[1]))
        offset = np.asarray(model.get_initializer(producer.input[1]))
        return quant, float(np.round(offset / scale))
    return producer, float(model.get_initializer(producer.input[2]))


def _by(quant: list[Any], order: list[str]) -> list[Any]:
    index = {q.name: q for q in quant}
    return [index[n] for n in order]


def compute_nodes(model: Any) -> list[Any]:
    """The graph's Conv / Gemm / MatMul nodes in graph (topological) order."""
    return [n for n in model.graph.node if n.op_type in COMPUTE_OPS]


def _check_structure(model: Any, order: list[str]) -> None:
    nodes = compute_nodes(model)
    if len(nodes) != len(order):
        raise ExportError(
            f"The exported graph has {len(nodes)} Conv/Gemm/MatMul nodes but the model "
            f"{len(order)} quantised layers ({order}); a layer outside Conv2d/Linear does "
            "arithmetic the export cannot quantise."
        )
    for node, layer in zip(nodes, order):
        for i, role in ((0, "input"), (1, "weight")):
            producer = model.find_producer(node.input[i])
            if producer is None or producer.op_type != "Quant":
                raise ExportError(f"Layer {layer!r}: the {role} of {node.name} is not quantised.")


def quant_bitwidths(model: Any, layers: list[str]) -> dict[str, np.ndarray]:
    """Bit-widths of the ``Quant`` nodes feeding each compute node: ``{"input", "weight"}``.

    Example: see the module docstring.
    """
    out: dict[str, list[float]] = {"input": [], "weight": []}
    for node in compute_nodes(model):
        for role, q in (
            ("input", input_quant(model, node)[0]),
            ("weight", model.find_producer(node.input[1])),
        ):
            out[role].append(float(model.get_initializer(q.input[3])))
    return {k: np.asarray(v) for k, v in out.items()}


def quant_params(model: Any, layers: list[str]) -> dict[str, dict[str, Any]]:
    """Per layer: the scale, zero point and bit-width arrays of its two ``Quant`` nodes, and
    the input's ``layer_zero_point`` (in the node, or extracted into Add / Sub)."""
    out: dict[str, dict[str, Any]] = {}
    for node, layer in zip(compute_nodes(model), layers):
        entry: dict[str, Any] = {}
        act, layer_zero = input_quant(model, node)
        for role, q in (("input", act), ("weight", model.find_producer(node.input[1]))):
            entry[role] = {
                "scale": np.asarray(model.get_initializer(q.input[1])),
                "zero_point": np.asarray(model.get_initializer(q.input[2])),
                "bits": float(model.get_initializer(q.input[3])),
                "signed": _attr(q, "signed"),
                "narrow": _attr(q, "narrow"),
            }
            if role == "input":
                entry[role]["layer_zero_point"] = layer_zero
            if role == "weight":
                entry[role]["values"] = np.asarray(model.get_initializer(q.input[0]))
        entry["node"] = node.name
        out[layer] = entry
    return out


def _attr(node: Any, name: str) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return 0


def run_qonnx(model: Any, x: np.ndarray) -> np.ndarray:
    """Run the QONNX graph on a batch with :func:`qonnx.core.onnx_exec.execute_onnx`.

    The batch size of a copy of the graph is changed with qonnx's ``ChangeBatchSize``.
    """
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    x = np.ascontiguousarray(x, dtype=np.float32)
    batched = model.transform(ChangeBatchSize(int(x.shape[0]))).transform(InferShapes())
    name_in = batched.graph.input[0].name
    name_out = batched.graph.output[0].name
    return np.asarray(execute_onnx(batched, {name_in: x})[name_out])
