"""Models for the toolchain checks (benchmarks/finn_check.sh, benchmarks/hls4ml_qonnx_check.py).

Runs in this package's environment. Trains two fake-quantised models on scikit-learn digits
(seed 0), exports each as QONNX with ``kmtpe export`` / :func:`optuna_kmtpe._export.export`
(zero points extracted, the default) and saves, per model, ``<name>.onnx`` and
``<name>.npz`` (the test split's normalised inputs ``x``, labels ``y`` and PyTorch's logits):

* ``small_cnn``: the configuration of the default search run
  (``benchmarks/results/search-digits/best_config.json``: bits 6/4/2/3, widths
  1.125/1.125/0.75/1), trained ``--epochs`` epochs, saved as a run folder and exported with
  ``kmtpe export RUN --format qonnx`` (and as ``small_cnn_keep`` with ``--zero-points keep``,
  the zero point in the first ``Quant``, to show what FINN says to it);
* ``small_cnn_pixels``: the same run exported with ``--input pixels`` (the graph input is the
  raw pixels behind an unsigned 8-bit ``Quant``; its ``x`` are the raw pixels);
* ``resnet20``: residual (option-A shortcuts), every bit-width 2..8 and widths 0.75..1.25, on
  the digits repeated to three channels (as in ``tests/test_export.py``), and
  ``resnet20_pixels``, the same model with the raw-pixel input.

Usage::

    python benchmarks/toolchain_models.py --out /tmp/toolchain --epochs 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optuna_kmtpe._compress.quant import quantize_model
from optuna_kmtpe._export import export
from optuna_kmtpe._export._pixels import PixelInput
from optuna_kmtpe._search.checkpoint import save_checkpoint
from optuna_kmtpe._zoo.data import DataSplits
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.train import train
from optuna_kmtpe.cli import main as kmtpe


REPO = Path(__file__).resolve().parents[1]
RES_BITS = [8, 6, 4, 3, 2] * 4
RES_WIDTHS = [0.75, 1.0, 1.25, 0.875, 1.125] * 4


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


def _save(
    out: Path, name: str, model: torch.nn.Module, data: DataSplits, pixels: bool = False
) -> None:
    x = data.prepare(data.test[0])
    with torch.no_grad():
        logits = model.eval()(x).numpy()
    if pixels:
        x = data.test[0].float()
    np.savez(out / f"{name}.npz", x=x.numpy(), y=np.asarray(data.test[1]), logits=logits)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)

    best = json.loads((REPO / "benchmarks/results/search-digits/best_config.json").read_text())
    small = quantize_model(build_model("small_cnn", 10, widths=best["widths"]), best["bits"])
    train(small, data, epochs=args.epochs, max_lr=0.01, device="cpu")
    meta = {"model": "small_cnn", "dataset": "digits", "num_classes": 10}
    meta.update(bits=best["bits"], widths=best["widths"])
    save_checkpoint(small.eval(), out / "run" / "final_model.pt", meta=meta)
    variants = {
        "small_cnn": [],
        "small_cnn_keep": ["--zero-points", "keep"],
        "small_cnn_pixels": ["--input", "pixels"],
    }
    for name, options in variants.items():
        path = str(out / f"{name}.onnx")
        argv = ["export", str(out / "run"), "--format", "qonnx", "--out", path]
        if kmtpe([*argv, *options]) != 0:
            raise SystemExit(f"kmtpe export {' '.join(options)} failed")
        _save(out, name, small, data, pixels="pixels" in options)

    data3 = _digits3(data)
    res = quantize_model(build_model("resnet20", 10, widths=RES_WIDTHS), RES_BITS)
    train(res, data3, epochs=max(3, args.epochs // 3), max_lr=0.01, device="cpu")
    for name, pixels in (("resnet20", None), ("resnet20_pixels", PixelInput.of(data3))):
        summary = export(
            res.eval(),
            (3, 8, 8),
            format="qonnx",
            path=out / f"{name}.onnx",
            inputs=data3.prepare(data3.test[0]) if pixels is None else data3.test[0].float(),
            labels=data3.test[1],
            inputs_label="digits x3 channels, test split",
            pixels=pixels,
        )
        if not summary.check["passed"]:
            raise SystemExit(f"{name} QONNX check failed: {summary.check}")
        _save(out, name, res, data3, pixels=pixels is not None)
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


if __name__ == "__main__":
    main()
