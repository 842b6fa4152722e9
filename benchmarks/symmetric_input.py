"""What a FINN-ready first layer costs: the asymmetric input quantiser (today's; its zero point
goes into Add / Sub in the QONNX export, exact) against a symmetric signed one (zero point 0 in
the quantiser itself), trained the same way.

The first quantised layer sees the normalised image, which is signed, so its ``b``-bit input
grid is affine (``2**b`` levels over ``[lo, hi]``, zero point inside). The symmetric variant
replaces that layer's input quantiser by a narrow signed grid over ``[-m, m]``,
``m = max(|lo|, |hi|)`` (``2**b - 1`` levels, one bit of range spent on the sign); every
other layer is unchanged. Test accuracy after the same training, per seed.

Data: scikit-learn digits (``small_cnn`` at the default search run's configuration) and
Fashion-MNIST read from ``/usr/share/datasets/fashion-mnist`` (its 10,000-image t10k file,
split 64/16/20 like mnist-5k; ``mnist_cnn`` at 4 bits everywhere), when present.

Usage::

    python benchmarks/symmetric_input.py --seeds 3 --json benchmarks/results/symmetric-input.json
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
import types
from typing import Any

import numpy as np
import torch

from optuna_kmtpe._compress.quant import quantize_model
from optuna_kmtpe._compress.quant import quantized_layers
from optuna_kmtpe._zoo import train as _train
from optuna_kmtpe._zoo.data import _grey_splits
from optuna_kmtpe._zoo.data import DataSplits
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.models import build_model


FASHION = Path("/usr/share/datasets/fashion-mnist")


def _symmetric_input(self: Any, x: torch.Tensor) -> torch.Tensor:
    lo, hi, guard = self.act_range.update(x)
    qmax = 2 ** (self.bits - 1) - 1
    amax = torch.maximum(torch.as_tensor(lo).abs(), torch.as_tensor(hi).abs())
    scale = torch.clamp(amax.float() / qmax, min=1e-8).reshape(())
    zero = torch.zeros((), dtype=torch.int32, device=x.device)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, -qmax, qmax) + guard


def _fashion(seed: int) -> DataSplits:
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    label = "Fashion-MNIST t10k (10,000 images, split 64/16/20)"
    return _grey_splits(
        "fashion-mnist", label, torch.as_tensor(images.copy()), labels, 255.0, seed
    )


def run(
    data: DataSplits, model: str, bits: Any, widths: Any, epochs: int, seed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed}
    for variant in ("asymmetric", "symmetric"):
        torch.manual_seed(seed)
        net = quantize_model(build_model(model, 10, widths=widths), bits)
        if variant == "symmetric":
            first = net.get_submodule(quantized_layers(net)[0])
            first._quant_input = types.MethodType(_symmetric_input, first)  # type: ignore[method-assign]
        _train.train(net, data, epochs=epochs, max_lr=0.01, device="cpu", seed=seed)
        out[variant] = _train.evaluate(net, data, "test", device=torch.device("cpu"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    best = json.loads(Path("benchmarks/results/search-digits/best_config.json").read_text())
    setups = [
        ("digits", load_dataset("digits", seed=0), "small_cnn", best["bits"], best["widths"], 10)
    ]
    if FASHION.is_dir():
        setups.append(("fashion-mnist", _fashion(0), "mnist_cnn", 4, None, 3))
    results = []
    for name, data, model, bits, widths, epochs in setups:
        rows = [run(data, model, bits, widths, epochs, s) for s in range(args.seeds)]
        entry = {
            "dataset": data.label,
            "model": model,
            "bits": bits,
            "widths": widths,
            "epochs": epochs,
            "test_images": len(data.test[1]),
            "runs": rows,
        }
        for v in ("asymmetric", "symmetric"):
            acc = np.array([r[v] for r in rows])
            entry[f"{v}_mean"], entry[f"{v}_sd"] = float(acc.mean()), float(acc.std(ddof=1))
        print(json.dumps(entry), flush=True)
        results.append(entry)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
