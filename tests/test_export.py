"""QONNX / QCDQ export: execute the exported graphs and compare them with PyTorch.

Two trained, fake-quantised models on scikit-learn digits (8x8, real images): ``small_cnn``
at the default search run's configuration, and ResNet-20 (residual, option-A shortcuts,
width-scaled, mixed bits) on the digits repeated to three channels. Each export runs on the
whole test split (360 images).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest


torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("qonnx")

from torch import nn  # noqa: E402

from optuna_kmtpe._compress.quant import quantize_model  # noqa: E402
from optuna_kmtpe._export import export  # noqa: E402
from optuna_kmtpe._export import ExportError  # noqa: E402
from optuna_kmtpe._export._layers import read_quantization  # noqa: E402
from optuna_kmtpe._export._pixels import PixelInput  # noqa: E402
from optuna_kmtpe._export.qcdq import export_qcdq  # noqa: E402
from optuna_kmtpe._export.qcdq import run_qcdq  # noqa: E402
from optuna_kmtpe._export.qonnx import export_qonnx  # noqa: E402
from optuna_kmtpe._export.qonnx import quant_bitwidths  # noqa: E402
from optuna_kmtpe._export.qonnx import quant_params  # noqa: E402
from optuna_kmtpe._export.qonnx import run_qonnx  # noqa: E402
from optuna_kmtpe._zoo.data import DataSplits  # noqa: E402
from optuna_kmtpe._zoo.data import load_dataset  # noqa: E402
from optuna_kmtpe._zoo.models import build_model  # noqa: E402
from optuna_kmtpe._zoo.models import layer_names  # noqa: E402
from optuna_kmtpe._zoo.train import train  # noqa: E402


#: The configuration of the default ``kmtpe search`` run (benchmarks/results/search-digits).
SMALL_BITS = [6, 4, 2, 3]
SMALL_WIDTHS = [1.125, 1.125, 0.75, 1.0]
#: ResNet-20: every bit-width of the search space, narrower and wider layers.
RES_BITS = [8, 6, 4, 3, 2] * 4
RES_WIDTHS = [0.75, 1.0, 1.25, 0.875, 1.125] * 4
#: Logit tolerance of the execution checks (see optuna_kmtpe._export.compare).
TOL = 1e-4


@dataclasses.dataclass
class Case:
    name: str
    model: nn.Module
    input_shape: tuple[int, int, int]
    bits: list[int]
    data: DataSplits

    @property
    def x(self) -> Any:
        return self.data.prepare(self.data.test[0])

    @property
    def y(self) -> Any:
        return self.data.test[1]


def _digits3(data: DataSplits) -> DataSplits:
    def rgb(split: Any) -> Any:
        return (split[0].repeat(1, 3, 1, 1), split[1])

    return dataclasses.replace(
        data,
        input_shape=(3, 8, 8),
        train=rgb(data.train),
        val=rgb(data.val),
        test=rgb(data.test),
        mean=data.mean * 3,
        std=data.std * 3,
    )


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)
    small = quantize_model(build_model("small_cnn", 10, widths=SMALL_WIDTHS), SMALL_BITS)
    train(small, data, epochs=6, max_lr=0.01, device="cpu")
    data3 = _digits3(data)
    res = quantize_model(build_model("resnet20", 10, widths=RES_WIDTHS), RES_BITS)
    train(res, data3, epochs=3, max_lr=0.01, device="cpu")
    return {
        "small_cnn": Case("small_cnn", small.eval(), (1, 8, 8), SMALL_BITS, data),
        "resnet20": Case("resnet20", res.eval(), (3, 8, 8), RES_BITS, data3),
    }


@pytest.fixture(params=["small_cnn", "resnet20"])
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    return cases[request.param]


def _torch_logits(case: Case) -> np.ndarray:
    with torch.no_grad():
        return case.model(case.x).numpy()


def _agree(got: np.ndarray, ref: np.ndarray) -> tuple[int, int, float]:
    diff = np.abs(got - ref).max(axis=1)
    return int((got.argmax(1) == ref.argmax(1)).sum()), int((diff > TOL).sum()), diff.max()


def test_qonnx_quant_nodes_carry_the_searched_bits_scales_and_zero_points(
    case: Case, tmp_path: Path
) -> None:
    model, layers = export_qonnx(case.model, case.input_shape, path=tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").is_file()
    assert layers == layer_names(case.name, 10)  # execution order = module order here
    bw = quant_bitwidths(model, layers)
    assert bw["weight"].tolist() == case.bits
    assert bw["input"].tolist() == case.bits
    params = quant_params(model, layers)
    for q in read_quantization(case.model):
        p = params[q.name]
        w = p["weight"]
        assert (w["signed"], w["narrow"]) == (1, 1)
        np.testing.assert_array_equal(w["scale"].reshape(-1), q.weight_scale)
        assert float(w["zero_point"]) == 0.0
        # Initializer / scale gives the integer weights exactly, within the narrow range.
        ints = w["values"] / w["scale"]
        np.testing.assert_array_equal(np.round(ints), q.weight_int)
        assert np.abs(ints - np.round(ints)).max() < 1e-4
        assert np.abs(q.weight_int).max() <= 2 ** (q.bits - 1) - 1
        a = p["input"]
        assert (a["signed"], a["narrow"]) == (0, 0)
        assert float(a["scale"]) == q.act_scale  # float32, bit for bit
        assert float(a["zero_point"]) == 0.0  # extracted into Add / Sub (FINN)
        assert a["layer_zero_point"] == q.act_zero_point
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" in ops  # kept, not folded (see qonnx.py)
    assert {n.domain for n in model.graph.node if n.op_type == "Quant"} == {
        "qonnx.custom_op.general"
    }


@pytest.mark.parametrize("zero_points", ["extract", "keep"])
def test_qonnx_execute_onnx_reproduces_pytorch_on_the_test_split(
    case: Case, zero_points: str
) -> None:
    model, layers = export_qonnx(case.model, case.input_shape, zero_points=zero_points)
    zps = [p["input"]["zero_point"] for p in quant_params(model, layers).values()]
    if zero_points == "keep":  # the first layer's input (normalised image) is asymmetric
        assert float(zps[0]) != 0.0
    ref = _torch_logits(case)
    got = run_qonnx(model, case.x.numpy())
    agree, n_differ, _ = _agree(got, ref)
    assert agree == len(ref) == 360
    assert n_differ <= 0.01 * len(ref)


def _finn_removes_relus(model: Any) -> Any:
    """What FINN's ``ConvertQONNXtoFINN`` does to ``Relu -> Quant``: the ``Quant`` reads the
    ``Relu``'s input and the ``Relu`` is deleted, its other consumers left as they are."""
    for node in list(model.graph.node):
        relu = model.find_producer(node.input[0]) if node.op_type == "Quant" else None
        if relu is not None and relu.op_type == "Relu":
            node.input[0] = relu.input[0]
            model.graph.node.remove(relu)
    return model


def test_qonnx_is_exact_after_finns_relu_removal(case: Case) -> None:
    # An unsigned zero-point-0 Quant clips at 0, so Quant(x) == Quant(Relu(x)); the residual
    # shortcut must keep its own Relu (FINN's execution of the old export agreed 40/360).
    model = _finn_removes_relus(export_qonnx(case.model, case.input_shape)[0])
    written = {t for n in model.graph.node for t in n.output}
    written |= {t.name for t in model.graph.input} | {t.name for t in model.graph.initializer}
    assert {t for n in model.graph.node for t in n.input if t} <= written
    ref = _torch_logits(case)[:60]
    agree, n_differ, _ = _agree(run_qonnx(model, case.x[:60].numpy()), ref)
    assert agree == 60
    assert n_differ <= 1


def test_qonnx_pixel_input_is_an_unsigned_8bit_quant(case: Case) -> None:
    from qonnx.core.datatype import DataType

    model, _ = export_qonnx(case.model, case.input_shape, pixels=PixelInput.of(case.data))
    name = model.graph.input[0].name
    (first,) = model.find_consumers(name)
    assert first.op_type == "Quant"
    assert [float(model.get_initializer(first.input[i])) for i in (1, 2, 3)] == [1.0, 0.0, 8.0]
    assert {a.name: a.i for a in first.attribute if a.name in ("signed", "narrow")} == {
        "signed": 0,
        "narrow": 0,
    }
    assert model.get_tensor_datatype(name) == DataType["UINT8"]
    pixels = case.data.test[0][:60].float()
    assert torch.equal(pixels, pixels.round()) and 0 <= pixels.min() <= pixels.max() <= 255
    agree, n_differ, _ = _agree(run_qonnx(model, pixels.numpy()), _torch_logits(case)[:60])
    assert agree == 60
    assert n_differ <= 1
    two = PixelInput(1.0, (0.0, 0.0), (1.0, 1.0))
    with pytest.raises(ExportError, match=r"PixelInput has 2 channel\(s\)"):
        export_qonnx(case.model, case.input_shape, pixels=two)


def test_qcdq_onnxruntime_reproduces_pytorch_on_the_test_split(case: Case, tmp_path: Path) -> None:
    proto = export_qcdq(case.model, case.input_shape, path=tmp_path / "m.onnx")
    ops = [n.op_type for n in proto.graph.node]
    n_layers = len(case.bits)
    assert ops.count("QuantizeLinear") == ops.count("DequantizeLinear") == 2 * n_layers
    assert "Quant" not in ops
    # One Clip per sub-8-bit quantiser (8-bit inputs use the full uint8 range).
    assert ops.count("Clip") == 2 * n_layers - sum(b == 8 for b in case.bits)
    ref = _torch_logits(case)
    got = run_qcdq(proto, case.x.numpy())
    agree, n_differ, _ = _agree(got, ref)
    assert agree == len(ref) == 360
    assert n_differ <= 0.01 * len(ref)


def test_qcdq_clip_bounds_are_the_searched_ranges(cases: dict[str, Case]) -> None:
    import onnx.numpy_helper

    case = cases["small_cnn"]
    proto = export_qcdq(case.model, case.input_shape)
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    clips = [
        (int(consts[n.input[1]]), int(consts[n.input[2]]), consts[n.input[1]].dtype.type)
        for n in proto.graph.node
        if n.op_type == "Clip"
    ]
    expected = []
    for b in case.bits:  # per layer: input (uint8), then weight (int8, narrow)
        expected += [(0, 2**b - 1, np.uint8), (-(2 ** (b - 1)) + 1, 2 ** (b - 1) - 1, np.int8)]
    assert clips == expected


def test_export_summary_costs_match_qonnx_inference_cost(case: Case, tmp_path: Path) -> None:
    summary = export(
        case.model,
        case.input_shape,
        format="qonnx",
        path=tmp_path / "m.onnx",
        inputs=case.x,
        labels=case.y,
    )
    assert [r["bits"] for r in summary.layers] == case.bits
    for r in summary.layers:
        assert r["cost_macs"] == r["qonnx_macs"], r["layer"]
        assert r["cost_weight_bits"] == r["qonnx_weight_bits"], r["layer"]
        if r["input_zero_point"] == 0:  # qonnx types a zero-point input as SCALEDINT<b>
            assert r["cost_ebops"] == r["qonnx_bops"], r["layer"]
        else:  # ... and an asymmetric one as FLOAT32
            assert r["qonnx_input_dtype"] == "FLOAT32"
            assert r["qonnx_bops"] == r["cost_macs"] * 32 * r["bits"]
    assert summary.totals["cost_macs"] == summary.totals["qonnx_macs"]
    assert (
        summary.cost["ebops"]
        == summary.totals["cost_ebops"]
        == sum(r["cost_macs"] * r["bits"] ** 2 for r in summary.layers)
    )
    assert f"EBOPs {summary.cost['ebops']:,.0f} (qonnx inference-cost BOPs" in summary.markdown()
    assert "compute-bound" in summary.cost_model
    c = summary.check
    assert c["passed"] and c["argmax_agree"] == c["n"] == 360
    assert c["accuracy_export"] == c["accuracy_torch"]
    assert "BatchNorm" in summary.markdown()


def _with(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    import copy

    net = copy.deepcopy(model)
    setattr(net, name, module)
    return net


def test_errors_name_the_layer(cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases["small_cnn"]
    out = tmp_path / "m.onnx"
    float_fc2 = _with(case.model, "fc2", nn.Linear(64, 10))
    with pytest.raises(ExportError, match=r"'fc2' \(Linear\) is not fake-quantised"):
        export(float_fc2, (1, 8, 8), format="qonnx", path=out)
    conv1d = _with(case.model, "extra", nn.Conv1d(1, 1, 3))
    with pytest.raises(ExportError, match=r"'extra' \(Conv1d\) is not supported"):
        export(conv1d, (1, 8, 8), format="qcdq", path=out)
    norm = _with(case.model, "norm", nn.LayerNorm(4))
    with pytest.raises(ExportError, match=r"'norm' \(LayerNorm\)"):
        export(norm, (1, 8, 8), format="qonnx", path=out)
    fresh = quantize_model(build_model("small_cnn", 10), 4)
    with pytest.raises(ExportError, match="'conv1' has never seen data"):
        export(fresh, (1, 8, 8), format="qonnx", path=out)
    wide = quantize_model(case.model, [12, 4, 2, 3])
    with pytest.raises(ExportError, match=r"conv1 \(12 bits\)"):
        export(wide, (1, 8, 8), format="qcdq", path=out)
    with pytest.raises(ExportError, match="Unknown format 'tflite'"):
        export(case.model, (1, 8, 8), format="tflite", path=out)


def test_cli_exports_a_run_dir(cases: dict[str, Case], tmp_path: Path) -> None:
    import json

    from optuna_kmtpe._search.checkpoint import save_checkpoint
    from optuna_kmtpe.cli import main

    case = cases["small_cnn"]
    run = tmp_path / "run"
    meta: dict[str, Any] = {
        "model": "small_cnn",
        "dataset": "digits",
        "num_classes": 10,
        "bits": SMALL_BITS,
        "widths": SMALL_WIDTHS,
    }
    save_checkpoint(case.model, run / "final_model.pt", meta=meta)
    for fmt in ("qonnx", "qcdq"):
        out = tmp_path / f"m.{fmt}.onnx"
        assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
        if fmt == "qonnx":  # every Quant node has zero point 0 (FINN refuses others)
            import onnx
            from onnx import numpy_helper

            graph = onnx.load(str(out)).graph
            inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
            quants = [n for n in graph.node if n.op_type == "Quant"]
            assert len(quants) == 2 * len(SMALL_BITS)
            assert all(not np.any(inits[n.input[2]]) for n in quants)
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert summary["check"]["passed"], summary["check"]
        assert summary["check"]["n"] == 360
        assert [r["bits"] for r in summary["layers"]] == SMALL_BITS
        assert out.with_suffix(".summary.md").is_file()
    # Priced with the run's cost-model reading, named in the summary (no reading: memory).
    assert "memory-bound" in summary["cost_model"]
    assert any("--cost-model memory" in n for n in summary["notes"])
    save_checkpoint(case.model, run / "final_model.pt", meta={**meta, "cost_model": "compute"})
    out = tmp_path / "c.qonnx.onnx"
    assert main(["export", str(run), "--format", "qonnx", "--out", str(out), "--no-check"]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert "compute-bound" in summary["cost_model"]
    assert any("--cost-model compute" in n for n in summary["notes"])


def test_cli_exports_a_pixel_input(cases: dict[str, Case], tmp_path: Path) -> None:
    import json

    from optuna_kmtpe._search.checkpoint import save_checkpoint
    from optuna_kmtpe.cli import main

    run = tmp_path / "run"
    meta = {"model": "small_cnn", "dataset": "digits", "num_classes": 10}
    meta.update(bits=SMALL_BITS, widths=SMALL_WIDTHS)
    save_checkpoint(cases["small_cnn"].model, run / "final_model.pt", meta=meta)
    out = tmp_path / "p.qonnx.onnx"
    argv = ["export", str(run), "--out", str(out), "--input", "pixels", "--limit", "60"]
    assert main([*argv, "--format", "qonnx"]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["check"]["passed"] and summary["check"]["argmax_agree"] == 60
    assert any("raw pixels (datatype UINT8)" in n for n in summary["notes"])
    assert main([*argv, "--format", "qcdq"]) == 2
