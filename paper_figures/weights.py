"""Fig. 1: weight distributions of three layers of a trained model (first, middle, last)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures._output import save


def layer_weights(model: object, count: int = 3) -> dict[str, np.ndarray]:
    """Flattened weights of ``count`` Conv / Linear layers spread over the depth of ``model``."""
    import torch

    assert isinstance(model, torch.nn.Module)
    layers = [
        (name, module.weight.detach().cpu().numpy().ravel())
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    if not layers:
        raise ValueError("The model has no Conv2d or Linear layer to draw.")
    picks = sorted(
        set(np.linspace(0, len(layers) - 1, min(count, len(layers))).round().astype(int))
    )
    return {layers[i][0]: layers[i][1] for i in picks}


def plot_weight_distributions(weights: dict[str, np.ndarray], title: str, out: Path) -> list[Path]:
    """Write fig1_weights.{png,pdf,html}: one histogram per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig, axes = plt.subplots(1, len(weights), figsize=(4 * len(weights), 3), squeeze=False)
    interactive = make_subplots(rows=1, cols=len(weights), subplot_titles=list(weights))
    for i, (name, values) in enumerate(weights.items()):
        ax = axes[0][i]
        ax.hist(values, bins=60, color="tab:blue", alpha=0.8)
        ax.set_title(f"{name} ({values.size} weights, std {values.std():.3g})", fontsize=9)
        ax.set_xlabel("weight")
        interactive.add_trace(go.Histogram(x=values, nbinsx=60, name=name), row=1, col=i + 1)
    axes[0][0].set_ylabel("count")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    interactive.update_layout(title=title, showlegend=False)
    return save(fig, interactive, out, "fig1_weights")
