"""One thread setting, in force from the start of every command that trains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from optuna_kmtpe._runs.compare_run import CompareConfig
from optuna_kmtpe._runs.compare_run import run_compare
from optuna_kmtpe._runs.search_run import run_search
from optuna_kmtpe._runs.search_run import SearchConfig
from optuna_kmtpe._runs.threads import DEFAULT_THREADS
from optuna_kmtpe._zoo import train as zoo_train
from optuna_kmtpe.cli import main


class _Stop(Exception):
    pass


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Threads in force when the base model starts training (the run stops there)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # a value no run asks for
    threads: list[int] = []

    def record(*args: Any, **kwargs: Any) -> None:
        threads.append(torch.get_num_threads())
        raise _Stop

    monkeypatch.setattr(zoo_train, "train", record)
    yield threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [None, 2])
def test_search_sets_threads_before_the_base_model_trains(
    seen: list[int], tmp_path: Path, threads: int | None
) -> None:
    with pytest.raises(_Stop):
        run_search(SearchConfig(out=str(tmp_path), threads=threads, progress=False))
    assert seen == [DEFAULT_THREADS if threads is None else threads]


def test_compare_sets_threads_before_the_base_model_trains(
    seen: list[int], tmp_path: Path
) -> None:
    with pytest.raises(_Stop):
        run_compare(CompareConfig(out=str(tmp_path), threads=2))
    assert seen == [2]


def test_compare_takes_threads_on_the_command_line(seen: list[int], tmp_path: Path) -> None:
    with pytest.raises(_Stop):
        main(["compare", "--threads", "2", "--out", str(tmp_path)])
    assert seen == [2]


@pytest.mark.parametrize("command", ["search", "compare", "sensitivity", "bench"])
def test_threads_below_one_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--threads", "0"])
    assert e.value.code == 2
    assert "--threads: expected a positive integer, got 0" in capsys.readouterr().err
