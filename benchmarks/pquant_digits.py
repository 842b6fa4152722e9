"""PQuantML (``pquant-ml`` on PyPI: HGQ in PyTorch) once on scikit-learn digits, as an external
peer of the ``learned`` baseline.

It runs in its own virtual environment (PQuantML pins its own Keras / HGQ2 / Optuna), not in
this package's, with the PyTorch backend of Keras::

    python -m venv /work/venvs/pquant
    /work/venvs/pquant/bin/pip install pquant-ml torch scikit-learn
    KERAS_BACKEND=torch OMP_NUM_THREADS=1 /work/venvs/pquant/bin/python benchmarks/pquant_digits.py

A small CNN (two 3x3 convolutions, 8 and 16 channels, BatchNorm, global average pooling, a
linear classifier) is trained in float, then PQuantML's high-granularity quantisation (HGQ:
learned fixed-point bits per tensor, surrogate gradients, an EBOPs penalty ``hgq_beta``) is
switched on and the model trained again. Printed: test accuracy, EBOPs, and each layer's
learned weight and input bits. Data: scikit-learn's 1,797 8x8 digits, stratified split
1,149 / 288 / 360 (train / validation / test, seed 0) like ``kmtpe``'s ``digits``.
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
import json
import os
import time
from typing import Any


os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pquant  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    idx = np.arange(len(x))
    rest, test = train_test_split(idx, test_size=360, stratify=d.target, random_state=0)
    train, val = train_test_split(rest, test_size=288, stratify=d.target[rest], random_state=0)
    return {
        k: (torch.tensor(x[i]), torch.tensor(d.target[i]))
        for k, i in (("train", train), ("val", val), ("test", test))
    }


def _train(model: nn.Module, data: Any, epochs: int, lr: float, hgq: bool, seed: int) -> None:
    x, y = data["train"]
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for i in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(model(x[i]), y[i])
            if hgq:
                loss = pquant.get_model_losses(model, loss)
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def _accuracy(model: nn.Module, data: Any, split: str) -> float:
    model.eval()
    x, y = data[split]
    return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--float-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=20, help="HGQ training epochs")
    p.add_argument("--beta", type=float, default=1e-5, help="hgq_beta: EBOPs penalty weight")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate of the HGQ stage")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    data = _splits()
    t0 = time.perf_counter()
    model = _Net()
    _train(model, data, args.float_epochs, 1e-2, False, args.seed)
    float_test = _accuracy(model, data, "test")
    config = pquant.pdp_config()
    config.pruning_parameters.enable_pruning = False
    q = config.quantization_parameters
    q.enable_quantization = True
    q.use_high_granularity_quantization = True
    q.hgq_heterogeneous = False  # one bit-width per tensor, like this package's per-layer bits
    q.hgq_beta = args.beta
    q.granularity = "per_tensor"
    qmodel = pquant.add_compression_layers(model, config, input_shape=(1, 1, 8, 8))
    for m in qmodel.modules():  # leave the float "pretraining" stage
        if hasattr(m, "is_pretraining"):
            m.is_pretraining = False
    ebops_start = float(pquant.get_ebops(qmodel))
    _train(qmodel, data, args.epochs, args.lr, True, args.seed)
    layers = {}
    for name, m in qmodel.named_modules():
        if hasattr(m, "get_weight_quantization_bits"):
            k, i, f = (
                torch.as_tensor(v).float().mean().item() for v in m.get_weight_quantization_bits()
            )
            n = m.weight.numel() if isinstance(m, nn.Conv2d | nn.Linear) else 0
            layers[name] = {"weight_bits_k_i_f": [k, i, f], "weight_bits": k + i + f, "n": n}
    counted = [v for v in layers.values() if v["n"]]
    avg_bits = sum(v["n"] * v["weight_bits"] for v in counted) / sum(v["n"] for v in counted)
    result = {
        "data": "scikit-learn digits, 1,149 / 288 / 360 stratified (seed 0)",
        "float_test_accuracy": float_test,
        "hgq_test_accuracy": _accuracy(qmodel, data, "test"),
        "hgq_val_accuracy": _accuracy(qmodel, data, "val"),
        "conv_linear_weight_bits_per_weight": avg_bits,
        "ebops_start": ebops_start,
        "ebops": float(pquant.get_ebops(qmodel)),
        "layers": layers,
        "hgq_beta": args.beta,
        "hgq_lr": args.lr,
        "epochs": {"float": args.float_epochs, "hgq": args.epochs},
        "seconds": time.perf_counter() - t0,
        "pquant_version": version("pquant-ml"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
