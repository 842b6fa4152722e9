"""FINN's own code on our QONNX export (``benchmarks/finn_check.py`` in the finn-plus venv).

finn-plus pins packages this project's environment cannot take, so it lives in its own virtual
environment (``benchmarks/finn_check.sh`` makes it); the test runs where that environment
exists (``KMTPE_FINN_VENV``, default ``/work/venvs/finn``) and is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess

import numpy as np
import pytest


torch = pytest.importorskip("torch")
pytest.importorskip("qonnx")

from optuna_kmtpe._compress.quant import quantize_model  # noqa: E402
from optuna_kmtpe._export.qonnx import export_qonnx  # noqa: E402
from optuna_kmtpe._zoo.data import load_dataset  # noqa: E402
from optuna_kmtpe._zoo.models import build_model  # noqa: E402
from optuna_kmtpe._zoo.train import train  # noqa: E402


REPO = Path(__file__).resolve().parents[1]
FINN_VENV = Path(os.environ.get("KMTPE_FINN_VENV", "/work/venvs/finn"))
BITS = [6, 4, 2, 3]  # the default search run's configuration
WIDTHS = [1.125, 1.125, 0.75, 1.0]


@pytest.mark.slow
@pytest.mark.skipif(
    not (FINN_VENV / "bin" / "python").exists(),
    reason=f"no finn-plus environment at {FINN_VENV} (bash benchmarks/finn_check.sh makes one; "
    "or set KMTPE_FINN_VENV)",
)
def test_finn_converts_streamlines_and_executes_our_qonnx(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)
    net = quantize_model(build_model("small_cnn", 10, widths=WIDTHS), BITS)
    train(net, data, epochs=4, max_lr=0.01, device="cpu")
    net.eval()
    x = data.prepare(data.test[0][:60])
    with torch.no_grad():
        logits = net(x).numpy()
    for name, zero_points in (("extract", "extract"), ("keep", "keep")):
        export_qonnx(net, (1, 8, 8), path=tmp_path / f"{name}.onnx", zero_points=zero_points)
        np.savez(tmp_path / f"{name}.npz", x=x.numpy(), y=data.test[1][:60].numpy(), logits=logits)
    out = tmp_path / "finn.json"
    subprocess.run(
        [str(FINN_VENV / "bin" / "python"), str(REPO / "benchmarks" / "finn_check.py"),
         str(tmp_path), "extract", "keep", "--json", str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=1200,
    )  # fmt: skip
    extract, keep = json.loads(out.read_text())["models"]
    assert extract["quant_nonzero_zero_points"] == 0
    assert extract["convert"]["ok"] and extract["streamline"]["ok"], extract
    assert extract["streamline"]["quant_nodes_left"] == 0
    assert extract["execute"]["graph"] == "streamline"
    assert extract["execute"]["argmax_agree"] == 60
    assert extract["execute"]["max_abs_diff"] < 1e-3
    # The zero point left in the first Quant is what FINN refuses.
    assert keep["quant_nonzero_zero_points"] == 1
    assert not keep["convert"]["ok"] and "zero-point" in keep["convert"]["error"]
