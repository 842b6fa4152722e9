"""Results of a ``kmtpe search`` study: the trials table (CSV) and the plots.

* :func:`trials_table`: one row per trial with its state, objective value(s), validation
  accuracy, size, speedup, latency, energy, feasibility and the bit-width and effective width
  multiplier of every layer (``bits/<layer>``, ``width/<layer>``), from the user attributes the
  search records on each trial.
* :func:`write_plots`: ``history.png`` (the optimisation history; Optuna's Pareto front for
  multi-objective studies), ``accuracy_vs_size.png`` (every explored configuration, the chosen
  one marked, as the paper's Fig. 4) and ``report.html`` (the same two figures with plotly,
  self-contained). Both histories show the validation accuracy (%) of the feasible trained
  trials and say how many others (over a limit, pruned) are not shown.
  :func:`write_report` rewrites ``report.html`` with the result in words on top.

Every file is written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING
import warnings

from optuna_kmtpe._search.checkpoint import atomic_write


if TYPE_CHECKING:
    import optuna
    import pandas as pd


__all__ = ["trials_table", "write_table", "write_plots", "write_report"]


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """All trials of a search study as a DataFrame (see the module docstring)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        if t.values is not None and len(t.values) > 1:
            for i, v in enumerate(t.values):
                row[f"value_{i}"] = v
        else:
            row["value"] = t.value if t.values is not None else None
        for key in (
            "accuracy",
            "size_mb",
            "speedup",
            "latency_ms",
            "energy_mj",
            "feasible",
            "trained",
            "train_seconds",
            "epochs_trained",
            "pruned_at_epoch",
            "fail_reason",
            "retry_of",
        ):
            row[key] = a.get(key)
        for layer, b in zip(a.get("layers", []), a.get("bits", [])):
            row[f"bits/{layer}"] = b
        for layer, w in zip(a.get("layers", []), a.get("widths", [])):
            row[f"width/{layer}"] = w
        row["seconds"] = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete is not None and t.datetime_start is not None
            else None
        )
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write the table as CSV, atomically."""
    atomic_write(path, lambda f: table.to_csv(f, index=False))


def write_plots(
    study: optuna.Study,
    table: pd.DataFrame,
    out: str | Path,
    *,
    chosen: int | None,
    title: str,
    size_limit_mb: float | None = None,
) -> list[Path]:
    """Write ``history.png``, ``accuracy_vs_size.png`` and ``report.html`` into ``out``.

    Args:
        study: The search study.
        table: Its :func:`trials_table`.
        out: Output folder.
        chosen: Number of the chosen trial (marked), or ``None``.
        title: Plot title (model and dataset label).
        size_limit_mb: Drawn as a vertical line when given.

    Returns:
        The paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    out = Path(out)
    written: list[Path] = []
    done = table[table["state"] == "COMPLETE"]

    # 1. Optimisation history: as report.html's (validation accuracy in %, feasible trained
    # trials, best so far; how many others are not shown); Optuna's Pareto front if several
    # objectives.
    if len(study.directions) == 1:
        ok, note = _history_points(table)
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        acc = 100 * ok["accuracy"].astype(float)
        ax.scatter(ok["trial"], acc, s=14, color="tab:blue", label="feasible trial")
        ax.plot(ok["trial"], acc.cummax(), color="tab:red", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"Optimisation history: {title}\n{note.strip()}", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's matplotlib backend is "experimental"
            ax = optuna.visualization.matplotlib.plot_pareto_front(
                study, target_names=["accuracy", *_extra_names(study)]
            )
        ax.figure.suptitle(title, fontsize=9)
        fig = ax.figure  # type: ignore[assignment]
    written.append(_save_png(fig, out / "history.png"))
    plt.close(fig)  # type: ignore[arg-type]

    # 2. Accuracy vs size, chosen point marked (paper Fig. 4).
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if len(done):
        trained = done[done["trained"].astype(bool)]
        skipped = done[~done["trained"].astype(bool)]
        feasible = trained[trained["feasible"].astype(bool)]
        infeasible = trained[~trained["feasible"].astype(bool)]
        ax.scatter(
            feasible["size_mb"],
            100 * feasible["accuracy"],
            s=14,
            color="tab:blue",
            label="explored",
        )
        if len(infeasible):
            ax.scatter(
                infeasible["size_mb"],
                100 * infeasible["accuracy"],
                s=14,
                marker="x",
                color="tab:red",
                label="over a limit",
            )
        if len(skipped):
            ax.scatter(
                skipped["size_mb"],
                [ax.get_ylim()[0]] * len(skipped) if len(trained) else [0.0] * len(skipped),
                s=10,
                marker="|",
                color="grey",
                label="over a limit (not trained)",
            )
        if chosen is not None and chosen in set(done["trial"]):
            row = done[done["trial"] == chosen].iloc[0]
            ax.scatter(
                [row["size_mb"]],
                [100 * row["accuracy"]],
                s=160,
                marker="*",
                color="tab:orange",
                edgecolor="black",
                zorder=5,
                label=f"chosen (trial {chosen})",
            )
    if size_limit_mb is not None:
        ax.axvline(size_limit_mb, color="grey", linestyle="--", linewidth=1, label="size limit")
    ax.set_xlabel("model size (MB)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save_png(fig, out / "accuracy_vs_size.png"))
    plt.close(fig)

    # 3. Interactive HTML (plotly): history and accuracy vs size in one self-contained file.
    written.append(_write_html(study, table, out / "report.html", chosen, title, size_limit_mb))
    return written


def _history_points(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The feasible trained COMPLETE trials the history shows, and a note on the others:
    over a limit (their penalised values would flatten the axis) and pruned."""
    done = table[table["state"] == "COMPLETE"]
    ok = done[done["feasible"].astype(bool) & done["trained"].astype(bool)]
    parts = []
    if len(done) > len(ok):
        parts.append(f"{len(done) - len(ok)} over a limit")
    pruned = int((table["state"] == "PRUNED").sum())
    if pruned:
        parts.append(f"{pruned} pruned")
    note = f" (not shown: {', '.join(parts)})" if parts else ""
    return ok, note


def _extra_names(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("kmtpe:pareto_metrics", [])
    return list(names) or [f"objective {i}" for i in range(1, len(study.directions))]


def _save_png(fig: Any, path: Path) -> Path:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), mode="wb")
    return path


def write_report(
    study: optuna.Study,
    table: pd.DataFrame,
    path: str | Path,
    *,
    chosen: int | None,
    title: str,
    size_limit_mb: float | None = None,
    summary: Sequence[str] = (),
) -> Path:
    """Write ``report.html``: ``summary`` (lines in words) above the optimisation history of
    the feasible trials (penalised ones would flatten its axis; their number is given) and
    accuracy against size (plotly, self-contained)."""
    return _write_html(study, table, Path(path), chosen, title, size_limit_mb, summary)


def _feasible_history(table: pd.DataFrame, title: str) -> Any:
    """Validation accuracy of the feasible trained trials by trial number, best so far."""
    import plotly.graph_objects as go

    ok, note = _history_points(table)
    fig = go.Figure()
    acc = 100 * ok["accuracy"].astype(float)
    fig.add_trace(go.Scatter(x=ok["trial"], y=acc, mode="markers", name="feasible trial"))
    fig.add_trace(go.Scatter(x=ok["trial"], y=acc.cummax(), mode="lines", name="best so far"))
    fig.update_layout(
        title=f"Optimisation history: {title}{note}",
        xaxis_title="trial",
        yaxis_title="validation accuracy (%)",
    )
    return fig


def _write_html(
    study: optuna.Study,
    table: pd.DataFrame,
    path: Path,
    chosen: int | None,
    title: str,
    size_limit_mb: float | None,
    summary: Sequence[str] = (),
) -> Path:
    import optuna
    import plotly.graph_objects as go

    done = table[table["state"] == "COMPLETE"]
    if len(study.directions) == 1:
        history = _feasible_history(table, title)
    else:
        history = optuna.visualization.plot_pareto_front(
            study, target_names=["accuracy", *_extra_names(study)]
        )
        history.update_layout(title=f"Pareto front: {title}")
    scatter = go.Figure()
    done = done[done["trained"].astype(bool)]  # untrained (over a limit) have no accuracy
    if len(done):
        bit_cols = [c for c in done.columns if c.startswith("bits/")]
        hover = [
            f"trial {int(r['trial'])}<br>bits {[int(r[c]) for c in bit_cols]}"
            for _, r in done.iterrows()
        ]
        colour = ["feasible" if f else "over a limit" for f in done["feasible"].astype(bool)]
        for group in ("feasible", "over a limit"):
            mask = [c == group for c in colour]
            sub = done[mask]
            scatter.add_trace(
                go.Scatter(
                    x=sub["size_mb"],
                    y=100 * sub["accuracy"].astype(float),
                    mode="markers",
                    name=group,
                    text=[h for h, m in zip(hover, mask) if m],
                    hoverinfo="text+x+y",
                )
            )
        if chosen is not None and chosen in set(done["trial"]):
            row = done[done["trial"] == chosen].iloc[0]
            scatter.add_trace(
                go.Scatter(
                    x=[row["size_mb"]],
                    y=[100 * float(row["accuracy"])],
                    mode="markers",
                    marker={"symbol": "star", "size": 16},
                    name=f"chosen (trial {chosen})",
                )
            )
    if size_limit_mb is not None:
        scatter.add_vline(x=size_limit_mb, line_dash="dash", annotation_text="size limit")
    scatter.update_layout(
        title=f"Accuracy vs size: {title}",
        xaxis_title="model size (MB)",
        yaxis_title="validation accuracy (%)",
    )
    words = "".join(f"<li>{escape(line)}</li>" for line in summary)
    html = (
        "<html><head><meta charset='utf-8'><title>kmtpe search</title></head><body>"
        + (f"<h2>{escape(title)}</h2><ul>{words}</ul>" if summary else "")
        + history.to_html(full_html=False, include_plotlyjs=True)
        + scatter.to_html(full_html=False, include_plotlyjs=False)
        + "</body></html>"
    )
    atomic_write(path, lambda f: f.write(html))
    return path
