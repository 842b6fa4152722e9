"""Every figure and table that the available results allow, in one call."""

from __future__ import annotations

from pathlib import Path

from optuna_kmtpe._bench.runner import open_results
from optuna_kmtpe._bench.runner import TRIALS_FILE
from optuna_kmtpe._bench.stats import markdown_summary
from paper_figures.convergence import plot_convergence


def make_all(results: Path, out: Path) -> list[Path]:
    """Write the figures and tables for the ``kmtpe bench`` folder ``results`` into ``out``."""
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
    written.append(table)
    return written
