"""Benchmark statistics on hand-made results with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optuna_kmtpe._bench.stats import best_at
from optuna_kmtpe._bench.stats import markdown_summary
from optuna_kmtpe._bench.stats import rank_tests
from optuna_kmtpe._bench.stats import spread
from optuna_kmtpe._bench.stats import trials_to_target


def _trials(curves: dict[tuple[str, int], list[float]], task: str = "t") -> pd.DataFrame:
    rows = []
    for (sampler, seed), values in curves.items():
        best = np.maximum.accumulate(values)
        for i, (v, b) in enumerate(zip(values, best)):
            rows.append(
                {
                    "task": task,
                    "sampler": sampler,
                    "seed": seed,
                    "trial": i + 1,
                    "value": v,
                    "best_so_far": b,
                }
            )
    return pd.DataFrame(rows)


CURVES = {
    ("a", 0): [0.1, 0.5, 0.9, 0.9],
    ("a", 1): [0.2, 0.2, 0.6, 1.0],
    ("a", 2): [0.3, 0.7, 0.7, 0.8],
    ("b", 0): [0.1, 0.2, 0.3, 0.4],
    ("b", 1): [0.0, 0.0, 0.5, 0.5],
    ("b", 2): [0.6, 0.6, 0.6, 0.7],
}


def test_best_at_checkpoints() -> None:
    best = best_at(_trials(CURVES), [2, 4])
    a = best[(best["sampler"] == "a") & (best["checkpoint"] == 2)]["best"].tolist()
    assert a == [0.5, 0.2, 0.7]


def test_spread_median_and_iqr() -> None:
    table = spread(_trials(CURVES), [4])
    # a's finals: 0.9, 1.0, 0.8 -> median 0.9, quartiles (linear) 0.85 and 0.95.
    row = table.loc[("t", 4, "a")]
    assert row["median"] == pytest.approx(0.9)
    assert row["q25"] == pytest.approx(0.85)
    assert row["q75"] == pytest.approx(0.95)
    assert row["seeds"] == 3


def test_trials_to_target() -> None:
    table = trials_to_target(_trials(CURVES), reference="b")
    # b's finals 0.4, 0.5, 0.7 -> target 0.5.
    assert table.loc[("t", "a"), "target"] == pytest.approx(0.5)
    # a reaches 0.5 at trials 2, 3, 2 -> median 2.
    assert table.loc[("t", "a"), "median_trials"] == 2
    # b reaches it at never, 3, 1 -> sorted 1, 3, inf -> median 3.
    assert table.loc[("t", "b"), "median_trials"] == 3
    assert table.loc[("t", "b"), "seeds_reached"] == 2


def test_trials_to_target_not_reached_by_most_seeds_is_nan() -> None:
    curves = {
        ("a", 0): [0.0, 0.1],
        ("a", 1): [0.0, 0.0],
        ("a", 2): [0.0, 0.9],
        ("b", 0): [0.5, 0.5],
        ("b", 1): [0.5, 0.5],
        ("b", 2): [0.5, 0.5],
    }
    table = trials_to_target(_trials(curves), reference="b")
    assert np.isnan(table.loc[("t", "a"), "median_trials"])
    assert table.loc[("t", "a"), "seeds_reached"] == 1


def test_rank_tests_known_u_statistic() -> None:
    tests = rank_tests(_trials(CURVES), "a", "b", [4])
    # Finals a = {0.9, 1.0, 0.8}, b = {0.4, 0.5, 0.7}: a beats b in all 9 pairs.
    assert tests.loc[("t", 4), "a_better"] == pytest.approx(1.0)
    assert tests.loc[("t", 4), "p_value"] == pytest.approx(0.1, abs=1e-9)  # exact two-sided


def test_rank_tests_identical_constant_samples() -> None:
    curves = {("a", s): [1.0] for s in range(3)} | {("b", s): [1.0] for s in range(3)}
    tests = rank_tests(_trials(curves), "a", "b", [1])
    assert tests.loc[("t", 1), "p_value"] == 1.0
    assert tests.loc[("t", 1), "a_better"] == 0.5


def test_markdown_summary_has_every_section() -> None:
    text = markdown_summary(_trials(CURVES), [2, 4], focus=["a"], reference="b")
    assert "median [IQR]" in text and "Trials to reach b" in text and "Mann-Whitney" in text
    assert "0.9000 [0.8500, 0.9500]" in text


def test_markdown_summary_tests_each_focus_sampler_present() -> None:
    text = markdown_summary(_trials(CURVES), [2, 4], focus=["a", "absent"], reference="b")
    assert text.count("### Mann-Whitney U") == 1
    text = markdown_summary(_trials(CURVES), [2, 4], focus=["a", "b"], reference="b")
    assert "a vs b" in text and "b vs b" in text
