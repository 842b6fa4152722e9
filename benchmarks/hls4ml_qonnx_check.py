"""hls4ml's QONNX frontend on ``kmtpe export RUN --format qonnx``: convert, C simulation, compare.

For a search run folder (``RUN/final_model.pt``), exports QONNX twice, with the per-channel
weight scales in the ``Quant`` nodes (the default) and with ``--weight-scales mul`` (integer
weights, scales as a Mul after each layer), converts each with hls4ml's QONNX frontend
(:mod:`optuna_kmtpe._export.hls4ml_qonnx`), compiles the C simulation with g++ and compares it
with the PyTorch model on the dataset's test split (argmax agreement, max |logit difference|,
both accuracies). A step that raises is recorded with its error. Prints and writes one JSON.

Usage::

    python benchmarks/hls4ml_qonnx_check.py RUN_DIR OUT_DIR --json OUT_DIR/hls4ml_qonnx.json
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
import json
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch

from optuna_kmtpe._commands.export import load_run
from optuna_kmtpe._export.hls4ml_qonnx import build
from optuna_kmtpe._export.hls4ml_qonnx import offset_layers
from optuna_kmtpe._export.hls4ml_qonnx import predict
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe.cli import main as kmtpe


def check(
    run: Path, out: Path, weight_scales: str, x: torch.Tensor, y: Any, ref: Any
) -> dict[str, Any]:
    path = out / f"model_{weight_scales}.onnx"
    argv = ["export", str(run), "--format", "qonnx", "--out", str(path), "--no-check"]
    if kmtpe([*argv, "--weight-scales", weight_scales]) != 0:
        return {"weight_scales": weight_scales, "error": "kmtpe export failed"}
    result: dict[str, Any] = {"weight_scales": weight_scales, "file": path.name}
    t0 = time.perf_counter()
    try:
        hls_model = build(path, out / f"hls4ml_{weight_scales}")
    except Exception as e:  # noqa: BLE001 - the error is the result
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    result["layers"] = [f"{layer.name}:{layer.class_name}" for layer in hls_model.get_layers()]
    result["offsets"] = offset_layers(hls_model)
    got = predict(hls_model, x.numpy())
    diff = np.abs(got - ref).max(axis=1)
    result.update(
        n=int(len(ref)),
        argmax_agree=int((got.argmax(1) == ref.argmax(1)).sum()),
        max_abs_diff=float(diff.max()),
        median_abs_diff=float(np.median(diff)),
        accuracy_torch=float((ref.argmax(1) == y).mean()),
        accuracy_hls4ml=float((got.argmax(1) == y).mean()),
        seconds=round(time.perf_counter() - t0, 1),
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    run, out = Path(args.run_dir), Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qmodel, meta, _ = load_run(run)
    data = load_dataset(str(meta.get("dataset", "digits")), seed=0)
    x = data.prepare(data.test[0])
    y = np.asarray(data.test[1])
    with torch.no_grad():
        ref = qmodel(x).numpy()
    results = {
        "hls4ml": version("hls4ml"),
        "qonnx": version("qonnx"),
        "run": {k: meta[k] for k in ("model", "bits", "widths")},
        "inputs": f"{data.label}, test split, {len(y)} images, seed 0",
        "exports": [check(run, out, w, x, y, ref) for w in ("quant", "mul")],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
