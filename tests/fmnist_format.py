"""Write a tiny dataset as the four Fashion-MNIST idx files (gzipped or raw).

The images are real: scikit-learn's 8x8 digits scaled to 0..255, enlarged 3x to 24x24 and
padded to 28x28; the labels are the digits. So a model can learn them, and the loader is
exercised on the exact file layout Debian's ``dataset-fashion-mnist`` installs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optuna_kmtpe._zoo.idx import write_idx


def digit_images(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 ``uint8`` images of scikit-learn digits from ``offset`` on, and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    idx = (np.arange(n) + offset) % len(bunch.target)
    small = (bunch.images[idx] * (255.0 / 16.0)).round().astype(np.uint8)
    big = np.kron(small, np.ones((1, 3, 3), dtype=np.uint8))  # (n, 24, 24)
    return np.pad(big, ((0, 0), (2, 2), (2, 2))), bunch.target[idx].astype(np.uint8)


def write_fashion_mnist(root: Path, train: int = 100, test: int = 40, gz: bool = True) -> Path:
    """``root`` with ``train-images-idx3-ubyte[.gz]`` and the three other files."""
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, offset in (("train", train, 0), ("t10k", test, 1000)):
        images, labels = digit_images(n, offset)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return root
