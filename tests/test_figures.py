"""kmtpe figures: every figure the results allow, in every format, from a tiny benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optuna_kmtpe._bench.runner import run_benchmark
from optuna_kmtpe.cli import main
from paper_figures.convergence import convergence_bands


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    run_benchmark(
        out,
        ["synthetic-mixed-precision", "synthetic-terraced-rosenbrock"],
        ["kmeans-tpe", "tpe"],
        range(3),
        n_trials=8,
        n_startup_trials=3,
        progress=False,
    )
    return out


def test_figures_command_writes_png_pdf_html_and_tables(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["figures", "--results", str(results), "--out", str(tmp_path), "--json"]) == 0
    written = [Path(p) for p in json.loads(capsys.readouterr().out)["written"]]
    names = {p.name for p in written}
    assert {"fig3_convergence.png", "fig3_convergence.pdf", "fig3_convergence.html"} <= names
    assert "table_convergence.md" in names
    assert all(p.stat().st_size > 0 for p in written)
    assert (tmp_path / "fig3_convergence.png").read_bytes()[:4] == b"\x89PNG"
    assert "synthetic-terraced-rosenbrock" in (tmp_path / "fig3_convergence.html").read_text()


def test_convergence_bands_are_medians_over_seeds(results: Path) -> None:
    import pandas as pd

    trials = pd.read_csv(results / "trials.csv")
    bands = convergence_bands(trials)
    row = bands[
        (bands["task"] == "synthetic-mixed-precision")
        & (bands["sampler"] == "tpe")
        & (bands["trial"] == 8)
    ].iloc[0]
    finals = trials[
        (trials["task"] == "synthetic-mixed-precision")
        & (trials["sampler"] == "tpe")
        & (trials["trial"] == 8)
    ]["best_so_far"]
    assert row["median"] == finals.median()
    assert row["q25"] <= row["median"] <= row["q75"]


def test_missing_results_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figures", "--results", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "point --results at a folder written by `kmtpe bench --out`" in capsys.readouterr().err


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("search")
    args = ["search", "--out", str(out), "--trials", "6", "--startup", "3", "--epochs", "1"]
    assert main([*args, "--base-epochs", "1", "--final-epochs", "1", "--json"]) == 0
    return out


def test_search_figures_and_table(
    search_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["figures", "--search", str(search_folder), "--out", str(tmp_path)]) == 0
    for stem in ("fig1_weights", "fig4_configurations"):
        for suffix in (".png", ".pdf", ".html"):
            assert (tmp_path / f"{stem}{suffix}").stat().st_size > 0
    table = (tmp_path / "table_result.md").read_text()
    result = json.loads((search_folder / "result.json").read_text())
    assert "scikit-learn digits (offline default)" in table
    assert f"{result['speedup']:.2f}x" in table


def test_layer_weights_picks_first_middle_and_last() -> None:
    from optuna_kmtpe._zoo.models import build_model
    from paper_figures.weights import layer_weights

    names = list(layer_weights(build_model("resnet20", 10)))
    assert names[0] == "conv1" and names[-1] == "fc" and len(names) == 3


def test_nothing_to_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figures", "--out", str(tmp_path)]) == 2
    assert "Nothing to draw" in capsys.readouterr().err
