"""Hardware cost of a quantised, width-scaled network on a DSP-packing FPGA accelerator.

The accelerator (paper section III-C) is an ``rows x cols`` (M x N) systolic array of
processing elements, each one DSP (27x18-bit multiplier, 48-bit accumulator) plus one BRAM.
Output channels are tiled over the M rows, the ``kh*kw*Cin/groups`` input patch over the N
columns, and low-bit operands are packed so that one DSP performs several multiplications per
cycle (:data:`PACKING`). Every formula is in ``docs/cost_model.md``; in short, per layer:

* ``weights = Cout * (Cin / groups) * kh * kw``, ``MACs = weights * Hout * Wout``
* ``compute cycles = ceil(groups * ceil((Cout/groups) / M) * ceil(kh*kw*Cin/groups / N)
  * Hout * Wout / packing(bits))``
* DRAM bytes = (weights + input activations + output activations) * bits / 8
* cycles = max(compute cycles, DRAM bytes / bytes-per-cycle) (no overlap between layers)
* EBOPs (effective bit operations, the FPGA resource measure of HGQ / HGQ2 and hls4ml) =
  ``MACs * weight bits * input-activation bits`` = ``MACs * bits**2`` (one bit-width per layer
  for both); see :attr:`CostReport.ebops`

Layer shapes are read once by running the model on one sample input with forward hooks, and
the width rules come from :mod:`optuna_kmtpe._compress.widths`; evaluating a configuration
afterwards is NumPy arithmetic on a few arrays (well over 1,000 evaluations per second for
ResNet-18).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import math
from typing import Any
from typing import TYPE_CHECKING

import numpy as np

from optuna_kmtpe._compress.shapes import one_input_shape
from optuna_kmtpe._compress.widths import check_widths
from optuna_kmtpe._compress.widths import per_layer_values


if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import torch

    from optuna_kmtpe._compress.widths import WidthPlan


#: Multiplications one DSP performs per cycle for a layer of the given bit-width (weights and
#: input activations share it). 16 bits is the FiP16 baseline.
PACKING: dict[int, int] = {16: 1, 8: 2, 6: 2, 4: 6, 3: 6, 2: 15}

_MAX_BITS = 64
_PACKING_LUT = np.zeros(_MAX_BITS + 1, dtype=np.int64)
for _b, _p in PACKING.items():
    _PACKING_LUT[_b] = _p


@dataclass(frozen=True)
class CostReport:
    """Cost of one (bits, widths) configuration; produced by :meth:`DSPPackingModel.evaluate`.

    Attributes:
        size_bytes: Conv/Linear weights at their bit-widths (biases and BatchNorm excluded).
        cycles: Accelerator cycles for one input (layers run one after another).
        latency_s: ``cycles / clock``.
        speedup: Baseline (FiP16, width 1) cycles divided by ``cycles``.
        energy_j: DSP operations, DRAM and BRAM traffic times their energy constants.
        throughput_fps: Inputs per second, ``1 / latency_s`` (batch 1, no pipelining).
        ebops: Effective bit operations, summed over the Conv/Linear layers: per layer, the sum
            over its multiply-accumulates of weight bits x input-activation bits, HGQ's resource
            measure (HGQ2, ``calad0i/HGQ2`` ``src/hgq/layers/core/dense.py``,
            ``QDense._compute_ebops``: ``sum(matmul(bw_inp, bw_ker))``; Sun et al., "HGQ",
            arXiv:2405.00645: EBOPs track ``LUT + 55 x DSP`` after place and route). A layer's
            weights and inputs share its bit-width, so a layer adds ``MACs * bits**2``. Two
            differences from HGQ's count: every weight counts at the layer's nominal bits (HGQ
            counts each weight's own effective bits, so a zero weight costs 0 there; ours is an
            upper bound), and the bias additions HGQ adds are left out (biases stay in float).
        per_layer: Per-layer arrays (see :attr:`layers`).
    """

    size_bytes: float
    cycles: int
    latency_s: float
    speedup: float
    energy_j: float
    throughput_fps: float
    ebops: float
    per_layer: dict[str, np.ndarray] = field(repr=False)

    @property
    def size_mb(self) -> float:
        """Model size in MB (10^6 bytes), the unit of the paper's Table II."""
        return self.size_bytes / 1e6

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1e3

    @property
    def energy_mj(self) -> float:
        return self.energy_j * 1e3

    @property
    def layers(self) -> pd.DataFrame:
        """One row per Conv/Linear layer, in layer order."""
        import pandas as pd

        return pd.DataFrame(self.per_layer).set_index("layer")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with a ``layers`` list of per-layer rows."""
        rows = self.layers.reset_index().to_dict(orient="records")
        return {
            "size_bytes": float(self.size_bytes),
            "size_mb": self.size_mb,
            "cycles": int(self.cycles),
            "latency_ms": self.latency_ms,
            "speedup": float(self.speedup),
            "energy_mj": self.energy_mj,
            "throughput_fps": float(self.throughput_fps),
            "ebops": float(self.ebops),
            "layers": [{k: _py(v) for k, v in row.items()} for row in rows],
        }


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class DSPPackingModel:
    """Size, latency, speedup, energy and throughput of a model on the DSP-packing FPGA array.

    Args:
        model: Any ``torch.nn.Module`` whose compute is in quantisable layers
            (:mod:`optuna_kmtpe._compress.layers`: ``Conv1d`` / ``Conv2d`` incl. grouped and
            depthwise / ``Linear``)
            (run once on a zero input to read the layer shapes; not modified). Width
            multipliers additionally need a ``torch.fx``-traceable model.
        input_shape: Shape of one input without the batch dimension, e.g. ``(3, 32, 32)``
            (a leading batch dimension of 1 is accepted too: ``_compress.shapes``).
        rows: M, PE rows (output channels processed in parallel). Default 32 (assumption).
        cols: N, PE columns (patch entries processed in parallel). Default 32 (assumption;
            32 x 32 = 1,024 DSPs, within e.g. a Zynq UltraScale+ ZU9EG's 2,520).
        clock_mhz: Array clock. Default 200 MHz (assumption, a common DSP-array clock).
        dram_gbps: DRAM bandwidth in GB/s (10^9 bytes); ``None`` models compute only, as the
            paper's speedups do. Default 19.2 (one 64-bit DDR4-2400 channel).
        pj_per_dsp_op: Energy of one DSP cycle doing packed multiply-accumulates. Default 1.0 pJ
            (assumption, the order of a 16-bit multiply in Horowitz, ISSCC 2014, 45 nm).
        pj_per_dram_byte: Default 160 pJ/byte (Horowitz 2014: 1.3-2.6 nJ per 64-bit DRAM access,
            low end).
        pj_per_bram_byte: Default 1.25 pJ/byte (Horowitz 2014: 10 pJ per 64-bit read of an
            8 KB SRAM).

    Example:
        >>> from optuna_kmtpe._zoo.models import build_model
        >>> cost = DSPPackingModel(build_model("resnet20", 10), (3, 32, 32))
        >>> cost.evaluate(bits=16).speedup
        1.0
        >>> round(cost.evaluate(bits=8).size_mb / cost.evaluate(bits=16).size_mb, 3)
        0.5
    """

    def __init__(
        self,
        model: torch.nn.Module,
        input_shape: Sequence[int],
        *,
        rows: int = 32,
        cols: int = 32,
        clock_mhz: float = 200.0,
        dram_gbps: float | None = 19.2,
        pj_per_dsp_op: float = 1.0,
        pj_per_dram_byte: float = 160.0,
        pj_per_bram_byte: float = 1.25,
    ) -> None:
        for name, count in (("rows", rows), ("cols", cols)):
            if int(count) != count or count < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {count!r}.")
        for name, value in (
            ("clock_mhz", clock_mhz),
            ("pj_per_dsp_op", pj_per_dsp_op),
            ("pj_per_dram_byte", pj_per_dram_byte),
            ("pj_per_bram_byte", pj_per_bram_byte),
        ):
            if not value >= 0 or (name == "clock_mhz" and value == 0):
                raise ValueError(f"`{name}` must be positive, got {value!r}.")
        if dram_gbps is not None and not dram_gbps > 0:
            raise ValueError(f"`dram_gbps` must be positive or None, got {dram_gbps!r}.")
        self.rows = int(rows)
        self.cols = int(cols)
        self.clock_hz = float(clock_mhz) * 1e6
        self.dram_gbps = dram_gbps
        self._bytes_per_cycle = None if dram_gbps is None else dram_gbps * 1e9 / self.clock_hz
        self._energy = (float(pj_per_dsp_op), float(pj_per_dram_byte), float(pj_per_bram_byte))

        input_shape = one_input_shape(model, input_shape)
        shapes = _trace_shapes(model, input_shape)
        self.layer_names: tuple[str, ...] = tuple(shapes)
        self._kind = np.array([s[0] for s in shapes.values()])
        self._kernel = np.array([s[1] for s in shapes.values()], dtype=np.int64)
        self._in_pixels = np.array([s[2] for s in shapes.values()], dtype=np.int64)
        self._out_pixels = np.array([s[3] for s in shapes.values()], dtype=np.int64)
        self._out = np.array([s[4] for s in shapes.values()], dtype=np.int64)
        self._in = np.array([s[5] for s in shapes.values()], dtype=np.int64)
        self._groups = np.array([s[6] for s in shapes.values()], dtype=np.int64)

        self.plan: WidthPlan | None = None
        self._no_plan_reason = ""
        try:
            from optuna_kmtpe._compress.widths import plan_widths

            self.plan = plan_widths(model, int(input_shape[0]))
        except Exception as e:  # noqa: BLE001 - any trace failure only disables widths.
            self._no_plan_reason = f"{type(e).__name__}: {e}"
        if self.plan is not None and self.plan.names != self.layer_names:
            self.plan = None
            self._no_plan_reason = "the fx graph and the traced layers disagree"
        self._base_cycles = 1
        self._base_cycles = self.evaluate(16).cycles

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def baseline(self) -> CostReport:
        """The FiP16 reference: 16 bits and width 1 everywhere (speedup 1)."""
        return self.evaluate(16)

    def check_bits(self, bits: Sequence[int] | np.ndarray | int) -> np.ndarray:
        """Broadcast and validate bit-widths; returns one int per layer.

        Raises:
            ValueError: Wrong length (lists the layers in order) or a bit-width without a
                packing rule.
        """
        arr = per_layer_values(bits, self.layer_names, "bits", int)
        as_int = arr.astype(np.int64)
        ok = (as_int == arr) & (as_int >= 0) & (as_int <= _MAX_BITS)
        ok[ok] = _PACKING_LUT[as_int[ok]] > 0
        if not np.all(ok):
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"Bit-width {arr[i]:g} of layer {i} ({self.layer_names[i]}) has no packing rule; "
                f"supported bit-widths: {', '.join(str(b) for b in sorted(PACKING))}."
            )
        return as_int

    def channels(
        self, widths: Sequence[float] | np.ndarray | float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(out, in, groups)`` per layer under ``widths`` (see
        :mod:`optuna_kmtpe._compress.widths`)."""
        if widths is None:
            return self._out, self._in, self._groups
        w = check_widths(widths, self.layer_names)
        if self.plan is None:
            if np.all(w == 1.0):
                return self._out, self._in, self._groups
            raise ValueError(
                "Width multipliers need a torch.fx-traceable model with supported channel "
                f"flow; this one is not ({self._no_plan_reason}). Use widths=None."
            )
        return self.plan.channels(w)

    def evaluate(
        self,
        bits: Sequence[int] | np.ndarray | int,
        widths: Sequence[float] | np.ndarray | float | None = None,
    ) -> CostReport:
        """Cost of one configuration.

        Args:
            bits: One bit-width for all layers or one per layer (see :attr:`layer_names`).
            widths: ``None`` (all 1), one multiplier for all layers, or one per layer.

        Returns:
            A :class:`CostReport`.
        """
        b = self.check_bits(bits)
        out, in_, groups = self.channels(widths)
        pack = _PACKING_LUT[b]
        patch = self._kernel * (in_ // groups)
        weights = out * patch
        macs = weights * self._out_pixels
        tiles = groups * -(-(out // groups) // self.rows) * -(-patch // self.cols)
        compute = -(-(tiles * self._out_pixels) // pack)
        dram = (weights + in_ * self._in_pixels + out * self._out_pixels) * b / 8.0
        if self._bytes_per_cycle is None:
            cycles = compute
        else:
            cycles = np.maximum(compute, np.ceil(dram / self._bytes_per_cycle).astype(np.int64))
        dsp_ops = -(-macs // pack)
        bram = 2.0 * macs * b / 8.0
        ebops = macs * b * b
        e_dsp, e_dram, e_bram = self._energy
        energy_pj = dsp_ops * e_dsp + dram * e_dram + bram * e_bram
        total_cycles = int(cycles.sum())
        latency = total_cycles / self.clock_hz
        return CostReport(
            size_bytes=float(weights @ b) / 8.0,
            cycles=total_cycles,
            latency_s=latency,
            speedup=self._base_cycles / total_cycles,
            energy_j=float(energy_pj.sum()) * 1e-12,
            throughput_fps=1.0 / latency,
            ebops=float(ebops.sum()),
            per_layer={
                "layer": np.asarray(self.layer_names),
                "kind": self._kind,
                "bits": b,
                "in": in_,
                "out": out,
                "groups": groups,
                "kernel": self._kernel,
                "out_pixels": self._out_pixels,
                "weights": weights,
                "macs": macs,
                "packing": pack,
                "compute_cycles": compute,
                "cycles": cycles,
                "dram_bytes": dram,
                "energy_uj": energy_pj * 1e-6,
                "ebops": ebops,
            },
        )


def _trace_shapes(
    model: torch.nn.Module, input_shape: tuple[int, ...]
) -> dict[str, tuple[str, int, int, int, int, int, int]]:
    """Run ``model`` once on zeros and record, per quantisable layer in ``named_modules``
    order, ``(kind, kernel size, input pixels, output pixels, out channels, in channels,
    groups)`` (a Conv1d's "pixels" are its positions)."""
    import torch

    from optuna_kmtpe._compress.layers import quantisable_layers

    layers = quantisable_layers(model)
    seen: dict[str, tuple[str, int, int, int, int, int, int]] = {}

    def hook(name: str) -> Any:
        def record(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            if name in seen:
                raise ValueError(f"Layer {name!r} runs twice per forward; not supported.")
            x = args[0]
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
                spatial = module.kernel_size  # (k,) for Conv1d, (kh, kw) for Conv2d
                dims = len(spatial)
                seen[name] = (
                    "conv",
                    math.prod(spatial),
                    math.prod(int(d) for d in x.shape[-dims:]),
                    math.prod(int(d) for d in output.shape[-dims:]),
                    module.out_channels,
                    module.in_channels,
                    module.groups,
                )
            else:
                assert isinstance(module, torch.nn.Linear)
                rows = int(x[0].numel() // module.in_features)  # tokens per sample
                seen[name] = ("linear", 1, rows, rows, module.out_features, module.in_features, 1)

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in seen]
    if missing:
        raise ValueError(f"Layers never called in forward() on the sample input: {missing}.")
    return {n: seen[n] for n in layers}
