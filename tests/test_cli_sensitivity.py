from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import layer_names
from optuna_kmtpe.cli import main
from tests.cifar_format import write_cifar10


torch.set_num_threads(1)

_FAST = ["--batches", "1", "--batch-size", "64", "--max-samples", "12", "--threads", "1"]


def test_json_output_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "traces.png"
    space_file = tmp_path / "space.json"
    code = main(
        ["sensitivity", "--json", "--train-epochs", "2", "--plot", str(plot)]
        + ["--space-out", str(space_file)]
        + _FAST
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"] == "scikit-learn digits (offline default)"
    assert [row["layer"] for row in out["layers"]] == layer_names("small_cnn", 10)
    for row in out["layers"]:
        assert 1 <= row["n_samples"] <= 12
        assert set(row["bits"]) <= {8, 6, 4, 3, 2}
        assert row["normalized"] == pytest.approx(row["trace"] / row["numel"])
    assert out["log10_size"]["pruned"] < out["log10_size"]["unpruned"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(space_file.read_text())["bits"] == out["space"]["bits"]


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensitivity"] + _FAST) == 0
    text = capsys.readouterr().out
    assert "scikit-learn digits (offline default)" in text
    assert "untrained" in text
    assert "after pruning" in text


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensitivity", "--model", "resnet20"] + _FAST) == 2
    assert "CIFAR-10 needs --data-dir" in capsys.readouterr().err
    assert main(["sensitivity", "--model", "resnet50"] + _FAST) == 2
    assert "--data random" in capsys.readouterr().err
    assert main(["sensitivity", "--num-classes", "5"] + _FAST) == 2
    assert "--num-classes 5 contradicts scikit-learn digits" in capsys.readouterr().err
    assert main(["sensitivity", "--data", "random", "--train-epochs", "1"] + _FAST) == 2
    assert "--train-epochs needs real data" in capsys.readouterr().err

    wrong = tmp_path / "five_classes.pt"
    torch.save(build_model("small_cnn", 5).state_dict(), wrong)
    assert main(["sensitivity", "--checkpoint", str(wrong)] + _FAST) == 2
    err = capsys.readouterr().err
    assert "does not match the model" in err and "fc2.weight" in err

    assert main(["sensitivity", "--checkpoint", str(tmp_path / "none.pt")] + _FAST) == 2
    assert "does not exist" in capsys.readouterr().err

    assert main(["sensitivity", "--bits", "8,x"] + _FAST) == 2
    assert "--bits" in capsys.readouterr().err


def test_checkpoint_and_random_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "small.pt"
    torch.save(build_model("small_cnn", 10).state_dict(), good)
    assert main(["sensitivity", "--checkpoint", str(good), "--json"] + _FAST) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == str(good)
    assert main(["sensitivity", "--data", "random", "--json"] + _FAST) == 0
    assert "timing only" in json.loads(capsys.readouterr().out)["data"]
    # One sample per layer: infinite standard errors become null, the output stays strict JSON.
    assert main(["sensitivity", "--json", "--batches", "1", "--max-samples", "1"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert all(row["stderr"] is None for row in out["layers"])


def test_cifar_through_the_real_loader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar10(tmp_path, per_batch=20, test=10)
    args = ["sensitivity", "--model", "resnet20", "--data-dir", str(tmp_path), "--json"]
    assert main(args + ["--batch-size", "16", "--batches", "1", "--max-samples", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"].startswith("CIFAR-10 (torchvision")
    assert out["num_classes"] == 10
    assert [row["layer"] for row in out["layers"]] == layer_names("resnet20", 10)


def test_plot_numbers_the_clusters_as_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    import matplotlib.figure

    labels: list[str] = []

    def record(fig: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        for ax in fig.axes:
            legend = ax.get_legend()
            assert legend is not None
            labels.extend(t.get_text() for t in legend.get_texts())

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    assert main(["sensitivity", "--json", "--plot", str(tmp_path / "t.png")] + _FAST) == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    table = {row["cluster"]: row["bits"] for row in rows}
    plotted = {}
    for label in labels:
        m = re.fullmatch(r"cluster (\d+): bits \{([\d,]+)\}", label)
        assert m, label
        plotted[int(m[1])] = [int(b) for b in m[2].split(",")]
    assert plotted == table
