"""Share of trials that trained a feasible configuration under the former behaviour (paper
space, no warm start, penalty) where ``kmtpe compare`` stops because no trial met the limits.
Same data, base model, limits, sampler, trials and seeds as run.sh; no final training.
It ran on commit 0ad7f45 (before ``kmtpe search`` / ``compare``'s code moved from
``optuna_kmtpe._commands`` to ``optuna_kmtpe._runs``); check that commit out to re-run it.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/results/space-repair/before_share.py \
        DATASET CHECKPOINT SIZE_LIMIT_MB MIN_SPEEDUP [METHODS [SEEDS]]
"""

from __future__ import annotations

from pathlib import Path
import sys

import optuna

from optuna_kmtpe._commands.compare_run import _check
from optuna_kmtpe._commands.compare_run import _limits
from optuna_kmtpe._commands.compare_run import CompareConfig
from optuna_kmtpe._commands.search_run import _base_model
from optuna_kmtpe._commands.search_run import _hessian_batches
from optuna_kmtpe._commands.search_run import _ZooEvaluator
from optuna_kmtpe._commands.search_run import _ZooTrainer
from optuna_kmtpe._commands.search_run import COST_MODELS
from optuna_kmtpe._compress.loops import pick_device
from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._search.api import MixedPrecisionSearch
from optuna_kmtpe._search.objective import EPOCHS_TRAINED
from optuna_kmtpe._search.pruning import make_pruner
from optuna_kmtpe._zoo.data import load_dataset


dataset, checkpoint, size, speed = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
cfg = CompareConfig(
    dataset=dataset, checkpoint=checkpoint, size_limit_mb=size, min_speedup=speed,
    trials=10, epochs=1, seeds=int(sys.argv[6]) if len(sys.argv) > 6 else 2,
)  # fmt: skip
methods = sys.argv[5].split(",") if len(sys.argv) > 5 else ["kmeans-tpe", "random"]
optuna.logging.set_verbosity(optuna.logging.WARNING)
search_cfg = _check(cfg)
device = pick_device(None)
data = load_dataset(cfg.dataset, None, seed=0)
base = _base_model(search_cfg, data, Path("unused"), device)  # loads CHECKPOINT
search = MixedPrecisionSearch(
    base,
    train_fn=_ZooTrainer(data, cfg.lr, cfg.batch_size, device),
    eval_fn=_ZooEvaluator(data, "val", device),
    input_shape=(1, *data.input_shape),
    limits=_limits(cfg, str(search_cfg.model), data.num_classes),
    epochs=cfg.epochs,
    hessian_data=_hessian_batches(search_cfg, data, device),
    device=device,
    seed=0,
    hardware=COST_MODELS[cfg.cost_model],
    space_rule="paper",
    infeasible="penalty",
)
for method in methods:
    for seed in range(cfg.seeds):
        study = optuna.create_study(
            direction="maximize",
            sampler=make_sampler(method, seed, cfg.startup),
            pruner=make_pruner(cfg.pruner, cfg.epochs),
        )
        search.optimize(study, n_trials=cfg.trials, warm_start=False)
        n = sum(
            bool(t.user_attrs.get("feasible")) and int(t.user_attrs.get(EPOCHS_TRAINED, 0)) > 0
            for t in study.trials
        )
        print(f"{dataset} {method} seed {seed}: {n}/{len(study.trials)} trained feasible")
