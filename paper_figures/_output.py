"""Saving one figure in every format the docs use: PNG and PDF (matplotlib), HTML (plotly)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from matplotlib.figure import Figure
    import plotly.graph_objects as go


def save(figure: Figure, interactive: go.Figure, out: Path, stem: str) -> list[Path]:
    """Write ``stem``.png / .pdf from ``figure`` and ``stem``.html from ``interactive``."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf", out / f"{stem}.html"]
    figure.savefig(paths[0], dpi=150, bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight")
    plt.close(figure)
    # The plotly bundle is loaded from its CDN so each HTML file stays small.
    interactive.write_html(paths[2], include_plotlyjs="cdn")
    return paths
