"""Fig. 4: the configurations a ``kmtpe search`` explored, accuracy vs model size, the chosen one
marked; and the paper's Table II row for this package's result (accuracy, size, speedup)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from paper_figures._output import save


def read_search(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The trials table and the result object of a ``kmtpe search --out`` folder."""
    table, result = folder / "results.csv", folder / "result.json"
    if not table.exists() or not result.exists():
        raise FileNotFoundError(
            f"{folder} lacks results.csv or result.json: point --search at a finished "
            "`kmtpe search --out` folder."
        )
    return pd.read_csv(table), json.loads(result.read_text())


def plot_configurations(table: pd.DataFrame, result: dict[str, Any], out: Path) -> list[Path]:
    """Write fig4_configurations.{png,pdf,html}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    done = table[(table["state"] == "COMPLETE") & (table["trained"] == True)]  # noqa: E712
    title = f"{result['model']} on {result['dataset_label']}: {len(done)} trained configurations"
    # The chosen point at its search-time accuracy, comparable with the others (the final
    # model's accuracy after the longer training is in the table, not here).
    chosen = table[table["trial"] == result["trial"]].iloc[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    points = ax.scatter(
        done["size_mb"], done["accuracy"], c=done["trial"], cmap="viridis", s=18, alpha=0.8
    )
    fig.colorbar(points, ax=ax, label="trial")
    ax.scatter(
        [chosen["size_mb"]],
        [chosen["accuracy"]],
        marker="*",
        s=250,
        color="red",
        edgecolor="black",
        label=f"chosen (trial {result['trial']})",
        zorder=3,
    )
    limit = result.get("limits", {}).get("size_mb")
    if limit is not None:
        ax.axvline(limit, color="gray", linestyle="--", label="size limit")
    ax.set_xlabel("model size (MB)")
    ax.set_ylabel("validation accuracy after the search epochs")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    interactive = go.Figure(
        [
            go.Scatter(
                x=done["size_mb"],
                y=done["accuracy"],
                mode="markers",
                name="explored",
                marker={"color": done["trial"], "colorscale": "Viridis", "showscale": True},
                text=[f"trial {t}" for t in done["trial"]],
            ),
            go.Scatter(
                x=[chosen["size_mb"]],
                y=[chosen["accuracy"]],
                mode="markers",
                name=f"chosen (trial {result['trial']})",
                marker={"symbol": "star", "size": 16, "color": "red"},
            ),
        ]
    )
    interactive.update_layout(
        title=title, xaxis_title="model size (MB)", yaxis_title="validation accuracy"
    )
    return save(fig, interactive, out, "fig4_configurations")


def result_table(result: dict[str, Any]) -> str:
    """The paper's Table II layout (accuracy, size, speedup) for the FiP16 baseline and ours."""
    rows = pd.DataFrame(
        [
            {
                "Approach (W/A)": "Baseline (float training; size at FiP16)",
                "Accuracy (%)": 100 * result["base_test_accuracy"],
                "Model Size (MB)": result["baseline_size_mb"],
                "Speedup": "1.00x",
            },
            {
                "Approach (W/A)": f"Ours ({min(result['bits'])}MP/{min(result['bits'])}MP)",
                "Accuracy (%)": 100 * result["test_accuracy"],
                "Model Size (MB)": result["size_mb"],
                "Speedup": f"{result['speedup']:.2f}x",
            },
        ]
    )
    header = (
        f"{result['model']} on {result['dataset_label']}; test accuracy; ours after "
        f"{result['final_epochs']} final epochs; bits {result['bits']}, widths "
        f"{result['widths']}."
    )
    return header + "\n\n" + rows.to_markdown(index=False, floatfmt=".4g") + "\n"
