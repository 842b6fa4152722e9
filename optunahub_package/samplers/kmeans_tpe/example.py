"""KMeansTPESampler on a fully discrete space: every trial is a configuration not seen before."""

from __future__ import annotations

import optuna
import optunahub


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_int("x", -5, 5)
    y = trial.suggest_categorical("y", [-1, 0, 1])
    return x**2 + y


if __name__ == "__main__":
    module = optunahub.load_module(package="samplers/kmeans_tpe")
    sampler = module.KMeansTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=30)
    distinct = {tuple(sorted(t.params.items())) for t in study.trials}
    print(f"best value {study.best_value}, {len(distinct)} distinct of {len(study.trials)} trials")
