"""Hand a searched model to FPGA toolchains: QONNX, QCDQ ONNX and hls4ml, checked offline.

:func:`export` writes one format for a fake-quantised model (widths applied, weights trained,
input ranges calibrated) and returns an :class:`ExportSummary` with, per layer, the searched
bit-width, the scales and zero points written into the graph, the cost model's MACs, weight
bits and EBOPs (and the whole model's size, latency, speedup and EBOPs), and (QONNX) qonnx's
own inference-cost analysis of the exported graph next to them. With ``inputs`` it also
executes the exported model (qonnx's ``execute_onnx``, onnxruntime, or the hls4ml C
simulation) and compares it with the PyTorch model in eval mode.

* ``qonnx`` (:mod:`optuna_kmtpe._export.qonnx`): ``Quant`` nodes, weights per output channel,
  inputs per tensor, BatchNorm kept, cleaned with qonnx's ``cleanup_model``.
* ``qcdq`` (:mod:`optuna_kmtpe._export.qcdq`): ``QuantizeLinear -> Clip -> DequantizeLinear``.
* ``hls4ml`` (:mod:`optuna_kmtpe._export.hls4ml`): the per-layer precision / ReuseFactor
  config and, where hls4ml is installed, its project compiled for C simulation with g++.

Example:
    >>> import tempfile, pathlib
    >>> import torch
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> from optuna_kmtpe._compress.quant import quantize_model
    >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8]).eval()
    >>> x = torch.randn(16, 1, 8, 8)
    >>> _ = net(x)  # calibrates the input ranges
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "net.onnx"
    >>> summary = export(net, (1, 8, 8), format="qonnx", path=out, inputs=x)
    >>> summary.check["argmax_agree"], summary.check["n"]
    (16, 16)
    >>> [row["bits"] for row in summary.layers]
    [8, 4, 3, 8]
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import numpy as np

from optuna_kmtpe._compress.shapes import one_input_shape
from optuna_kmtpe._export._layers import ExportError


if TYPE_CHECKING:
    import torch
    from torch import nn

    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._export._pixels import PixelInput


__all__ = ["FORMATS", "ExportError", "ExportSummary", "export", "compare", "summary_json"]

FORMATS = ("qonnx", "qcdq", "hls4ml")
#: Argmax agreement the hls4ml C simulation must reach: its fixed-point types have
#: power-of-two steps, not the trained scales, so it approximates the model.
_HLS4ML_MIN_AGREE = 0.90


@dataclass
class ExportSummary:
    """What :func:`export` wrote and measured (``to_dict`` is JSON-ready).

    Attributes:
        format: ``qonnx``, ``qcdq`` or ``hls4ml``.
        path: The exported file (ONNX) or folder (hls4ml).
        layers: One row per quantised layer, in execution order.
        totals: Sums of the cost columns.
        cost: Whole-model size (MB), latency (ms), DSP-packing speedup and EBOPs on the cost
            model.
        cost_model: Which cost-model reading priced the layers (compute- or memory-bound).
        check: Execution check against PyTorch (empty when no inputs were given).
        notes: What a toolchain should know (BatchNorm, zero points, skipped steps).
        files: Other files written (config, summary).
    """

    format: str
    path: str
    layers: list[dict[str, Any]]
    totals: dict[str, float] = field(default_factory=dict)
    cost_model: str = ""
    cost: dict[str, float] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def markdown(self) -> str:
        """The summary as markdown: the per-layer table, totals, check and notes."""
        from optuna_kmtpe._export._summary import rows_markdown

        lines = [f"### `{self.format}` export: `{Path(self.path).name}`", ""]
        lines += [rows_markdown(self.layers), ""]
        if self.totals:
            lines.append(
                "Totals: " + ", ".join(f"{k} {v:,.0f}" for k, v in self.totals.items()) + "."
            )
        if self.cost_model:
            lines.append(f"Cost model: {self.cost_model}.")
        if self.cost:
            c = self.cost
            bops = self.totals.get("qonnx_bops")
            lines.append(
                f"Cost: size {c['size_mb']:.4g} MB, latency {c['latency_ms']:.4g} ms, "
                f"speedup {c['speedup']:.2f}x vs FiP16, EBOPs {c['ebops']:,.0f}"
                + (f" (qonnx inference-cost BOPs {bops:,.0f})" if bops is not None else "")
                + "."
            )
        if self.check:
            c = self.check
            lines.append(
                f"Execution check ({c['runner']}, {c['inputs']}): argmax agrees on "
                f"{c['argmax_agree']}/{c['n']}, max |logit diff| {c['max_abs_diff']:.3g}, "
                + (
                    f"{c['n_differ']} inputs beyond {c['tolerance']:g} (allowed "
                    f"{c['max_differ']:.0%}), "
                    if c["tolerance"] is not None
                    else f"argmax agreement required {c['min_agree']:.0%}, "
                )
                + ("pass" if c["passed"] else "FAIL")
                + (
                    f"; accuracy PyTorch {c['accuracy_torch']:.4f}, exported "
                    f"{c['accuracy_export']:.4f}"
                    if "accuracy_torch" in c
                    else ""
                )
                + "."
            )
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def export(
    qmodel: nn.Module,
    input_shape: tuple[int, ...],
    *,
    format: str,
    path: str | Path,
    inputs: torch.Tensor | np.ndarray | None = None,
    labels: torch.Tensor | np.ndarray | None = None,
    inputs_label: str = "given inputs",
    cost_model: DSPPackingModel | None = None,
    tolerance: float | None = None,
    hls4ml_compile: bool = True,
    zero_points: str = "extract",
    weight_scales: str = "quant",
    pixels: PixelInput | None = None,
) -> ExportSummary:
    """Export a fake-quantised model to ``format`` at ``path`` and summarise it.

    Args:
        qmodel: A model quantised with :func:`optuna_kmtpe._compress.quant.quantize_model` (widths
            applied, trained) whose input ranges are calibrated.
        input_shape: One input without the batch dimension, e.g. ``(1, 8, 8)`` (a leading
            batch dimension of 1 is accepted too: :mod:`optuna_kmtpe._compress.shapes`).
        format: ``"qonnx"``, ``"qcdq"`` or ``"hls4ml"``.
        path: Output ``.onnx`` file (qonnx, qcdq) or folder (hls4ml).
        inputs: Optional batch of inputs (normalised; raw pixels with ``pixels``) to execute
            the export on and compare with ``qmodel`` in eval mode.
        labels: Optional labels of ``inputs`` (adds both accuracies to the check).
        inputs_label: How the summary names ``inputs`` (e.g. the dataset split).
        cost_model: The :class:`~optuna_kmtpe.DSPPackingModel` whose per-layer costs go
            into the summary; by default one built from ``qmodel`` with ``dram_gbps=None``
            (the compute-bound reading).
        tolerance: Largest accepted ``max |logit difference|``; default 1e-4 for qonnx and
            qcdq, none (argmax agreement only reported) for the hls4ml C simulation.
        hls4ml_compile: Build and run the hls4ml C simulation when hls4ml is installed.
        zero_points: QONNX only: ``"extract"`` (default; every ``Quant`` with zero point 0,
            offsets as Add / Sub, what FINN accepts) or ``"keep"`` (see
            :mod:`optuna_kmtpe._export.qonnx`).
        weight_scales: QONNX only: ``"quant"`` (default) or ``"mul"`` (integer weights, the
            per-channel scales as a Mul after the layer; for hls4ml's QONNX frontend).
        pixels: QONNX only: make the graph input the raw pixels behind an unsigned 8-bit
            ``Quant`` and the normalisation (:class:`~optuna_kmtpe._export._pixels.PixelInput`;
            what FINN's hardware flow reads).

    Returns:
        An :class:`ExportSummary`; ``summary.check["passed"]`` says whether the execution
        check met the tolerance.

    Raises:
        ExportError: Unknown format, or a layer or op the format cannot express (named).
    """
    from optuna_kmtpe._export._layers import execution_order
    from optuna_kmtpe._export._layers import read_quantization
    from optuna_kmtpe._export._summary import cost_totals
    from optuna_kmtpe._export._summary import layer_rows
    from optuna_kmtpe._export._summary import qonnx_costs

    if format not in FORMATS:
        raise ExportError(f"Unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
    if pixels is not None and format != "qonnx":
        raise ExportError(f"A pixel input is a QONNX option; format {format!r} takes none.")
    path = Path(path)
    quant = read_quantization(qmodel)  # first: names a layer the format cannot take
    # A copy: a forward pass calibrates a quantiser that has never seen data.
    input_shape = one_input_shape(copy.deepcopy(qmodel), tuple(int(d) for d in input_shape))
    order = execution_order(qmodel, input_shape)
    cost, cost_label = _cost_model(qmodel, input_shape, cost_model)
    notes: list[str] = []
    files: dict[str, str] = {}
    check: dict[str, Any] = {}
    qonnx_cost = None
    if format == "qonnx":
        from optuna_kmtpe._export.qonnx import export_qonnx
        from optuna_kmtpe._export.qonnx import run_qonnx

        wrapper, _ = export_qonnx(
            qmodel,
            input_shape,
            path=path,
            zero_points=zero_points,
            weight_scales=weight_scales,
            pixels=pixels,
        )
        qonnx_cost = qonnx_costs(wrapper, order)
        runner = "qonnx execute_onnx"
        run = None if inputs is None else (lambda x: run_qonnx(wrapper, x))
        notes.append(
            "BatchNorm is kept as BatchNormalization (the weight Quant scales are those the "
            "model was trained with); FINN streamlining and hls4ml fold it."
        )
        if pixels is not None:
            notes.append(
                "The graph input is raw pixels (datatype UINT8): an unsigned 8-bit Quant "
                f"(scale 1), then (pixels * {pixels.scale:g} - mean {list(pixels.mean)}) / std "
                f"{list(pixels.std)} as Mul / Sub / Div."
            )
    elif format == "qcdq":
        from optuna_kmtpe._export.qcdq import export_qcdq
        from optuna_kmtpe._export.qcdq import run_qcdq

        proto = export_qcdq(qmodel, input_shape, path=path)
        runner = "onnxruntime (graph optimisations off)"
        run = None if inputs is None else (lambda x: run_qcdq(proto, x))
        notes.append(
            "onnxruntime with its default graph optimisations fuses Conv+BatchNorm in float, "
            "which can move an activation across a rounding boundary; the check runs with "
            "optimisations off (see docs/results.md for both)."
        )
    else:
        from optuna_kmtpe._export.hls4ml import export_hls4ml

        result = export_hls4ml(
            qmodel, input_shape, path=path, quant=quant, cost=cost, compile=hls4ml_compile
        )
        files.update(result.files)
        notes.extend(result.notes)
        runner = "hls4ml C simulation (g++)"
        run = result.predict if inputs is not None else None
    offsets = [q.name for q in quant if q.act_zero_point != 0]
    if offsets and format == "qonnx" and zero_points == "extract":
        notes.append(
            f"Inputs of {offsets} are signed (normalised image or residual sum): their zero "
            "points are written as Add / Sub around a zero-point-0 Quant (what FINN accepts)."
        )
    elif offsets and format != "hls4ml":
        notes.append(
            f"Inputs of {offsets} are signed (normalised image or residual sum) and carry "
            "a non-zero zero point in the quantiser; FINN refuses such Quant nodes (export "
            "QONNX with zero_points='extract')."
        )
    rows = layer_rows(quant, order, cost, qonnx_cost)
    totals: dict[str, float] = {
        k: float(sum(r[k] for r in rows))
        for k in (
            "cost_macs",
            "qonnx_macs",
            "cost_weight_bits",
            "qonnx_weight_bits",
            "cost_ebops",
            "qonnx_bops",
        )
        if rows and k in rows[0]
    }
    if inputs is not None and run is not None:
        tol = tolerance if tolerance is not None else (1e-4 if format != "hls4ml" else None)
        reference = qmodel if pixels is None else pixels.wrap(qmodel).to(_device(qmodel))
        check = compare(
            reference,
            run,
            inputs,
            labels=labels,
            tolerance=tol,
            min_agree=1.0 if format != "hls4ml" else _HLS4ML_MIN_AGREE,
        )
        check.update(runner=runner, inputs=inputs_label)
    elif inputs is not None:
        notes.append("No execution check: the hls4ml C simulation was not built.")
    summary = ExportSummary(
        format=format,
        path=str(path),
        layers=rows,
        totals=totals,
        cost_model=cost_label,
        cost=cost_totals(quant, cost),
        check=check,
        notes=notes,
        files=files,
    )
    return summary


def _device(qmodel: nn.Module) -> torch.device:
    return next(qmodel.parameters()).device


def _cost_model(
    qmodel: nn.Module, input_shape: tuple[int, ...], cost: DSPPackingModel | None
) -> tuple[DSPPackingModel, str]:
    from optuna_kmtpe._compress.cost import DSPPackingModel

    if cost is None:
        cost = DSPPackingModel(copy.deepcopy(qmodel).cpu(), input_shape, dram_gbps=None)
    reading = (
        "compute-bound (dram_gbps=None, the reading the paper's speedups follow)"
        if cost.dram_gbps is None
        else f"memory-bound (DRAM {cost.dram_gbps:g} GB/s)"
    )
    return cost, f"DSPPackingModel {cost.rows}x{cost.cols}, {reading}"


def compare(
    qmodel: nn.Module,
    run: Any,
    inputs: torch.Tensor | np.ndarray,
    *,
    labels: torch.Tensor | np.ndarray | None = None,
    tolerance: float | None = 1e-4,
    max_differ: float = 0.01,
    min_agree: float = 1.0,
    batch_size: int = 512,
) -> dict[str, Any]:
    """Compare ``run(inputs)`` (an exported model) with ``qmodel`` in eval mode.

    The exported graphs quantise with the same scales, zero points and round-half-even as
    PyTorch, but their Conv / Gemm kernels sum in another order: an activation that lands
    within an ulp of a rounding boundary can move one quantisation step, which shifts that
    input's logits by far more than ``tolerance``. So the check passes when every argmax
    agrees and at most a fraction ``max_differ`` of the inputs differ by more than
    ``tolerance``. An approximate runner (the hls4ml C simulation) is checked by argmax
    agreement only (``tolerance=None``): at least ``min_agree`` of the inputs.

    Returns:
        ``n``, ``argmax_agree``, ``max_abs_diff`` (largest logit difference),
        ``median_abs_diff``, ``max_rel_diff`` (divided by the largest |logit|), ``n_differ``
        (inputs whose logits differ by more than ``tolerance``), ``tolerance``, ``passed``
        (argmax only when ``tolerance`` is None), and both accuracies when ``labels`` are
        given.
    """
    import torch

    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    was_training = qmodel.training
    qmodel.eval()
    device = next(qmodel.parameters()).device
    try:
        with torch.no_grad():
            ref = torch.cat(
                [
                    qmodel(x[i : i + batch_size].to(device)).cpu()
                    for i in range(0, len(x), batch_size)
                ]
            ).numpy()
    finally:
        qmodel.train(was_training)
    got = np.asarray(run(x.numpy()), dtype=np.float64).reshape(ref.shape)
    diff = np.abs(got - ref).max(axis=1)
    agree = int((got.argmax(1) == ref.argmax(1)).sum())
    out: dict[str, Any] = {
        "n": int(len(ref)),
        "argmax_agree": agree,
        "max_abs_diff": float(diff.max()),
        "median_abs_diff": float(np.median(diff)),
        "max_rel_diff": float(diff.max() / max(float(np.abs(ref).max()), 1e-30)),
        "tolerance": None if tolerance is None else float(tolerance),
        "max_differ": float(max_differ),
        "n_differ": None if tolerance is None else int((diff > tolerance).sum()),
    }
    out["min_agree"] = float(min_agree)
    out["passed"] = agree >= min_agree * len(ref) and (
        tolerance is None or out["n_differ"] <= max_differ * len(ref)
    )
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        out["accuracy_torch"] = float((ref.argmax(1) == y).mean())
        out["accuracy_export"] = float((got.argmax(1) == y).mean())
    return out


def summary_json(value: Any) -> Any:
    """``json.dump``'s ``default`` for summaries: NumPy scalars and arrays as Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
