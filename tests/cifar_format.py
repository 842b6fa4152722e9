"""Write a tiny dataset in the CIFAR python-pickle layout that torchvision reads.

The images are real: scikit-learn's 8x8 digits, scaled to 0..255, enlarged 4x to 32x32 and
copied to the three colour channels; the labels are the digits. So a model can learn them
and the loader is exercised on the exact file layout of CIFAR-10 / CIFAR-100.
"""

from __future__ import annotations

from pathlib import Path
import pickle

import numpy as np


def _images(n: int, offset: int) -> tuple[np.ndarray, list[int]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    idx = (np.arange(n) + offset) % len(bunch.target)
    small = (bunch.images[idx] * (255.0 / 16.0)).round().astype(np.uint8)  # (n, 8, 8)
    big = np.kron(small, np.ones((1, 4, 4), dtype=np.uint8))  # (n, 32, 32)
    rgb = np.repeat(big[:, None], 3, axis=1)  # (n, 3, 32, 32), CHW like CIFAR
    return rgb.reshape(n, 3072), [int(t) for t in bunch.target[idx]]


def _dump(path: Path, obj: dict[str, object]) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root: Path, per_batch: int = 40, test: int = 40) -> Path:
    """``root/cifar-10-batches-py`` with ``data_batch_1..5``, ``test_batch``, ``batches.meta``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        data, labels = _images(per_batch, i * per_batch)
        _dump(folder / f"data_batch_{i}", {"data": data, "labels": labels})
    data, labels = _images(test, 0)
    _dump(folder / "test_batch", {"data": data, "labels": labels})
    _dump(folder / "batches.meta", {"label_names": [str(d) for d in range(10)]})
    return folder


def write_cifar100(root: Path, train: int = 60, test: int = 20) -> Path:
    """``root/cifar-100-python`` with ``train``, ``test`` and ``meta`` (fine labels)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    data, labels = _images(train, 100)
    _dump(folder / "train", {"data": data, "fine_labels": labels})
    data, labels = _images(test, 0)
    _dump(folder / "test", {"data": data, "fine_labels": labels})
    _dump(folder / "meta", {"fine_label_names": [f"class{d}" for d in range(100)]})
    return folder
