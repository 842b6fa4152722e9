"""Every figure and table that the given results allow, in one call."""

from __future__ import annotations

from pathlib import Path

from optuna_kmtpe._bench.runner import open_results
from optuna_kmtpe._bench.runner import TRIALS_FILE
from optuna_kmtpe._bench.stats import markdown_summary
from paper_figures.configurations import plot_configurations
from paper_figures.configurations import read_search
from paper_figures.configurations import result_table
from paper_figures.convergence import plot_convergence
from paper_figures.weights import layer_weights
from paper_figures.weights import plot_weight_distributions


_NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}


def make_all(results: Path | None, out: Path, search: Path | None = None) -> list[Path]:
    """Figures and tables from a ``kmtpe bench`` folder and / or a ``kmtpe search`` folder.

    From ``results``: Fig. 3 and the convergence statistics. From ``search``: Fig. 1 (weights
    of the search's trained base model), Fig. 4 and the Table II row.
    """
    if results is None and search is None:
        raise ValueError("Nothing to draw: give --results (kmtpe bench) and / or --search.")
    written: list[Path] = []
    if results is not None:
        written += convergence_outputs(results, out)
    if search is not None:
        written += search_outputs(search, out)
    return written


def convergence_outputs(results: Path, out: Path) -> list[Path]:
    if not (results / TRIALS_FILE).exists():
        raise FileNotFoundError(
            f"{results / TRIALS_FILE} does not exist: point --results at a folder written by "
            "`kmtpe bench --out`."
        )
    trials = open_results(results)
    written = plot_convergence(trials, out)
    last = int(trials["trial"].max())
    checkpoints = [c for c in (20, 40, 60, 100, 160) if c <= last] or [last]
    table = out / "table_convergence.md"
    table.write_text(markdown_summary(trials, checkpoints))
    return [*written, table]


def search_outputs(search: Path, out: Path) -> list[Path]:
    from optuna_kmtpe._search.checkpoint import load_checkpoint
    from optuna_kmtpe._zoo.models import build_model

    table, result = read_search(search)
    written = plot_configurations(table, result, out)
    model = build_model(result["model"], _NUM_CLASSES[result["dataset"]])
    load_checkpoint(model, search / "base_model.pt")
    title = (
        f"Weight distributions of three layers, {result['model']} trained on "
        f"{result['dataset_label']}"
    )
    written += plot_weight_distributions(layer_weights(model), title, out)
    path = out / "table_result.md"
    path.write_text(result_table(result))
    return [*written, path]
