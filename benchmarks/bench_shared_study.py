"""Throughput of one study shared by 1, 2 and 4 worker processes, per storage and sampler.

Every configuration is a fresh study on a PostgreSQL server (a throwaway one, started here with
PostgreSQL's durable defaults, see ``tests/postgres.py``), a local journal file, or a local
SQLite file. ``N`` spawned worker processes load it, wait on a common start signal, and each
run ``--trials / N`` trials of a cheap objective (microseconds), so the time is the sampler
plus the storage. Trials per second = trials / (last worker's end - start signal). All
configurations run in one invocation, so the ratios are comparable on a noisy machine.

    python benchmarks/bench_shared_study.py --trials 200

Needs ``psycopg2-binary`` and the PostgreSQL server binaries for the PostgreSQL rows; without
them those rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any
from typing import TYPE_CHECKING

import optuna
from optuna.samplers import TPESampler
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
import pandas as pd

from optuna_kmtpe import KMeansTPESampler


if TYPE_CHECKING:
    from multiprocessing.synchronize import Event


_SPAWN = multiprocessing.get_context("spawn")


def _load_postgres_helper() -> Any:
    path = Path(__file__).resolve().parent.parent / "tests" / "postgres.py"
    spec = importlib.util.spec_from_file_location("_kmtpe_postgres", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _objective(trial: optuna.trial.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_int("y", 0, 8)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    return round((x - 1.0) ** 2 + abs(y - 3) + (c != "b"), 1)


def _storage(spec: str) -> optuna.storages.BaseStorage | str:
    if spec.startswith("journal:"):
        backend = JournalFileBackend(spec.removeprefix("journal:"))
        return optuna.storages.JournalStorage(backend)
    return spec


def _worker(
    spec: str,
    study_name: str,
    sampler: str,
    seed: int,
    n_trials: int,
    ready: Any,
    go: Event,
    out: Any,
) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = (
        KMeansTPESampler(seed=seed) if sampler == "kmeans-tpe" else TPESampler(seed=seed)
    )  # Both: 10 random startup trials, multivariate, constant liar.
    study = optuna.load_study(study_name=study_name, storage=_storage(spec), sampler=made)
    ready.put(seed)
    go.wait()
    try:
        study.optimize(_objective, n_trials=n_trials)
        out.put((time.time(), None))
    except Exception as e:  # Reported in the table, not hidden.
        out.put((time.time(), f"{type(e).__name__}: {e}"))


def _measure(spec: str, sampler: str, workers: int, trials: int) -> dict[str, Any]:
    name = f"bench-{sampler}-{workers}-{time.time_ns()}"
    optuna.create_study(study_name=name, storage=_storage(spec))
    ready, go, out = _SPAWN.Queue(), _SPAWN.Event(), _SPAWN.Queue()
    processes = [
        _SPAWN.Process(
            target=_worker, args=(spec, name, sampler, seed, trials // workers, ready, go, out)
        )
        for seed in range(workers)
    ]
    for p in processes:
        p.start()
    for _ in processes:  # Every worker has imported everything and loaded the study.
        ready.get(timeout=120)
    start = time.time()
    go.set()
    results = [out.get(timeout=1800) for _ in processes]
    for p in processes:
        p.join()
    elapsed = max(t for t, _ in results) - start
    errors = sorted({e for _, e in results if e is not None})
    study = optuna.load_study(study_name=name, storage=_storage(spec))
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return {
        "sampler": sampler,
        "workers": workers,
        "complete": complete,
        "seconds": round(elapsed, 2),
        "trials/s": round(complete / elapsed, 1),
        "errors": "; ".join(errors)[:120],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per configuration")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--samplers", default="kmeans-tpe,tpe")
    parser.add_argument("--storages", default="postgresql,journal,sqlite")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workers = [int(w) for w in args.workers.split(",")]
    samplers = args.samplers.split(",")
    storages = args.storages.split(",")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kmtpe-bench-") as tmp:
        specs: dict[str, str] = {
            "journal": f"journal:{Path(tmp) / 'journal.log'}",
            "sqlite": f"sqlite:///{Path(tmp) / 'study.db'}",
        }
        postgres = _load_postgres_helper()
        server = None
        if "postgresql" in storages:
            try:
                import psycopg2  # noqa: F401

                server = postgres.postgres_server(durable=True)
                specs["postgresql"] = server.__enter__()
            except (ImportError, postgres.PostgresUnavailable) as e:
                print(f"Skipping PostgreSQL: {e}", file=sys.stderr)
        try:
            for storage in storages:
                if storage not in specs:
                    continue
                for sampler in samplers:
                    for n in workers:
                        row = {
                            "storage": storage,
                            **_measure(specs[storage], sampler, n, args.trials),
                        }
                        print(row, file=sys.stderr, flush=True)
                        rows.append(row)
        finally:
            if server is not None:
                server.__exit__(None, None, None)

    table = pd.DataFrame(rows)
    one = table[table["workers"] == 1].set_index(["storage", "sampler"])["trials/s"]
    table["vs 1 worker"] = [
        round(r["trials/s"] / one.get((r["storage"], r["sampler"]), float("nan")), 2)
        for _, r in table.iterrows()
    ]
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
