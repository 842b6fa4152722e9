"""The summary of a ``kmtpe compare`` folder, rebuilt from its run files.

Reads ``OUT/setting.json`` and ``OUT/runs/*.json`` (one per method and seed) and writes:

* ``comparison.json``: per method ``bits`` (each seed's), the means and standard deviations
  of ``size_mb``, ``speedup``, ``test_accuracy``, ``val_accuracy``, ``search_seconds``,
  ``search_epochs``, ``epochs_to_chosen``, and, for each search method against each
  baseline, the difference of mean test accuracy with a two-sided Mann-Whitney U p-value.
* ``comparison.md``: the same as a table, with the setting in words.
* ``comparison.png``: test accuracy against size, every method's mean and spread, with the
  explored configurations of the searches (validation accuracy after the search's epochs)
  and their Pareto front behind; the size limit as a line.
* ``explored.csv``: those explored configurations (method, seed, size_mb, val_accuracy).
* ``report.html``: the setting and the tables in words and the plot, in one file.

Example:
    >>> _mean_sd([0.9, 0.92, 0.94])
    (0.92, 0.02)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from optuna_kmtpe._sampler_registry import in_registry_order
from optuna_kmtpe._search.baselines import BASELINES
from optuna_kmtpe._search.checkpoint import atomic_write


__all__ = ["write_summary"]

_NUMBERS = (
    "size_mb",
    "speedup",
    "ebops",
    "test_accuracy",
    "val_accuracy",
    "rescored_val_accuracy",
    "final_val_accuracy",
    "search_seconds",
    "search_epochs",
    "epochs_to_chosen",
)


def write_summary(out: Path) -> dict[str, Any]:
    """Write the summary files of ``out`` and return ``comparison.json``'s content."""
    setting = json.loads((out / "setting.json").read_text())
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    present = {r["method"] for r in runs}
    order = [m for m in BASELINES if m in present] + in_registry_order(present - set(BASELINES))
    methods: dict[str, dict[str, Any]] = {}
    for m in order:
        rs = sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"])
        entry: dict[str, Any] = {
            "seeds": [r["seed"] for r in rs],
            "bits": [r["bits"] for r in rs],
            "widths": [r["widths"] for r in rs],
        }
        for key in _NUMBERS:
            values = [r[key] for r in rs if r.get(key) is not None]
            entry[key], entry[f"{key}_sd"] = _mean_sd(values) if values else (None, None)
        if m not in BASELINES:
            entry["n_pruned"] = _mean_sd([r.get("n_pruned", 0) for r in rs])[0]
            entry["n_distinct"] = _mean_sd([r.get("n_distinct", 0) for r in rs])[0]
        methods[m] = entry
    tests = _tests(runs, order)
    summary = {"setting": _public(setting), "methods": methods, "tests": tests}
    atomic_write(out / "comparison.json", lambda f: json.dump(summary, f, indent=2))
    atomic_write(out / "comparison.md", lambda f: f.write(_markdown(summary)))
    _explored_csv(runs, out / "explored.csv")
    _plot(summary, runs, out / "comparison.png")
    _html(out)
    return summary


def _mean_sd(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return round(float(arr.mean()), 10), round(sd, 10)


def _public(setting: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in setting.items() if k != "space"}


def _tests(runs: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Each search method's test accuracy against each baseline's (Mann-Whitney U)."""
    from scipy.stats import mannwhitneyu

    acc = {m: [r["test_accuracy"] for r in runs if r["method"] == m] for m in order}
    found = []
    for m in order:
        if m in BASELINES:
            continue
        for b in order:
            if b not in BASELINES or len(acc[m]) < 2 or len(acc[b]) < 2:
                continue
            p = float(mannwhitneyu(acc[m], acc[b], alternative="two-sided").pvalue)
            found.append(
                {
                    "method": m,
                    "baseline": b,
                    "difference": float(np.mean(acc[m]) - np.mean(acc[b])),
                    "p_value": p,
                }
            )
    return found


def _pct(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * (sd or 0):.2f}"


def _markdown(summary: dict[str, Any]) -> str:
    s = summary["setting"]
    limits = ", ".join(f"{k} <= {v:.5g}" for k, v in s["limits"].items())
    bits_note = f" ({s['avg_bits']:g} bits per weight)" if s.get("avg_bits") else ""
    lines = [
        f"# kmtpe compare: {s['model']} on {s['dataset_label']}",
        "",
        f"Limits: {limits}{bits_note}; FiP16 size {s['baseline_size_mb']:.5g} MB; float model "
        f"test accuracy {100 * s['base_test_accuracy']:.2f}%. Searches: {s['trials']} trials "
        f"({s['startup']} random first), {s['epochs']} epochs each, pruner {s['pruner']}, "
        f"top {s['rescore']} re-scored {s['rescore_repeats']} times. Every configuration then "
        f"trained {s['final_epochs']} epochs (seed = run seed); cost model {s['cost_model']}."
        + (f" Training images: {s['training']}." if s.get("training") else ""),
        "",
        "| method | runs | test acc. % | val acc. % after final | val acc. % of the choice | "
        "re-scored val % | size MB | speedup | EBOPs | search epochs | epochs to chosen | "
        "search s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, e in summary["methods"].items():
        size = f"{e['size_mb']:.5g}" if e["size_mb"] is not None else "n/a"
        speed = f"{e['speedup']:.2f}" if e["speedup"] is not None else "n/a"
        ebops = f"{e['ebops']:.4g}" if e.get("ebops") is not None else "n/a"
        lines.append(
            f"| {m} | {len(e['seeds'])} | {_pct(e['test_accuracy'], e['test_accuracy_sd'])} | "
            f"{_pct(e['final_val_accuracy'], e['final_val_accuracy_sd'])} | "
            f"{_pct(e['val_accuracy'], e['val_accuracy_sd'])} | "
            f"{_pct(e['rescored_val_accuracy'], e['rescored_val_accuracy_sd'])} | "
            f"{size} | {speed} | {ebops} | "
            f"{_num(e['search_epochs'])} | {_num(e['epochs_to_chosen'])} | "
            f"{_num(e['search_seconds'])} |"
        )
    if summary["tests"]:
        lines += [
            "",
            "Test accuracy, search minus baseline (mean over runs; two-sided Mann-Whitney U):",
            "",
            "| search | baseline | difference (points) | p |",
            "|---|---|---|---|",
        ]
        for t in summary["tests"]:
            lines.append(
                f"| {t['method']} | {t['baseline']} | {100 * t['difference']:+.2f} | "
                f"{t['p_value']:.3g} |"
            )
    lines += ["", "Configurations (bits per layer; widths where searched):", ""]
    for m, e in summary["methods"].items():
        distinct = list(
            dict.fromkeys(
                json.dumps(b) + (f" x {w}" if any(x != 1.0 for x in w) else "")
                for b, w in zip(e["bits"], e["widths"])
            )
        )
        lines.append(f"- {m}: " + "; ".join(distinct))
    return "\n".join(lines) + "\n"


def _num(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0f}"


def _explored_csv(runs: list[dict[str, Any]], path: Path) -> None:
    lines = ["method,seed,size_mb,val_accuracy"]
    for r in runs:
        lines += [f"{r['method']},{r['seed']},{s:.8g},{a:.6f}" for s, a in r.get("explored", [])]
    atomic_write(path, lambda f: f.write("\n".join(lines) + "\n"))


def _plot(summary: dict[str, Any], runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    explored = np.array([p for r in runs for p in r.get("explored", [])], dtype=float)
    if len(explored):
        ax.scatter(
            explored[:, 0] * 1e3,
            100 * explored[:, 1],
            s=8,
            c="0.8",
            label="explored by the searches (val. acc.)",
        )
        front = _pareto(explored)
        ax.step(
            front[:, 0] * 1e3, 100 * front[:, 1], where="post", c="0.5", lw=1, label="their front"
        )
    for i, (m, e) in enumerate(summary["methods"].items()):
        ax.errorbar(
            1e3 * e["size_mb"],
            100 * e["test_accuracy"],
            xerr=1e3 * (e["size_mb_sd"] or 0),
            yerr=100 * (e["test_accuracy_sd"] or 0),
            fmt="os^vDPX*"[i % 8],
            ms=8,
            capsize=3,
            label=f"{m} (test acc., mean ± sd)",
        )
    limit = summary["setting"]["limits"].get("size_mb")
    if limit:
        ax.axvline(1e3 * limit, ls="--", c="k", lw=1, label="size limit")
    finals = [100 * e["test_accuracy"] for e in summary["methods"].values()]
    low = min(finals) - 3 * max(1.0, float(np.std(finals)))
    ax.set_ylim(max(0.0, low), 100.5)
    s = summary["setting"]
    ax.set_xlabel("weight size (KB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{s['model']} on {s['dataset_label']}", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120), mode="wb")
    plt.close(fig)


def _pareto(points: np.ndarray) -> np.ndarray:
    """The points no other point beats on both smaller size and higher accuracy."""
    order = np.lexsort((-points[:, 1], points[:, 0]))
    front, best = [], -math.inf
    for size, acc in points[order]:
        if acc > best:
            front.append((size, acc))
            best = acc
    return np.array(front)


def _html(out: Path) -> None:
    """``report.html``: comparison.md rendered (paragraphs, tables, lists) and the plot."""
    import base64
    from html import escape

    parts, rows = [], []
    for line in (out / "comparison.md").read_text().splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                rows.append([escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        if rows:
            head = "".join(f"<th>{c}</th>" for c in rows[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:]
            )
            parts.append(f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>")
            rows = []
        if line.startswith("# "):
            parts.append(f"<h2>{escape(line[2:])}</h2>")
        elif line.startswith("- "):
            parts.append(f"<li>{escape(line[2:])}</li>")
        elif line:
            parts.append(f"<p>{escape(line)}</p>")
    png = base64.b64encode((out / "comparison.png").read_bytes()).decode()
    parts.append(f"<img alt='accuracy against size' src='data:image/png;base64,{png}'>")
    html = "<html><head><meta charset='utf-8'><title>kmtpe compare</title></head><body>"
    html += "".join(parts) + "</body></html>"
    atomic_write(out / "report.html", lambda f: f.write(html))
