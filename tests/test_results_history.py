"""The PNG and HTML optimisation histories show the same points and say what they leave out."""

from __future__ import annotations

import pandas as pd

from optuna_kmtpe._search.results import _feasible_history
from optuna_kmtpe._search.results import _history_points


def _table() -> pd.DataFrame:
    rows = [
        ("COMPLETE", 0.91, True, True),
        ("COMPLETE", 0.95, True, True),
        ("COMPLETE", None, False, False),  # over a limit, not trained
        ("PRUNED", 0.50, True, True),
        ("PRUNED", 0.40, True, True),
    ]
    return pd.DataFrame(
        [
            {"trial": i, "state": s, "accuracy": a, "feasible": f, "trained": t}
            for i, (s, a, f, t) in enumerate(rows)
        ]
    )


def test_history_points_and_note() -> None:
    ok, note = _history_points(_table())
    assert ok["trial"].tolist() == [0, 1]
    assert note == " (not shown: 1 over a limit, 2 pruned)"


def test_html_history_is_in_percent_and_names_what_is_left_out() -> None:
    fig = _feasible_history(_table(), "net")
    assert list(fig.data[0].y) == [91.0, 95.0]
    assert (
        fig.layout.title.text == "Optimisation history: net (not shown: 1 over a limit, 2 pruned)"
    )
    assert fig.layout.yaxis.title.text == "validation accuracy (%)"
