"""Smoke runs of the example and benchmark scripts with tiny budgets."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest


ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_example() -> None:
    out = _run("examples/quickstart.py", "--seeds", "2", "--trials", "25")
    lines = out.splitlines()
    for name in ("KMeansTPESampler (default)", "TPESampler", "RandomSampler"):
        assert sum(line.startswith(f"  {name} ") for line in lines) == 2, name
    # The no-repeat rule: every one of the 25 trials on the 81-configuration space is new.
    assert "KMeansTPESampler (default)   [25, 25] of 25" in out


def test_sampler_overhead_benchmark() -> None:
    out = _run(
        "benchmarks/bench_sampler_overhead.py", "--sizes", "15", "--repeats", "2", "--rounds", "2"
    )
    assert all(f"{space} space" in out for space in ["mixed", "discrete", "nb201", "hpolib"])
    rows = [line for line in out.splitlines() if line.startswith("| KMeansTPESampler()")]
    assert len(rows) == 4 and all("ratio" not in row for row in rows)


def test_rank_clusters_benchmark() -> None:
    out = _run("benchmarks/bench_rank_clusters.py", "--number", "1", "--repeat", "1")
    rows = [line for line in out.splitlines() if line.startswith("| 1") or line.startswith("| 2")]
    assert len(rows) == 12 and all(row.count(" ms |") == 2 for row in rows)


def test_distinct_configurations_benchmark() -> None:
    out = _run(
        "benchmarks/distinct_configurations.py", "--seeds", "1", "--startup", "5", "--trials", "15"
    )
    default = next(line for line in out.splitlines() if line.startswith("| KMeansTPESampler() "))
    assert default.split("|")[2].strip() == "1.00"  # every model-based trial was new


@pytest.mark.parametrize("task", ["mixed-precision", "terraced-rosenbrock"])
def test_flat_convergence_benchmark(task: str) -> None:
    out = _run(
        "benchmarks/convergence_flat.py",
        *("--seeds", "2", "--trials", "12", "--startup", "5", "--checkpoints", "5,12"),
        *("--tasks", task, "--workers", "1"),
    )
    assert f"('{task}', 12)" in out


def test_shared_study_benchmark() -> None:
    out = _run(
        "benchmarks/bench_shared_study.py",
        *("--trials", "12", "--workers", "1,2", "--samplers", "kmeans-tpe"),
        *("--storages", "journal,sqlite"),
    )
    rows = [line.split("|") for line in out.splitlines() if "kmeans-tpe" in line]
    assert [(r[1].strip(), r[3].strip(), r[4].strip()) for r in rows] == [
        ("journal", "1", "12"),
        ("journal", "2", "12"),
        ("sqlite", "1", "12"),
        ("sqlite", "2", "12"),
    ]


def test_tiling_loss_benchmark() -> None:
    # The numbers docs/cost_model.md states (tiling loss, Table IV ResNet-20 size).
    out = _run("benchmarks/tiling_loss.py")
    assert "| resnet20 | Table IV (19 insertions: min-max) | 5.95x-7.39x | 8.04x-9.84x" in out
    assert "Loss over the width-scaled uniform rows (width != 1): 6.0%-29.2%" in out
    assert "0.0495-0.0651 MB over the 20 insertions (median 0.0521 MB)" in out


def test_proxy_rank_benchmark(tmp_path: Path) -> None:
    out = _run(
        "benchmarks/proxy_rank.py",
        *("--dataset", "digits", "--configs", "3", "--epochs", "1", "--final-epochs", "1"),
        *("--base-epochs", "1", "--bn-batches", "2", "--trial-subset", "200"),
        *("--out", str(tmp_path)),
    )
    assert sorted(p.name for p in (tmp_path / "configs").iterdir()) == [
        "000.json",
        "001.json",
        "002.json",
    ]
    summary = (tmp_path / "summary.md").read_text()
    for proxy in ("plain", "plain-mean", "kd", "bn", "long", "final_val"):
        assert f"| {proxy} |" in summary
    assert '"plain"' in out
    setting = json.loads((tmp_path / "summary.json").read_text())["setting"]
    assert (setting["trial_train_images"], setting["final_train_images"]) == (200, 1149)
