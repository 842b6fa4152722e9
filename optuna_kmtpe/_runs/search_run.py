"""``kmtpe search`` on the model zoo and the built-in datasets, as a client of
:class:`~optuna_kmtpe.MixedPrecisionSearch`.

1. Load the data (:mod:`optuna_kmtpe._zoo.data`) and the base model: train it
   (``base_epochs``) or load ``checkpoint``; saved as ``<out>/base_model.pt``.
2. Build the :class:`~optuna_kmtpe.MixedPrecisionSearch` of the base model: Hessian traces
   on ``hessian_batches`` training batches, pruned space (widths for the layers that lead a
   width group), limits from the options (the size limit defaults to the model at 4 bits).
3. Run an Optuna study in ``storage`` (default ``sqlite:///<out>/study.db``) with
   ``workers`` processes on the search's prepared objective (:mod:`optuna_kmtpe._search`).
4. After every trial, rewrite ``results.csv``; at the end write the plots, pick the chosen
   configuration (:meth:`~optuna_kmtpe.MixedPrecisionSearch.best`), build it, train it
   ``final_epochs`` epochs, score it on the test split and write ``best_config.json``,
   ``result.json`` and ``final_model.pt``. The choice re-trains the best ``rescore``
   configurations ``rescore_repeats`` more times with fresh seeds and takes the best mean
   (:mod:`optuna_kmtpe._search.selection`; ``rescore=0``: the single best trial).

The study is the single source of truth: the search space, the model and dataset names
and the limits live in the study's user attributes, every measurement in the trials' user
attributes, so ``resume=True`` continues a killed run exactly where it stopped (interrupted
trials are re-run with the same parameters) and ``results.csv`` can always be rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import json
import math
from pathlib import Path
import sys
import time
from typing import Any

import optuna
import torch
from torch import nn

from optuna_kmtpe._budget import counted
from optuna_kmtpe._budget import open_slots
from optuna_kmtpe._budget import SURPLUS
from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.limits import HardwareLimits
from optuna_kmtpe._compress.limits import OBJECTIVES
from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._compress.loops import pick_device
from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._runs.threads import set_threads
from optuna_kmtpe._runs.zoo import base_model
from optuna_kmtpe._runs.zoo import check_input_shape
from optuna_kmtpe._runs.zoo import config_ebops
from optuna_kmtpe._runs.zoo import COST_MODEL_NOTES
from optuna_kmtpe._runs.zoo import COST_MODELS
from optuna_kmtpe._runs.zoo import default_epochs
from optuna_kmtpe._runs.zoo import hessian_batches
from optuna_kmtpe._runs.zoo import SearchError
from optuna_kmtpe._runs.zoo import zoo_limits
from optuna_kmtpe._runs.zoo import ZooEvaluator
from optuna_kmtpe._runs.zoo import ZooTrainer
from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._sampler_registry import SEARCH_SAMPLERS
from optuna_kmtpe._search.api import BestConfiguration
from optuna_kmtpe._search.api import MixedPrecisionSearch
from optuna_kmtpe._search.checkpoint import atomic_write
from optuna_kmtpe._search.checkpoint import save_checkpoint
from optuna_kmtpe._search.pruning import DEFAULT_PRUNER
from optuna_kmtpe._search.pruning import make_pruner
from optuna_kmtpe._search.pruning import PRUNERS
from optuna_kmtpe._search.report import TrialLog
from optuna_kmtpe._search.results import trials_table
from optuna_kmtpe._search.results import write_plots
from optuna_kmtpe._search.results import write_report
from optuna_kmtpe._search.results import write_table
from optuna_kmtpe._search.study import ATTR
from optuna_kmtpe._search.study import check_study_name
from optuna_kmtpe._search.study import create_study
from optuna_kmtpe._search.study import note_running_without_heartbeat
from optuna_kmtpe._search.study import open_study_storage
from optuna_kmtpe._search.study import requeue_interrupted
from optuna_kmtpe._search.study import StudyError
from optuna_kmtpe._search.study import wait_for_running
from optuna_kmtpe._search.workers import run_trials
from optuna_kmtpe._search.workers import WorkerJob
from optuna_kmtpe._zoo import train as _train
from optuna_kmtpe._zoo.catalog import DATASETS
from optuna_kmtpe._zoo.catalog import MODEL_NAMES
from optuna_kmtpe._zoo.catalog import TRIAL_SUBSET
from optuna_kmtpe._zoo.data import DataSplits
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.data import train_subset
from optuna_kmtpe._zoo.data import training_note
from optuna_kmtpe._zoo.models import build_model


__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "SearchConfig",
    "SearchError",
    "SearchResult",
    "run_search",
    "summary_text",
]

SAMPLERS = SEARCH_SAMPLERS
_logger = get_logger(__name__)


@dataclass
class SearchConfig:
    """Everything ``kmtpe search`` takes; defaults are the command's defaults.

    ``None`` for ``model``, ``base_epochs`` and ``final_epochs`` picks a value per dataset:
    ``digits``: ``small_cnn``, 20 base epochs, 30 final epochs; ``mnist-5k``: ``mnist_cnn``,
    10 base epochs, 15 final epochs; ``fashion-mnist``: ``fmnist_resnet``, 8 base epochs, 8
    final epochs; CIFAR-10: ``resnet20``;
    CIFAR-100: ``resnet18_cifar``; 30 base epochs, 90 final epochs (the paper) for CIFAR.
    When no limit is given, the size limit defaults to the model at 4 bits, width 1.

    ``workers`` processes run the trials (this one and ``workers - 1`` spawned ones that
    receive the prepared objective), each with ``threads`` torch threads (default 1,
    :data:`~optuna_kmtpe._runs.threads.DEFAULT_THREADS`), set in this process before the
    base model trains. ``final=False`` runs trials only (no choice, plots, final model or
    ``result.json``): for the other machines of a shared study. ``requeue_running`` fails
    and re-queues every RUNNING trial on resume (no other process may be running one).
    Worker ``i`` seeds its sampler with ``seed + i`` plus the number of trials already in
    the study.

    ``pruner`` names the pruner of the trials (:mod:`optuna_kmtpe._search.pruning`); Optuna
    does not store pruners, so a resumed study prunes with the one given now. The pareto
    objective cannot prune. ``None`` picks ``successive-halving`` (chosen by measurement,
    ``docs/results.md``), or ``none`` with the pareto objective or one epoch per candidate.
    """

    dataset: str = "digits"
    model: str | None = None
    data_dir: str | None = None
    download: bool = False
    limit_train: int | None = None
    trial_subset: int | None = None
    checkpoint: str | None = None
    base_epochs: int | None = None
    epochs: int = 4
    final_epochs: int | None = None
    lr: float = 0.001
    final_lr: float = 0.01
    batch_size: int = 64
    trials: int = 160
    startup: int = 40
    sampler: str = "kmeans-tpe"
    objective: str = "lagrangian"
    size_limit_mb: float | None = None
    latency_limit_ms: float | None = None
    min_speedup: float | None = None
    ebops: float | None = None
    no_limits: bool = False
    train_infeasible: bool = False
    n_clusters: int = 4
    hessian_batches: int = 2
    hessian_samples: int = 50
    hessian_rtol: float = 0.1
    seed: int = 0
    out: str = "kmtpe_runs/search"
    storage: str | None = None
    study_name: str | None = None
    resume: bool = False
    workers: int = 1
    threads: int | None = None
    final: bool = True
    requeue_running: bool = False
    device: str | None = None
    progress: bool | None = None
    reuse_repeats: bool = True
    # Re-score the best `rescore` configurations `rescore_repeats` times before choosing.
    rescore: int = 5
    rescore_repeats: int = 2
    # docs/search.md: the space rule, the warm start, infeasible proposals, the choice rule.
    space_rule: str = "baselines"
    warm_start: bool = True
    infeasible: str = "repair"
    choice_rule: str = "speed-band"
    narrow: str = "magnitude"
    # "memory": DRAM-bound latency at 19.2 GB/s (the default); "compute": the DSP array alone,
    # the reading the paper's speedups follow.
    cost_model: str = "memory"
    # None: "successive-halving" (measured: half the epochs at the same test accuracy,
    # docs/results.md), or "none" where nothing can be pruned (pareto, one epoch).
    pruner: str | None = None

    def resolved_model(self) -> str:
        return self.model or DATASETS.get(self.dataset, "small_cnn")


@dataclass
class SearchResult:
    """What a search found (``kmtpe search --json`` prints :meth:`to_dict`).

    The fields from ``bits`` on describe the chosen configuration; they stay None (and
    ``feasible`` False) when no trial met the limits.
    """

    dataset: str
    dataset_label: str
    model: str
    layers: list[str]
    n_trials: int
    n_complete: int
    n_failed: int
    limits: dict[str, float]
    base_val_accuracy: float | None
    base_test_accuracy: float | None
    baseline_size_mb: float
    final_epochs: int
    sampler: str
    objective: str
    cost_model: str
    storage: str
    study_name: str
    out: str
    pruner: str = "none"
    n_pruned: int = 0
    trial_train_images: int = 0
    final_train_images: int = 0
    bits: list[int] | None = None
    widths: list[float] | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    rescored_val_accuracy: float | None = None
    # What decided the choice: every re-scored configuration, best mean first.
    rescoring: list[dict[str, Any]] = field(default_factory=list)
    # The rule that chose among them (``--choice-rule``) and its score band.
    choice_rule: str = "score"
    tie_band: float = 0.0
    test_accuracy: float | None = None
    size_mb: float | None = None
    speedup: float | None = None
    latency_ms: float | None = None
    energy_mj: float | None = None
    ebops: float | None = None
    feasible: bool = False
    trial: int | None = None
    files: dict[str, str] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def run_search(config: SearchConfig, ready: Callable[[], None] | None = None) -> SearchResult:
    """Run the search described in the module docstring (messages go to the
    ``optuna_kmtpe`` logger).

    Args:
        config: The options.
        ready: Called once the preparation is done, right before this process starts
            trials.

    Returns:
        The :class:`SearchResult` (``feasible`` is False when no trial met the limits).

    Raises:
        SearchError: Bad options, an existing study without ``resume``, a study to resume
            that does not match the options, or limits no configuration can meet.
        optuna_kmtpe._zoo.data.DataError: Unknown, missing or unreadable dataset.
        optuna_kmtpe._search.checkpoint.CheckpointError: A checkpoint that does not fit the model.
    """
    try:
        return _run(config, ready)
    except StudyError as e:
        raise SearchError(str(e)) from None


def _run(config: SearchConfig, ready: Callable[[], None] | None) -> SearchResult:
    started = time.perf_counter()
    cfg = resolve_config(config)
    threads = set_threads(cfg.threads)  # before the base model and the traces
    model_name = str(cfg.model)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    progress = sys.stderr.isatty() if cfg.progress is None else cfg.progress
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    # A bad --resume must fail before any training.
    storage_url = cfg.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    storage = open_study_storage(storage_url)
    study_name = cfg.study_name or f"kmtpe-{model_name}-{cfg.dataset}"
    check_study_name(storage, storage_url, study_name, cfg.resume)

    data = load_dataset(
        cfg.dataset,
        cfg.data_dir,
        download=cfg.download,
        seed=cfg.seed,
        limit_train=cfg.limit_train,
    )
    _logger.info(f"data: {data.summary()}")
    check_input_shape(model_name, data.num_classes, data.input_shape)
    trial_data = train_subset(data, cfg.trial_subset or None, cfg.seed)
    n_trial_images, n_train_images = len(trial_data.train[1]), len(data.train[1])
    _logger.info(f"data: {training_note(n_trial_images, n_train_images)}")
    base = _base_model(cfg, data, out, device)
    base_val = base_test = None
    if cfg.final:  # only the process that reports the result needs the base accuracy
        base_val = _train.evaluate(base, data, "val", device=device)
        base_test = _train.evaluate(base, data, "test", device=device)
        _logger.info(f"base model (float): val accuracy {base_val:.4f}, test {base_test:.4f}")

    pruner_name = str(cfg.pruner)  # resolved by resolve_config
    pruner = make_pruner(pruner_name, cfg.epochs)
    study = (
        optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
        if cfg.resume
        else None
    )
    space = None
    if study is not None:
        _check_resume(study.user_attrs, cfg, model_name)
        space = MixedPrecisionSpace.from_json(study.user_attrs[ATTR + "space"])
        _logger.info(f"search space: read from the study ({len(space.layers)} layers)")
    with torch.device("meta"):
        meta_model = build_model(model_name, data.num_classes)
    hardware = COST_MODELS[cfg.cost_model]
    _logger.info(f"cost model: {cfg.cost_model}-bound ({COST_MODEL_NOTES[cfg.cost_model]})")
    limits = _limits(cfg, DSPPackingModel(meta_model, data.input_shape, **hardware))
    try:
        search = MixedPrecisionSearch(
            base,
            train_fn=ZooTrainer(trial_data, cfg.lr, cfg.batch_size, device),
            eval_fn=ZooEvaluator(data, "val", device),
            input_shape=data.input_shape,
            limits=limits,
            epochs=cfg.epochs,
            n_clusters=cfg.n_clusters,
            space=space,
            hessian_batches=cfg.hessian_batches,
            hessian_samples=cfg.hessian_samples,
            hessian_rtol=cfg.hessian_rtol,
            hessian_data=hessian_batches(
                data, cfg.batch_size, cfg.hessian_batches, cfg.seed, device
            ),
            objective=cfg.objective,
            train_infeasible=cfg.train_infeasible,
            reuse_repeats=cfg.reuse_repeats,
            space_rule=cfg.space_rule,
            infeasible=cfg.infeasible,
            narrow=cfg.narrow,
            device=device,
            seed=cfg.seed,
            progress=progress,
            hardware=hardware,
        )
        space = search.space
    except ValueError as e:
        raise SearchError(str(e)) from None
    atomic_write(out / "space.json", lambda f: f.write(space.to_json(indent=2)))
    limit_dict = {k: v for k, v in asdict(limits).items() if v is not None}
    pareto_metrics = ["size_mb"] + (["latency_ms"] if limits.latency_ms is not None else [])

    if study is None:
        study = create_study(
            storage,
            study_name,
            cfg.objective,
            {
                "model": model_name,
                "dataset": cfg.dataset,
                "dataset_label": data.label,
                "num_classes": data.num_classes,
                "objective": cfg.objective,
                "sampler": cfg.sampler,
                "cost_model": cfg.cost_model,
                "limits": limit_dict,
                "space": space.to_json(),
                "pareto_metrics": pareto_metrics,
            },
            pruner=pruner,
        )
    elif study.user_attrs.get(ATTR + "limits") != limit_dict:
        raise SearchError(
            f"The study to resume was run with the limits {study.user_attrs.get(ATTR + 'limits')}"
            f", the options give {limit_dict}; its trials' feasibility was judged against the "
            "former. Pass the same limit options, or start a new study (--out / --study-name)."
        )
    search.prepare_study(study)
    if cfg.warm_start:  # within the trials left in the budget
        waiting = sum(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
        search.enqueue_warm_start(study, limit=max(open_slots(study, cfg.trials) - waiting, 0))
    local = cfg.storage is None
    n_retry = requeue_interrupted(study, storage, local or cfg.requeue_running)
    slots = max(open_slots(study, cfg.trials), 0)
    study.sampler = make_sampler(cfg.sampler, cfg.seed + len(study.trials), cfg.startup)
    _logger.info(
        f"study {study_name!r} in {storage_url}: {counted(study)} trials done, {slots} to go"
        + (f" ({n_retry} interrupted trial(s) re-queued)" if n_retry else "")
        + f"; sampler {cfg.sampler}, objective {cfg.objective}, pruner {pruner_name}"
    )
    note_running_without_heartbeat(study, storage)
    job = WorkerJob(
        objective=search.objective(budget=cfg.trials),
        storage_url=storage_url,
        study_name=study_name,
        sampler=cfg.sampler,
        seed=cfg.seed,
        startup=cfg.startup,
        target=cfg.trials,
        pruner=pruner_name,
        threads=threads,
        callbacks=[TrialLog(out, progress and cfg.workers == 1)],
    )
    run_trials(
        study,
        job,
        slots=slots,
        workers=cfg.workers,
        threads=threads,
        show_progress_bar=progress and cfg.workers == 1,
        ready=ready,
    )
    if cfg.final:
        wait_for_running(study, storage)
    table = trials_table(study)
    write_table(table, out / "results.csv")

    n_complete = sum(t.state.name == "COMPLETE" for t in study.trials)
    res = SearchResult(
        dataset=cfg.dataset,
        dataset_label=data.label,
        model=model_name,
        layers=list(space.layers),
        n_trials=len(study.trials),
        n_complete=n_complete,
        n_failed=sum(t.state.name == "FAIL" and SURPLUS not in t.user_attrs for t in study.trials),
        limits=limit_dict,
        base_val_accuracy=base_val,
        base_test_accuracy=base_test,
        baseline_size_mb=search.cost_model.baseline().size_mb,
        final_epochs=int(cfg.final_epochs or 0),
        sampler=cfg.sampler,
        objective=cfg.objective,
        choice_rule=cfg.choice_rule,
        cost_model=cfg.cost_model,
        storage=storage_url,
        study_name=study_name,
        out=str(out),
        pruner=pruner_name,
        n_pruned=sum(t.state.name == "PRUNED" for t in study.trials),
        trial_train_images=n_trial_images,
        final_train_images=n_train_images,
    )
    if not cfg.final:
        res.message = (
            f"trials only (--no-final): the study has {counted(study)} of {cfg.trials} trials; "
            "the process that runs without --no-final chooses and trains the final model."
        )
        return res
    try:
        best: BestConfiguration | None = search.best(
            study,
            rescore=cfg.rescore,
            rescore_repeats=cfg.rescore_repeats,
            choice_rule=cfg.choice_rule,
        )
    except ValueError:
        best = None
    res.files = _write_plots(study, table, out, best, res, limits.size_mb)
    if best is None:
        res.message = (
            f"No configuration met the limits {limit_dict} in {n_complete} completed trials "
            f"({res.n_failed} failed). Relax the limits, run more trials (--resume --trials N), "
            "or pass --train-infeasible to see the accuracy of the ones that broke a limit."
        )
    else:
        _finish(res, best, search, data, cfg, device)
    res.seconds = time.perf_counter() - started
    write_report(
        study,
        table,
        out / "report.html",
        chosen=None if best is None else best.trial,
        title=f"{res.model} on {res.dataset_label}, sampler {res.sampler}",
        size_limit_mb=limits.size_mb,
        summary=summary_text(res).splitlines()[1:],
    )
    res.files["result"] = str(out / "result.json")
    atomic_write(out / "result.json", lambda f: json.dump(res.to_dict(), f, indent=2))
    return res


def resolve_config(config: SearchConfig) -> SearchConfig:
    if config.dataset not in DATASETS:
        raise SearchError(
            f"Unknown dataset {config.dataset!r}; known datasets: {', '.join(DATASETS)}."
        )
    model = config.resolved_model()
    if model not in MODEL_NAMES:
        raise SearchError(
            f"Unknown model {model!r}; known models: {', '.join(MODEL_NAMES)}. For your own "
            "model, use optuna_kmtpe.MixedPrecisionSearch (docs/api.md)."
        )
    if config.sampler not in SAMPLERS:
        raise SearchError(f"Unknown sampler {config.sampler!r}; choose from {SAMPLERS}.")
    if config.objective not in OBJECTIVES:
        raise SearchError(f"Unknown objective {config.objective!r}; choose from {OBJECTIVES}.")
    if config.pruner is not None and config.pruner not in PRUNERS:
        raise SearchError(f"Unknown pruner {config.pruner!r}; choose from {PRUNERS}.")
    if config.pruner not in (None, "none") and config.objective == "pareto":
        raise SearchError(
            f"--pruner {config.pruner} cannot be used with --objective pareto: Optuna prunes "
            "single-objective studies only. Use --pruner none, or another --objective."
        )
    for name in (
        "trials",
        "epochs",
        "batch_size",
        "hessian_batches",
        "hessian_samples",
        "workers",
    ):
        value = getattr(config, name)
        if int(value) != value or value < (0 if name == "epochs" else 1):
            raise SearchError(f"`{name}` must be a positive integer, got {value!r}.")
    if config.rescore < 0 or config.rescore_repeats < 1:
        raise SearchError(
            f"`rescore` must be >= 0 and `rescore-repeats` >= 1, got {config.rescore} and "
            f"{config.rescore_repeats}."
        )
    if config.trial_subset is not None and config.trial_subset < 0:
        raise SearchError(
            "`trial-subset` must be >= 0 (0: the whole training split), got "
            f"{config.trial_subset}."
        )
    if config.threads is not None and config.threads < 1:
        raise SearchError(f"`threads` must be a positive integer, got {config.threads!r}.")
    if config.startup < 0:
        raise SearchError(f"`startup` must be >= 0, got {config.startup}.")
    for name in ("size_limit_mb", "latency_limit_ms", "min_speedup", "ebops"):
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SearchError(f"`{name.replace('_', '-')}` must be > 0, got {value!r}.")
    base_epochs, final_epochs = default_epochs(config.dataset)
    out = SearchConfig(**asdict(config))
    out.model = model
    if out.pruner is None:
        can_prune = config.objective != "pareto" and config.epochs >= 2
        out.pruner = DEFAULT_PRUNER if can_prune else "none"
    if out.base_epochs is None:
        out.base_epochs = base_epochs
    if out.final_epochs is None:
        out.final_epochs = final_epochs
    if out.trial_subset is None:
        out.trial_subset = TRIAL_SUBSET.get(config.dataset, 0)
    return out


def _limits(config: SearchConfig, cost: DSPPackingModel) -> HardwareLimits:
    """HardwareLimits from the options (logged); ``--min-speedup s`` becomes a latency limit."""
    return zoo_limits(
        cost,
        size_mb=config.size_limit_mb,
        latency_ms=config.latency_limit_ms,
        min_speedup=config.min_speedup,
        default_size=None
        if config.no_limits
        else lambda: (
            cost.evaluate(4).size_mb,
            "the model at 4 bits, width 1; --no-limits searches for accuracy alone",
        ),
        ebops=config.ebops,
    )


def _checkpoint_meta(cfg: SearchConfig, data: DataSplits) -> dict[str, Any]:
    return {"model": cfg.model, "dataset": cfg.dataset, "num_classes": data.num_classes}


def _base_model(cfg: SearchConfig, data: DataSplits, out: Path, device: torch.device) -> nn.Module:
    return base_model(
        str(cfg.model),
        data,
        out=out,
        device=device,
        seed=cfg.seed,
        epochs=int(cfg.base_epochs or 0),
        lr=cfg.final_lr,
        batch_size=cfg.batch_size,
        meta=_checkpoint_meta(cfg, data),
        checkpoint=cfg.checkpoint,
        resume=cfg.resume,
    )


def _check_resume(stored: dict[str, Any], cfg: SearchConfig, model_name: str) -> None:
    wanted = {
        "model": model_name,
        "dataset": cfg.dataset,
        "objective": cfg.objective,
        "cost_model": cfg.cost_model,
    }
    # Studies from before --cost-model existed were priced memory-bound.
    stored = {ATTR + "cost_model": "memory", **stored}
    diff = {k: (stored.get(ATTR + k), v) for k, v in wanted.items() if stored.get(ATTR + k) != v}
    if diff:
        parts = ", ".join(f"{k}: study has {s!r}, options say {o!r}" for k, (s, o) in diff.items())
        raise SearchError(f"The study to resume was run with other options ({parts}).")
    if ATTR + "space" not in stored:
        raise SearchError("The study to resume has no stored search space; was it made by kmtpe?")


def _write_plots(
    study: optuna.Study,
    table: Any,
    out: Path,
    best: BestConfiguration | None,
    res: SearchResult,
    size_limit: float | None,
) -> dict[str, str]:
    """The plots of :func:`optuna_kmtpe._search.results.write_plots`; returns the result's
    ``files``."""
    files = {"results": str(out / "results.csv"), "space": str(out / "space.json")}
    for p in write_plots(
        study,
        table,
        out,
        chosen=None if best is None else best.trial,
        title=f"{res.model} on {res.dataset_label}, sampler {res.sampler}",
        size_limit_mb=size_limit,
    ):
        files[p.stem] = str(p)
    return files


def _finish(
    res: SearchResult,
    best: BestConfiguration,
    search: MixedPrecisionSearch,
    data: DataSplits,
    cfg: SearchConfig,
    device: torch.device,
) -> None:
    """Fill ``res`` from the chosen configuration, write ``best_config.json``, and train,
    score and save the final model (``final_epochs > 0``)."""
    res.bits = [int(b) for b in best.bits.values() if b is not None]
    res.widths = list(best.widths.values())
    res.trial, res.feasible = best.trial, True
    res.val_accuracy = best.accuracy
    res.rescored_val_accuracy = best.rescored_accuracy
    res.rescoring = best.rescoring
    res.tie_band = best.tie_band
    res.size_mb, res.speedup = best.size_mb, best.speedup
    res.latency_ms, res.energy_mj = best.latency_ms, best.energy_mj
    res.ebops = config_ebops(
        search.cost_model, list(best.bits.values()), list(best.widths.values())
    )
    out = Path(res.out)
    atomic_write(
        out / "best_config.json",
        lambda f: json.dump(
            {
                "model": res.model,
                "dataset": res.dataset_label,
                "trial": best.trial,
                "layers": res.layers,
                "bits": res.bits,
                "widths": res.widths,
                "params": best.params,
                "val_accuracy": res.val_accuracy,
                "rescored_val_accuracy": res.rescored_val_accuracy,
                "rescoring": res.rescoring,
                "size_mb": res.size_mb,
                "speedup": res.speedup,
                "latency_ms": res.latency_ms,
                "ebops": res.ebops,
            },
            f,
            indent=2,
        ),
    )
    res.files["best_config"] = str(out / "best_config.json")
    res.accuracy = res.val_accuracy
    if res.final_epochs <= 0:
        return
    _logger.info(f"final model: trial {best.trial}, training {res.final_epochs} epochs")
    net = search.build(best)
    try:
        ZooTrainer(data, cfg.final_lr, cfg.batch_size, device)(
            net, epochs=res.final_epochs, seed=cfg.seed
        )
    except DivergenceError as e:  # the search's results stand; say so instead of crashing
        res.message = (
            f"The final training diverged ({e}); the accuracy is the chosen trial's validation "
            "accuracy. Retry with a lower --final-lr (the study is kept: add --resume)."
        )
        _logger.info(res.message)
        return
    res.val_accuracy = _train.evaluate(net, data, "val", device=device)
    res.test_accuracy = _train.evaluate(net, data, "test", device=device)
    res.accuracy = res.test_accuracy
    meta = {
        **_checkpoint_meta(cfg, data),
        "bits": res.bits,
        "widths": res.widths,
        "cost_model": cfg.cost_model,
    }
    save_checkpoint(net, out / "final_model.pt", meta=meta)
    res.files["final_model"] = str(out / "final_model.pt")


def summary_text(r: SearchResult) -> str:
    """The result in words, as ``kmtpe search`` prints it and ``report.html`` shows it."""
    lines = [
        f"kmtpe search: {r.model} on {r.dataset_label}",
        f"  study       {r.study_name} in {r.storage}",
    ]
    pruned = f"{r.n_pruned} pruned, " if r.pruner != "none" else ""
    lines.append(
        f"  trials      {r.n_trials} ({r.n_complete} complete, {pruned}{r.n_failed} failed), "
        f"sampler {r.sampler}, objective {r.objective}"
        + (f", pruner {r.pruner}" if r.pruner != "none" else "")
    )
    limits = ", ".join(f"{k} <= {v:.6g}" for k, v in r.limits.items()) or "none"
    lines.append(f"  limits      {limits}")
    if r.final_train_images:
        lines.append(f"  training    {training_note(r.trial_train_images, r.final_train_images)}")
    base = f"{r.base_test_accuracy:.4f}" if r.base_test_accuracy is not None else "n/a"
    lines.append(f"  float model test accuracy {base}, size {r.baseline_size_mb:.4g} MB at FiP16")
    if not r.feasible or r.size_mb is None:
        lines.append(f"  NO CONFIGURATION MET THE LIMITS. {r.message}")
    else:
        acc = (
            f"test {r.test_accuracy:.4f} after {r.final_epochs} epochs (val {r.val_accuracy:.4f})"
            if r.test_accuracy is not None
            else f"val {r.val_accuracy:.4f} (no final training)"
        )
        if r.rescored_val_accuracy is not None:
            acc += f"; re-scored val {r.rescored_val_accuracy:.4f} (mean, fresh seeds)"
        lines += [
            f"  chosen      trial {r.trial}",
            *_layer_lines(r),
            f"  accuracy    {acc}",
            f"  size        {r.size_mb:.4g} MB ({r.baseline_size_mb / r.size_mb:.1f}x smaller "
            "than FiP16)",
            f"  speedup     {r.speedup:.2f}x vs FiP16, latency {r.latency_ms:.4g} ms"
            f" ({r.cost_model}-bound cost model, --cost-model)",
        ]
        lines += _rescoring_lines(r)
        if r.ebops is not None:
            lines.append(
                f"  EBOPs       {r.ebops:.4g} (weight bits x input bits per MAC, HGQ's measure)"
            )
        if r.message:
            lines.append(f"  note        {r.message}")
    lines.append(f"  files       {r.out}/ ({', '.join(sorted(r.files))})")
    lines.append(f"  time        {r.seconds:.1f} s")
    return "\n".join(lines)


def _layer_lines(r: SearchResult) -> list[str]:
    """The chosen configuration per layer: name, bits, width."""
    name_w = max(len(n) for n in r.layers)
    lines = [f"  layers      {'layer':<{name_w}}  bits  width"]
    for name, bits, width in zip(r.layers, r.bits or [], r.widths or []):
        lines.append(f"              {name:<{name_w}}  {bits:>4}  {width:g}")
    return lines


def _rescoring_lines(r: SearchResult) -> list[str]:
    """Why this trial: the re-scored configurations, best mean first."""
    if not r.rescoring:
        return []
    n = len(r.rescoring[0]["scores"])
    rule = (
        f"the fastest within {r.tie_band:.4f} of the best mean (--choice-rule speed-band)"
        if r.choice_rule == "speed-band"
        else "the best mean (--choice-rule score)"
    )
    lines = [
        f"  re-scoring  {len(r.rescoring)} configurations, each trained {n} times "
        f"(the trial + fresh seeds); chosen: {rule}"
    ]
    for c in r.rescoring:
        mark = "*" if c["trial"] == r.trial else " "
        scores = ", ".join(f"{x:.4f}" for x in c["scores"])
        lines.append(
            f"            {mark} trial {c['trial']:<4} mean {c['mean']:.4f} sd {c['sd']:.4f} "
            f"({scores}), {c['size_mb']:.4g} MB, {c['speedup']:.2f}x"
        )
    return lines
