"""hls4ml export: a per-layer precision / ReuseFactor config and, where hls4ml installs, its
C simulation compiled with g++ (no Vivado needed).

hls4ml's PyTorch frontend converts a float model, so the export hands it a copy whose
Conv2d / Linear layers hold the fake-quantised weights ``q * scale`` and a config keyed by
hls4ml's layer names (the module name with ``.`` replaced by ``_``):

* ``weight``: ``ap_fixed<b, I>`` with ``b`` the searched bit-width;
* the layer's **input** (the ``result`` of the layer feeding it: the input layer, a ReLU, the
  pooling / flatten in between): ``ap_ufixed<b, I>`` for a non-negative observer range,
  ``ap_fixed<b, I>`` for a signed one;
* ``I`` (integer bits, sign included) is the one, among the value that holds the whole range
  and the three below it, with the least squared error on the layer's fake-quantised weights
  (its input's ``2**b`` quantisation levels): a power-of-two step cannot follow the trained
  per-channel scales, and trading a little saturation for a finer step fits them better;
* ``AP_RND_CONV`` (round half to even, like ``torch.fake_quantize_*``) and ``AP_SAT``;
* ``ReuseFactor`` from the cost model's DSP budget: the ``rows * cols`` DSPs of the
  :class:`~optuna_kmtpe.DSPPackingModel` are shared among the layers in proportion to their
  MACs (hls4ml builds all layers at once, unlike the cost model's one-layer-at-a-time array),
  a layer with ``n_in * n_out`` multiplications per output and packing ``p`` gets
  ``R = ceil(n_in * n_out / (p * DSPs_layer))``, rounded up to the next reuse factor hls4ml
  accepts (:func:`valid_reuse_factor`);
* everything else (BatchNorm, accumulators, results of Conv/Dense): ``ap_fixed<24, 12>``.

Fixed point has power-of-two steps while the trained per-channel scales are arbitrary, so
hls4ml's arithmetic approximates the fake-quantised model; the C simulation is compared by
argmax agreement (no logit tolerance; the check passes at 90% agreement or more).

Example:
    >>> import torch
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> from optuna_kmtpe._compress.quant import quantize_model
    >>> net = quantize_model(build_model("small_cnn", 10), [8, 4, 3, 8]).eval()
    >>> _ = net(torch.randn(8, 1, 8, 8))
    >>> rows = precision_rows(net, (1, 8, 8))
    >>> [r["weight"].split(",")[0] for r in rows]
    ['ap_fixed<8', 'ap_fixed<4', 'ap_fixed<3', 'ap_fixed<8']
    >>> valid_reuse_factor(n_in=144, n_out=32, target=5)
    6
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import json
import math
from pathlib import Path
import shutil
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from optuna_kmtpe._export._layers import ExportError
from optuna_kmtpe._export._layers import LayerQuant
from optuna_kmtpe._export._layers import read_quantization


if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna_kmtpe._compress.cost import DSPPackingModel


__all__ = ["HLS4MLExport", "export_hls4ml", "precision_rows", "valid_reuse_factor"]

_DEFAULT_PRECISION = "ap_fixed<24,12>"
_MODES = "AP_RND_CONV,AP_SAT"
_PASS_THROUGH = {"Reshape", "Flatten", "MaxPooling2D", "Pooling2D", "AveragePooling2D"}


def valid_reuse_factor(*, n_in: int, n_out: int, target: int) -> int:
    """The smallest reuse factor ``>= target`` that hls4ml accepts for an ``n_in x n_out``
    layer (its ``FPGABackend._validate_reuse_factor`` rule); ``n_in * n_out`` at most."""
    total = n_in * n_out
    for rf in range(max(1, int(target)), total + 1):
        mult_limit = math.ceil(total / min(n_in, rf))
        ok = (mult_limit % n_out == 0) or rf >= n_in
        ok = ok and (rf % n_in == 0 or rf < n_in) and total % rf == 0
        if ok:
            return rf
    return total


def _int_bits(lo: float, hi: float, bits: int, *, signed: bool) -> int:
    """Fewest integer bits ``I`` (sign included when ``signed``) such that ``ap_fixed<bits, I>``
    (``ap_ufixed`` when unsigned) holds ``[lo, hi]`` without saturating."""
    for i in range(-32, 64):
        step = 2.0 ** (i - bits)
        top = (2.0 ** (i - 1) if signed else 2.0**i) - step
        bottom = -(2.0 ** (i - 1)) if signed else 0.0
        if top >= hi and bottom <= lo:
            return i
    raise ExportError(f"No {bits}-bit fixed-point type holds [{lo}, {hi}].")


def _best_int_bits(values: np.ndarray, bits: int, *, signed: bool) -> int:
    """Integer bits of ``ap_(u)fixed<bits, I>`` with the least squared error on ``values``
    (round half to even, saturation), from the no-saturation ``I`` down by three bits."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    top_i = _int_bits(
        float(values.min(initial=0.0)), float(values.max(initial=0.0)), bits, signed=signed
    )
    best, best_err = top_i, math.inf
    for i in range(top_i, top_i - 4, -1):
        step = 2.0 ** (i - bits)
        lo = -(2 ** (bits - 1)) if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        err = float(np.square(np.clip(np.round(values / step), lo, hi) * step - values).sum())
        if err < best_err:
            best, best_err = i, err
    return best


def precision_rows(
    qmodel: nn.Module,
    input_shape: tuple[int, ...],
    *,
    quant: list[LayerQuant] | None = None,
    cost: DSPPackingModel | None = None,
) -> list[dict[str, Any]]:
    """Per quantised layer: hls4ml name, weight / input precision, ReuseFactor and its basis."""
    import copy

    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.cost import PACKING

    quant = quant if quant is not None else read_quantization(qmodel)
    if cost is None:
        cost = DSPPackingModel(copy.deepcopy(qmodel).cpu(), input_shape, dram_gbps=None)
    by_name = {q.name: q for q in quant}
    report = cost.evaluate([by_name[n].bits for n in cost.layer_names]).layers
    dsps = cost.rows * cost.cols
    total_macs = float(report["macs"].sum())
    rows = []
    for q in quant:
        r = report.loc[q.name]
        n_out = int(r["out"]) // int(r["groups"])
        n_in = int(r["kernel"]) * int(r["in"]) // int(r["groups"])
        share = max(1.0, dsps * float(r["macs"]) / total_macs)
        pack = PACKING.get(q.bits, 1)
        target = math.ceil(n_in * n_out / (pack * share))
        shape = (-1,) + (1,) * (q.weight_int.ndim - 1)
        fq = q.weight_int * q.weight_scale.reshape(shape).astype(np.float64)
        w_bits = _best_int_bits(fq, q.bits, signed=True)
        signed_in = q.act_lo < 0
        in_type = "ap_fixed" if signed_in else "ap_ufixed"
        levels = (np.arange(q.act_qmax + 1) - q.act_zero_point) * q.act_scale
        in_bits = _best_int_bits(levels, q.bits, signed=signed_in)
        rows.append(
            {
                "layer": q.name,
                "hls4ml_name": q.name.replace(".", "_"),
                "bits": q.bits,
                "weight": f"ap_fixed<{q.bits},{w_bits},{_MODES}>",
                "input": f"{in_type}<{q.bits},{in_bits},{_MODES}>",
                "reuse_factor": valid_reuse_factor(n_in=n_in, n_out=n_out, target=target),
                "dsp_share": round(share, 1),
                "packing": pack,
                "mults_per_output": n_in * n_out,
            }
        )
    return rows


def float_copy(qmodel: nn.Module, quant: list[LayerQuant]) -> nn.Module:
    """A float copy of ``qmodel``: plain Conv2d / Linear holding the fake-quantised weights."""
    import copy

    net = copy.deepcopy(qmodel).cpu().float().eval()
    for q in quant:
        old = net.get_submodule(q.name)
        new: nn.Module
        if isinstance(old, nn.Conv2d):
            new = nn.Conv2d(
                old.in_channels,
                old.out_channels,
                old.kernel_size,  # type: ignore[arg-type]
                stride=old.stride,  # type: ignore[arg-type]
                padding=old.padding,  # type: ignore[arg-type]
                dilation=old.dilation,  # type: ignore[arg-type]
                groups=old.groups,
                bias=old.bias is not None,
            )
        else:
            assert isinstance(old, nn.Linear)
            new = nn.Linear(old.in_features, old.out_features, bias=old.bias is not None)
        shape = (-1,) + (1,) * (old.weight.dim() - 1)
        scale = torch.from_numpy(q.weight_scale).reshape(shape)
        with torch.no_grad():
            new.weight.copy_(torch.from_numpy(q.weight_int).float() * scale)
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias.detach())
        parent_name, _, child = q.name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, new.eval())
    return net


@dataclass
class HLS4MLExport:
    """What :func:`export_hls4ml` wrote; ``predict`` runs the C simulation (None if not built)."""

    config: dict[str, Any]
    rows: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    predict: Callable[[np.ndarray], np.ndarray] | None = None


def export_hls4ml(
    qmodel: nn.Module,
    input_shape: tuple[int, ...],
    *,
    path: str | Path,
    quant: list[LayerQuant] | None = None,
    cost: DSPPackingModel | None = None,
    compile: bool = True,
) -> HLS4MLExport:
    """Write ``path/hls4ml_config.json`` and, where hls4ml is installed, its Vivado-backend
    project (``io_parallel``), compiled for C simulation when ``compile`` and g++ exist.

    Raises:
        ExportError: A layer or op hls4ml's PyTorch frontend cannot convert (its message).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    quant = quant if quant is not None else read_quantization(qmodel)
    rows = precision_rows(qmodel, input_shape, quant=quant, cost=cost)
    result = HLS4MLExport(config={}, rows=rows)
    try:
        import hls4ml
    except ImportError:
        config = _config_without_hls4ml(rows)
        result.notes.append(
            "hls4ml is not installed (`pip install hls4ml`): wrote the per-layer precision "
            "config only, no conversion or C simulation."
        )
    else:
        net = float_copy(qmodel, quant)
        try:
            base = hls4ml.utils.config_from_pytorch_model(
                net,
                tuple(input_shape),
                granularity="name",
                backend="Vivado",
                default_precision=_DEFAULT_PRECISION,
            )
            config = _apply_rows(base, rows, net, input_shape)
            hls_model = hls4ml.converters.convert_from_pytorch_model(
                net,
                output_dir=str(path / "project"),
                hls_config=config,
                backend="Vivado",
                io_type="io_parallel",
            )
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - re-raised naming the layer where it failed
            where = _failing_module(e, net)
            raise ExportError(
                f"hls4ml's PyTorch frontend cannot convert this model{where} "
                f"({type(e).__name__}: {e}). Use --format qonnx for models with such layers."
            ) from e
        result.files["project"] = str(path / "project")
        if compile and shutil.which("g++"):
            hls_model.compile()
            result.predict = lambda x: np.asarray(
                hls_model.predict(np.ascontiguousarray(x, dtype=np.float32))
            ).reshape(len(x), -1)
            result.notes.append("hls4ml C simulation compiled with g++ (Vivado backend).")
        elif compile:
            result.notes.append("g++ not found: the hls4ml C simulation was not built.")
    serialisable = {k: v for k, v in config.items() if k != "PytorchModel"}
    (path / "hls4ml_config.json").write_text(json.dumps(serialisable, indent=2, default=str))
    (path / "precision.json").write_text(json.dumps(rows, indent=2))
    result.files.update(
        config=str(path / "hls4ml_config.json"), precision=str(path / "precision.json")
    )
    result.config = serialisable
    return result


def _failing_module(error: BaseException, net: nn.Module) -> str:
    """`` at layer 'name' (Class)`` for the innermost module of ``net`` in the traceback."""
    names = {id(m): n for n, m in net.named_modules() if n}
    found = ""
    tb = error.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, nn.Module) and id(obj) in names:
            found = f" at layer {names[id(obj)]!r} ({type(obj).__name__})"
        tb = tb.tb_next
    return found


def _config_without_hls4ml(rows: list[dict[str, Any]]) -> dict[str, Any]:
    layers: dict[str, Any] = {}
    for r in rows:
        layers[r["hls4ml_name"]] = {
            "Precision": {"weight": r["weight"], "input": r["input"]},
            "ReuseFactor": r["reuse_factor"],
        }
    return {
        "Model": {"Precision": _DEFAULT_PRECISION, "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": layers,
    }


def _apply_rows(
    config: dict[str, Any], rows: list[dict[str, Any]], net: nn.Module, input_shape: Any
) -> dict[str, Any]:
    """Set weight precisions and ReuseFactors on the quantised layers and the input
    precision on the ``result`` of whatever feeds each of them (through pooling / flatten)."""
    names = config["LayerName"]
    order = list(names)
    producers = _producers(net)
    for r in rows:
        name = r["hls4ml_name"]
        if name not in names:
            raise ExportError(
                f"Layer {r['layer']!r} is not in hls4ml's config (names: {order}); hls4ml's "
                "frontend renamed or fused it."
            )
        entry = names[name]
        entry.setdefault("Precision", {})
        entry["Precision"].update(
            weight=r["weight"],
            bias=_DEFAULT_PRECISION,
            accum=_DEFAULT_PRECISION,
            result=_DEFAULT_PRECISION,
        )
        entry["ReuseFactor"] = r["reuse_factor"]
        src = producers.get(name)
        while src is not None:
            if src in names:
                names[src].setdefault("Precision", {})["result"] = r["input"]
            if src == order[0] or not any(t in src for t in ("pool", "flatten", "view")):
                break
            src = producers.get(src)
    for entry in names.values():
        prec = entry.setdefault("Precision", {})
        for k, v in list(prec.items()):
            if v == "auto":
                prec[k] = _DEFAULT_PRECISION
    config["Model"]["Strategy"] = "Latency"
    return config


def _producers(net: nn.Module) -> dict[str, str]:
    """fx node name -> the node feeding its first input (the input node for the first)."""
    import torch.fx

    graph = torch.fx.symbolic_trace(net).graph
    out: dict[str, str] = {}
    for node in graph.nodes:
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if node.op == "call_module":
            key = str(node.target).replace(".", "_")
        else:
            key = node.name
        if args:
            src = args[0]
            out[key] = str(src.target).replace(".", "_") if src.op == "call_module" else src.name
    return out
