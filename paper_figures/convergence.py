"""Fig. 3: convergence of k-means TPE vs TPE (and the other samplers), one panel per task.

Median best-so-far over seeds with an interquartile band, from ``kmtpe bench``'s trials.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from optuna_kmtpe._sampler_registry import in_registry_order
from paper_figures._output import save


def convergence_bands(trials: pd.DataFrame) -> pd.DataFrame:
    """Median, 25th and 75th percentile of best-so-far per task, sampler and trial."""
    grouped = trials.groupby(["task", "sampler", "trial"])["best_so_far"]
    return pd.DataFrame(
        {"median": grouped.median(), "q25": grouped.quantile(0.25), "q75": grouped.quantile(0.75)}
    ).reset_index()


def plot_convergence(trials: pd.DataFrame, out: Path) -> list[Path]:
    """Write fig3_convergence.{png,pdf,html}; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_hex
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    bands = convergence_bands(trials)
    tasks = list(dict.fromkeys(trials["task"]))
    samplers = in_registry_order(trials["sampler"])
    seeds = trials.groupby("task")["seed"].nunique()
    ncols = min(3, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    interactive = make_subplots(rows=nrows, cols=ncols, subplot_titles=tasks)
    colors = [to_hex(c) for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]]
    for i, task in enumerate(tasks):
        ax = axes[i // ncols][i % ncols]
        for j, sampler in enumerate(samplers):
            band = bands[(bands["task"] == task) & (bands["sampler"] == sampler)]
            if band.empty:
                continue
            color = colors[j % len(colors)]
            ax.plot(band["trial"], band["median"], color=color, label=sampler)
            ax.fill_between(band["trial"], band["q25"], band["q75"], color=color, alpha=0.2)
            interactive.add_trace(
                go.Scatter(
                    x=band["trial"],
                    y=band["median"],
                    name=sampler,
                    legendgroup=sampler,
                    showlegend=i == 0,
                    line={"color": color},
                    customdata=band[["q25", "q75"]],
                    hovertemplate="trial %{x}: median %{y:.4f} [IQR %{customdata[0]:.4f}, "
                    "%{customdata[1]:.4f}]",
                ),
                row=i // ncols + 1,
                col=i % ncols + 1,
            )
        # Zoom past the first random trials, where the curves of all samplers coincide.
        task_bands = bands[bands["task"] == task]
        start = max(1, int(task_bands["trial"].max()) // 5)
        shown = task_bands[task_bands["trial"] >= start]
        low, high = shown["q25"].min(), shown["q75"].max()
        if high > low:
            ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        ax.set_title(f"{task} ({seeds[task]} seeds)", fontsize=9)
        ax.set_xlabel("trial")
        ax.set_ylabel("best so far")
        ax.grid(alpha=0.3)
    for k in range(len(tasks), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(
        "Convergence: median best-so-far, band = IQR over seeds (y zoomed past the first 20%)"
    )
    fig.tight_layout()
    interactive.update_layout(title="Convergence: median best-so-far over seeds (hover: IQR)")
    return save(fig, interactive, out, "fig3_convergence")
