"""Fashion-MNIST: idx files, the loader on a generated archive and on Debian's package, the
trial subset, the ``fmnist_resnet`` model and a ``kmtpe search --dataset fashion-mnist`` run."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from optuna_kmtpe._zoo.data import DataError
from optuna_kmtpe._zoo.data import FASHION_MNIST_DIR
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.data import train_subset
from optuna_kmtpe._zoo.idx import IdxError
from optuna_kmtpe._zoo.idx import read_idx
from optuna_kmtpe._zoo.idx import write_idx
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import width_groups
from optuna_kmtpe._zoo.models import width_plan
from optuna_kmtpe._zoo.models import zoo_cost_model
from optuna_kmtpe.cli import main
from tests.fmnist_format import digit_images
from tests.fmnist_format import write_fashion_mnist


torch.set_num_threads(1)
_INSTALLED = all(
    (FASHION_MNIST_DIR / f"{stem}-idx{d}-ubyte.gz").is_file()
    for stem, d in (
        ("train-images", 3),
        ("train-labels", 1),
        ("t10k-images", 3),
        ("t10k-labels", 1),
    )
)


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_idx_round_trip_raw_and_gzipped(tmp_path: Path, name: str) -> None:
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name, ndim=3)
    assert back.dtype == np.uint8 and np.array_equal(back, array)
    raw = (tmp_path / name).read_bytes()
    header = gzip.decompress(raw)[:16] if name.endswith(".gz") else raw[:16]
    assert header == bytes.fromhex("00000803_00000002_00000003_00000005".replace("_", ""))


def test_bad_idx_files_are_named_with_what_is_wrong(tmp_path: Path) -> None:
    write_idx(tmp_path / "x", np.zeros((4, 2, 2), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(IdxError, match=r"short: 13 data bytes, the header's shape \(4, 2, 2\)"):
        read_idx(tmp_path / "short", ndim=3)
    with pytest.raises(IdxError, match=r"magic number 00000803, expected 00000801"):
        read_idx(tmp_path / "x", ndim=1)
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(IdxError, match="not an idx file"):
        read_idx(tmp_path / "text", ndim=3)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:20])
    with pytest.raises(IdxError, match=r"cut.gz: cannot read it \(EOFError"):
        read_idx(tmp_path / "cut.gz", ndim=3)


@pytest.mark.parametrize("gz", [True, False])
def test_loader_on_a_generated_archive(tmp_path: Path, gz: bool) -> None:
    write_fashion_mnist(tmp_path, train=100, test=40, gz=gz)
    data = load_dataset("fashion-mnist", tmp_path, seed=0)
    assert data.label == (f"Fashion-MNIST (100 train / 40 test; idx files in {tmp_path}, offline)")
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (80, 20, 40)
    assert data.train[0].dtype == torch.uint8 and data.train[0].shape[1:] == (1, 28, 28)
    images, labels = digit_images(40, 1000)
    assert torch.equal(data.test[0][:, 0], torch.from_numpy(images))
    assert torch.equal(data.test[1], torch.from_numpy(labels.astype(np.int64)))
    # Train and val partition the 100 training images; the split follows the seed.
    _, all_labels = digit_images(100, 0)
    merged = torch.cat([data.train[1], data.val[1]]).sort().values
    assert torch.equal(merged, torch.from_numpy(np.sort(all_labels).astype(np.int64)))
    other = load_dataset("fashion-mnist", tmp_path, seed=1)
    assert not torch.equal(other.val[0], data.val[0])
    x = data.prepare(data.train[0])
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2


def test_missing_or_corrupt_archive_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"Fashion-MNIST not found: .*nowhere lacks train-images-idx3-ubyte\[.gz\].*"
        r"apt-get install dataset-fashion-mnist.*--data-dir",
    ):
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    write_fashion_mnist(tmp_path, train=20, test=10)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\[.gz\]\. "):
        load_dataset("fashion-mnist", tmp_path)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"Fashion-MNIST is corrupt: .*train-images.*truncated"):
        load_dataset("fashion-mnist", tmp_path)
    write_fashion_mnist(tmp_path, train=20, test=10)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, dtype=np.uint8))
    with pytest.raises(DataError, match=r"inconsistent: t10k images \(10, 28, 28\), 9 labels"):
        load_dataset("fashion-mnist", tmp_path)


@pytest.mark.skipif(not _INSTALLED, reason=f"dataset-fashion-mnist is not in {FASHION_MNIST_DIR}")
def test_installed_debian_package_is_the_full_dataset() -> None:
    data = load_dataset("fashion-mnist", seed=0)
    assert data.label == (
        "Fashion-MNIST (60,000 train / 10,000 test; Debian dataset-fashion-mnist, offline)"
    )
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (50_000, 10_000, 10_000)
    assert data.train[0].dtype == torch.uint8
    # Balanced classes: 6,000 per class in the training set, 1,000 in the test set; the
    # stratified validation split keeps 1,000 per class.
    assert torch.bincount(data.test[1]).tolist() == [1000] * 10
    assert torch.bincount(data.val[1]).tolist() == [1000] * 10
    assert torch.bincount(data.train[1]).tolist() == [5000] * 10


def test_train_subset_is_fixed_by_the_seed(tmp_path: Path) -> None:
    data = load_dataset("fashion-mnist", write_fashion_mnist(tmp_path), seed=0)
    a, b = train_subset(data, 30, seed=3), train_subset(data, 30, seed=3)
    assert len(a.train[1]) == 30 and torch.equal(a.train[0], b.train[0])
    assert not torch.equal(a.train[0], train_subset(data, 30, seed=4).train[0])
    assert a.val is data.val and a.test is data.test and len(data.train[1]) == 80
    assert train_subset(data, None, 0) is data and train_subset(data, 80, 0) is data
    with pytest.raises(DataError, match=">= 1 image"):
        train_subset(data, 0, 0)


def test_fmnist_resnet_builds_traces_costs_and_runs() -> None:
    names = ["conv1", "layer1.conv1", "layer1.conv2", "layer2.conv1", "layer2.conv2", "fc"]
    assert list(width_plan("fmnist_resnet", 10).names) == names
    # Option-A shortcuts follow the residual branch: every conv leads its own width group.
    assert width_groups("fmnist_resnet", 10) == {n: [n] for n in names[:-1]}
    net = build_model("fmnist_resnet", 10, widths=[0.5, 1.0, 0.75, 1.25, 0.5, 1.0]).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    modules = dict(net.named_modules())
    assert [modules[n].out_channels for n in names[:-1]] == [8, 32, 24, 80, 32]
    cost = zoo_cost_model("fmnist_resnet", 10)
    weights = 144 + 4608 + 9216 + 18432 + 36864 + 640
    assert cost.baseline().size_bytes == 2 * weights  # FiP16: 2 bytes per weight
    assert cost.evaluate(2).size_bytes == weights / 4
    assert cost.evaluate(2).speedup > cost.evaluate(4).speedup > 1


@pytest.fixture(scope="module")
def search_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A tiny ``kmtpe search --dataset fashion-mnist`` on a generated archive:
    (archive, run folder, printed summary)."""
    tmp = tmp_path_factory.mktemp("fmnist-search")
    root = write_fashion_mnist(tmp / "fm", train=100, test=40)
    out = tmp / "run"
    argv = ["search", "--dataset", "fashion-mnist", "--data-dir", str(root), "--out", str(out)]
    argv += ["--base-epochs", "1", "--epochs", "1", "--final-epochs", "1", "--trials", "2"]
    argv += ["--startup", "2", "--hessian-samples", "2", "--hessian-batches", "1"]
    argv += ["--no-progress", "--pruner", "none", "--rescore", "0", "--trial-subset", "50"]
    argv += ["--threads", "1"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(argv) == 0
    return root, out, printed.getvalue()


def test_search_on_a_generated_archive(search_run: tuple[Path, Path, str]) -> None:
    _, out, printed = search_run
    assert (
        "kmtpe search: fmnist_resnet on Fashion-MNIST (100 train / 40 test; idx files" in printed
    )
    assert (
        "training    trials: the same 50 of the 80 training images every epoch; "
        "final training: all" in printed
    )
    result = json.loads((out / "result.json").read_text())
    assert (result["trial_train_images"], result["final_train_images"]) == (50, 80)
    assert result["test_accuracy"] is not None


def test_export_of_the_searched_model(search_run: tuple[Path, Path, str]) -> None:
    pytest.importorskip("qonnx")
    root, out, _ = search_run
    onnx = out / "m.qonnx.onnx"
    argv = ["export", str(out), "--format", "qonnx", "--out", str(onnx), "--data-dir", str(root)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    summary = json.loads(onnx.with_suffix(".summary.json").read_text())
    assert summary["check"]["passed"] and summary["check"]["n"] == 40, summary["check"]
    assert len(summary["layers"]) == 6


def test_compare_records_the_trial_subset(tmp_path: Path) -> None:
    from optuna_kmtpe._runs.compare_run import CompareConfig
    from optuna_kmtpe._runs.compare_run import run_compare

    root = write_fashion_mnist(tmp_path / "fm", train=100, test=40)
    out = tmp_path / "cmp"
    cfg = CompareConfig(
        dataset="fashion-mnist", data_dir=str(root), methods=("uniform",), seeds=1, epochs=1,
        base_epochs=1, final_epochs=1, avg_bits=4, out=str(out),
    )  # fmt: skip
    run_compare(cfg)
    setting = json.loads((out / "setting.json").read_text())
    # The default subset (10,000) is larger than the 80 training images: all are used.
    assert (setting["trial_train_images"], setting["final_train_images"]) == (80, 80)
    assert setting["model"] == "fmnist_resnet"
    assert (
        "Training images: trials and final training: all 80 training images."
        in (out / "comparison.md").read_text()
    )
