"""hls4ml export: precision config from bits and ranges, ReuseFactor from the DSP budget, and
the C simulation (compiled with g++) against PyTorch on the digits test split."""

from __future__ import annotations

import json
import math
from pathlib import Path
import shutil
from typing import Any

import numpy as np
import pytest


torch = pytest.importorskip("torch")
pytest.importorskip("qonnx")

from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from optuna_kmtpe._compress.quant import quantize_model  # noqa: E402
from optuna_kmtpe._export import export  # noqa: E402
from optuna_kmtpe._export import ExportError  # noqa: E402
from optuna_kmtpe._export._layers import read_quantization  # noqa: E402
from optuna_kmtpe._export.hls4ml import precision_rows  # noqa: E402
from optuna_kmtpe._export.hls4ml import valid_reuse_factor  # noqa: E402
from optuna_kmtpe._zoo.data import load_dataset  # noqa: E402
from optuna_kmtpe._zoo.models import build_model  # noqa: E402
from optuna_kmtpe._zoo.train import train  # noqa: E402


BITS = [6, 4, 2, 3]
WIDTHS = [1.125, 1.125, 0.75, 1.0]


class _TinyResidual(nn.Module):
    """Conv stem, one identity-shortcut residual block, max-pool, classifier (8x8 input)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: Any) -> Any:
        x = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(x + self.bn3(self.conv3(y)))
        return self.fc(F.max_pool2d(x, 2).flatten(1))


@pytest.fixture(scope="module")
def digits() -> object:
    torch.set_num_threads(1)
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def small(digits: object) -> nn.Module:
    torch.manual_seed(0)
    net = quantize_model(build_model("small_cnn", 10, widths=WIDTHS), BITS)
    train(net, digits, epochs=6, max_lr=0.01, device="cpu")  # type: ignore[arg-type]
    return net.eval()


def test_precision_follows_bits_and_ranges(small: nn.Module) -> None:
    rows = precision_rows(small, (1, 8, 8))
    assert [r["hls4ml_name"] for r in rows] == ["conv1", "conv2", "fc1", "fc2"]
    for r, q in zip(rows, read_quantization(small)):
        kind, rest = r["weight"].split("<")
        b, i = (int(v) for v in rest.split(",")[:2])
        assert (kind, b) == ("ap_fixed", q.bits)
        w_max = float(np.max(q.weight_scale)) * q.weight_qmax
        top = 2.0 ** (i - 1) - 2.0 ** (i - b)
        assert top >= w_max / 8 - 2.0 ** (i - b)  # at most three integer bits below "fits"
        kind, rest = r["input"].split("<")
        b, i = (int(v) for v in rest.split(",")[:2])
        assert b == q.bits
        assert kind == ("ap_fixed" if q.act_lo < 0 else "ap_ufixed")
        assert "AP_RND_CONV" in r["input"] and "AP_SAT" in r["weight"]


def test_reuse_factor_is_valid_for_hls4ml_and_fits_the_dsp_budget(small: nn.Module) -> None:
    rows = precision_rows(small, (1, 8, 8))
    for r in rows:
        mults = r["mults_per_output"]
        assert math.ceil(mults / r["reuse_factor"]) <= r["packing"] * max(r["dsp_share"], 1) + 1
    hls4ml = pytest.importorskip("hls4ml")
    backend = hls4ml.backends.get_backend("Vivado")
    for n_in, n_out in ((9, 16), (144, 32), (512, 64), (64, 10), (180, 20)):
        valid = backend.get_valid_reuse_factors(n_in, n_out)
        for target in (1, 3, 7, 50):
            expected = next((v for v in valid if v >= target), valid[-1])
            assert valid_reuse_factor(n_in=n_in, n_out=n_out, target=target) == expected


def test_config_is_written_and_keyed_by_layer_names(small: nn.Module, tmp_path: Path) -> None:
    summary = export(small, (1, 8, 8), format="hls4ml", path=tmp_path, hls4ml_compile=False)
    config = json.loads((tmp_path / "hls4ml_config.json").read_text())
    for name, bits in zip(("conv1", "conv2", "fc1", "fc2"), BITS):
        assert config["LayerName"][name]["Precision"]["weight"].startswith(f"ap_fixed<{bits},")
    assert (tmp_path / "precision.json").is_file()
    assert [r["bits"] for r in summary.layers] == BITS


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    pytest.importorskip("hls4ml")
    net = quantize_model(build_model("resnet20", 10, widths=0.75), 4).eval()
    net(torch.randn(2, 3, 8, 8))
    with pytest.raises(ExportError, match=r"layer 'layer2.0.shortcut' \(_ShortcutA\)"):
        export(net, (3, 8, 8), format="hls4ml", path=tmp_path, hls4ml_compile=False)


def _csim(net: nn.Module, digits: object, tmp_path: Path) -> dict[str, object]:
    pytest.importorskip("hls4ml")
    if shutil.which("g++") is None:
        pytest.skip("g++ is missing: no hls4ml C simulation")
    x = digits.prepare(digits.test[0])  # type: ignore[attr-defined]
    summary = export(
        net,
        (1, 8, 8),
        format="hls4ml",
        path=tmp_path,
        inputs=x,
        labels=digits.test[1],  # type: ignore[attr-defined]
    )
    return summary.check


def test_hls4ml_c_simulation_agrees_with_pytorch(
    small: nn.Module, digits: object, tmp_path: Path
) -> None:
    check = _csim(small, digits, tmp_path)
    assert check["n"] == 360
    assert check["passed"], check  # >= 90% argmax agreement (measured 95.8%)
    assert abs(check["accuracy_export"] - check["accuracy_torch"]) <= 0.03  # type: ignore[operator]


@pytest.mark.slow
def test_hls4ml_c_simulation_of_a_residual_model(digits: object, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = quantize_model(_TinyResidual(), [6, 4, 3, 4])
    train(net, digits, epochs=6, max_lr=0.01, device="cpu")  # type: ignore[arg-type]
    check = _csim(net.eval(), digits, tmp_path)
    assert check["passed"], check


def _hls4ml_qonnx(small: nn.Module, tmp_path: Path, *, compile: bool) -> Any:
    pytest.importorskip("hls4ml")
    from optuna_kmtpe._export.hls4ml_qonnx import build
    from optuna_kmtpe._export.qonnx import export_qonnx

    export_qonnx(small, (1, 8, 8), path=tmp_path / "m.onnx", weight_scales="mul")
    return build(tmp_path / "m.onnx", tmp_path / "prj", compile=compile)


def test_hls4ml_qonnx_frontend_keeps_the_zero_point_and_integer_weights(
    small: nn.Module, tmp_path: Path
) -> None:
    from optuna_kmtpe._export.hls4ml_qonnx import offset_layers

    hls_model = _hls4ml_qonnx(small, tmp_path, compile=False)
    first = read_quantization(small)[0]
    assert first.act_zero_point != 0  # the normalised image is signed
    offsets = offset_layers(hls_model)
    # x / s + z before the unsigned quantiser, and q * s - z * s after it: nothing dropped.
    before = [o for o in offsets if o["bias"] == first.act_zero_point]
    after = [
        o
        for o in offsets
        if o["bias"] == pytest.approx(-first.act_zero_point * first.act_scale, rel=1e-3)
    ]
    assert before and before[0]["scale"] == pytest.approx(1 / first.act_scale, rel=1e-3)
    assert after and after[0]["scale"] == pytest.approx(first.act_scale, rel=1e-3)
    # Each Conv2D / Dense holds its integer weights at the searched bit-width.
    kinds = [layer for layer in hls_model.get_layers() if layer.class_name in ("Conv2D", "Dense")]
    found = [str(layer.weights["weight"].type.precision) for layer in kinds]
    assert found == [f"fixed<{b},{b},RND_CONV,SAT_SYM,0>" for b in BITS]
    for layer, q in zip(kinds, read_quantization(small)):
        w = np.asarray(layer.weights["weight"].data)
        assert np.array_equal(np.sort(w.ravel()), np.sort(q.weight_int.ravel().astype(w.dtype)))


@pytest.mark.slow
def test_hls4ml_qonnx_frontend_c_simulation_agrees_with_pytorch(
    small: nn.Module, digits: object, tmp_path: Path
) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed for hls4ml's C simulation")
    from optuna_kmtpe._export.hls4ml_qonnx import predict

    hls_model = _hls4ml_qonnx(small, tmp_path, compile=True)
    x = digits.prepare(digits.test[0])  # type: ignore[attr-defined]
    with torch.no_grad():
        ref = small(x).numpy()
    got = predict(hls_model, x.numpy())
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
