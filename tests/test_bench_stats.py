"""Benchmark statistics on hand-made results with known answers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from optuna_kmtpe._bench.stats import best_at
from optuna_kmtpe._bench.stats import distinct_configurations
from optuna_kmtpe._bench.stats import markdown_summary
from optuna_kmtpe._bench.stats import mean_ranks
from optuna_kmtpe._bench.stats import rank_tests
from optuna_kmtpe._bench.stats import spread
from optuna_kmtpe._bench.stats import task_signs
from optuna_kmtpe._bench.stats import trials_to_target
from optuna_kmtpe._bench.stats import win_tie_loss


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


# A registered minimised task (COCO): lower best-so-far is better there.
MIN_TASK = "bbob/f01-d5"


def _finals(task: str, finals: dict[str, list[float]]) -> pd.DataFrame:
    """One-trial studies: ``finals[sampler][seed]`` is the study's best at trial 1."""
    rows = [
        {"task": task, "sampler": sampler, "seed": seed, "trial": 1, "best_so_far": value}
        for sampler, values in finals.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_task_signs_from_override_registry_and_data() -> None:
    frame = pd.concat(
        [
            _trials(CURVES, task="up"),
            _trials({("a", 0): [0.5, 0.5]}, task="flat"),
            _finals(MIN_TASK, {"a": [1.0]}),
        ]
    )
    down = _trials(CURVES, task="down").assign(best_so_far=lambda f: -f["best_so_far"])
    frame = pd.concat([frame, down])
    assert task_signs(frame) == {"up": 1.0, "flat": 1.0, MIN_TASK: -1.0, "down": -1.0}
    assert task_signs(frame, {"flat": "minimize", MIN_TASK: "maximize"})["flat"] == -1.0
    assert task_signs(frame, {MIN_TASK: "maximize"})[MIN_TASK] == 1.0
    with pytest.raises(ValueError, match="must be 'minimize' or 'maximize', but got 'max'"):
        task_signs(frame, {"up": "max"})


def test_trials_to_target_on_a_minimised_task() -> None:
    curves = {
        ("a", 0): [5.0, 2.0, 1.0],
        ("a", 1): [4.0, 4.0, 3.0],
        ("a", 2): [3.0, 1.0, 1.0],
        ("b", 0): [6.0, 3.0, 3.0],
        ("b", 1): [9.0, 2.0, 2.0],
        ("b", 2): [1.0, 1.0, 1.0],
    }
    frame = _trials(curves, task=MIN_TASK)
    frame["best_so_far"] = frame.groupby(["sampler", "seed"])["value"].cummin()
    table = trials_to_target(frame, reference="b")
    # b's finals 3, 2, 1 -> target 2; a reaches it at trials 2, never, 2 -> median 2.
    assert table.loc[(MIN_TASK, "a"), "target"] == 2.0
    assert table.loc[(MIN_TASK, "a"), "median_trials"] == 2.0
    assert table.loc[(MIN_TASK, "a"), "seeds_reached"] == 2
    # b: never, 2, 1 -> median 2.
    assert table.loc[(MIN_TASK, "b"), "median_trials"] == 2.0
    # Read as maximised, every seed of a would "reach" 2 at once.
    assert trials_to_target(frame, reference="b", sign=1.0).loc[(MIN_TASK, "a")].median_trials == 1


def test_mean_ranks_are_direction_aware_with_averaged_ties() -> None:
    frame = pd.concat(
        [
            # Maximised: medians a 3, b 2, c 1 -> ranks 1, 2, 3.
            _finals("t1", {"a": [3.0, 3.0, 4.0], "b": [2.0], "c": [1.0]}),
            # Minimised: medians a 3, b 2, c 2 -> ranks 3, 1.5, 1.5.
            _finals(MIN_TASK, {"a": [3.0], "b": [1.0, 2.0, 3.0], "c": [2.0]}),
            # Only a and b: a 5 beats b 4 -> ranks 1, 2.
            _finals("t3", {"a": [5.0], "b": [4.0]}),
        ]
    )
    ranks = mean_ranks(frame, [1])
    assert ranks.index.tolist() == ["a", "b", "c"]
    assert ranks[1].tolist() == pytest.approx([5 / 3, 5.5 / 3, 2.25])
    assert ranks["tasks"].tolist() == [3, 3, 2]


def test_win_tie_loss_counts_per_level() -> None:
    frame = pd.concat(
        [
            # 5 seeds each, fully separated: exact two-sided p = 2 / 252 < 0.01, a better.
            _finals("t1", {"a": [6.0, 7, 8, 9, 10], "b": [1.0, 2, 3, 4, 5]}),
            # Minimised, 4 seeds each, a always higher (worse): p = 2 / 70 = 0.029.
            _finals(MIN_TASK, {"a": [5.0, 6, 7, 8], "b": [1.0, 2, 3, 4]}),
            # Interleaved: no evidence.
            _finals("t3", {"a": [1.0, 3, 5], "b": [2.0, 4, 6]}),
        ]
    )
    tests = rank_tests(frame, "a", "b", [1])
    assert tests.loc[("t1", 1), "p_value"] == pytest.approx(2 / 252)
    assert tests.loc[(MIN_TASK, 1), "p_value"] == pytest.approx(2 / 70)
    assert tests.loc[(MIN_TASK, 1), "a_better"] == 0.0
    counts = win_tie_loss(frame, "b", [1])
    assert counts.loc[("a", 1, 0.05)].tolist() == [1, 1, 1]
    assert counts.loc[("a", 1, 0.01)].tolist() == [1, 2, 0]
    assert "b" not in counts.index.get_level_values("sampler")


def _configs(
    params: Sequence[str | float], startup: float, sampler: str = "s", seed: int = 0
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": "t",
            "sampler": sampler,
            "seed": seed,
            "trial": range(1, len(params) + 1),
            "params": params,
            "startup": startup,
        }
    )


def test_distinct_configurations_median_over_seeds() -> None:
    x = ['{"x": 1}', '{"x": 2}', '{"x": 3}']
    frame = pd.concat(
        [
            # 6 trials, 3 distinct (50%); after 2 startup trials 2 distinct of 4 (50%).
            _configs([x[0], x[1], x[1], x[2], x[2], x[1]], 2, seed=0),
            # 6 trials, 2 distinct; after startup 1 of 4.
            _configs([x[0], x[1], x[1], x[1], x[1], x[1]], 2, seed=1),
            # 6 trials, 6 distinct; after startup 4 of 4.
            _configs([f'{{"x": {i}}}' for i in range(6)], 2, seed=2),
            # Older results without params are left out; without startup, no model columns.
            _configs([np.nan] * 6, 2, sampler="old"),
            _configs(x, np.nan, sampler="nostartup"),
        ]
    )
    table = distinct_configurations(frame)
    assert table.loc[("t", "s")].tolist() == [3.0, 0.5, 2.0, 0.5]
    assert ("t", "old") not in table.index
    row = table.loc[("t", "nostartup")]
    assert row[["distinct", "share"]].tolist() == [3.0, 1.0]
    assert row[["model_distinct", "model_share"]].isna().all()


def test_markdown_summary_new_sections() -> None:
    frame = pd.concat(
        [
            _finals("t1", {"a": [6.0, 7, 8, 9, 10], "b": [1.0, 2, 3, 4, 5], "c": [100.0] * 5}),
            _finals(MIN_TASK, {"a": [5.0, 6, 7, 8], "b": [1.0, 2, 3, 4], "c": [0.0] * 4}),
        ]
    )
    frame["params"] = '{"x": 1}'
    frame["startup"] = 0
    text = markdown_summary(frame, [1], focus=[], reference="b")
    assert "### Mean rank across tasks" in text
    # a ranks 2 (t1) and 3 (minimised), c 1 and 1: c's 0 is the best of the minimised task.
    assert "| a         | 2.50 |       2 |" in text and "| c         | 1.00 |       2 |" in text
    assert "### Distinct configurations per study" in text
    assert "1 (100%); model-based 1 (100%)" in text
    assert "### Each sampler vs b at 1 trials" in text  # 25 / 50 / 100 are past the end
    assert "1.00 (p=0.00794)" in text and "0.00 (p=0.0286)" in text
    assert "| a         | 1/0/1              | 1/1/0              |" in text
    assert "| c         | 2/0/0              | 1/1/0              |" in text
    assert text.count("### Mann-Whitney U") == 0
