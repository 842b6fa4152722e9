"""The whole search of the paper's Algorithm 1, as used by ``kmtpe search``.

1. Load the data (:mod:`optuna_kmtpe._data`) and the base model: train it
   (``base_epochs``) or load ``checkpoint``; saved as ``<out>/base_model.pt``.
2. Estimate per-layer Hessian traces (:func:`~optuna_kmtpe.hessian_traces`) and prune the
   search space (:func:`~optuna_kmtpe.prune_search_space`; widths are searched for the layers
   that lead a width group of :func:`optuna_kmtpe._models.width_groups`).
3. Run an Optuna study in ``storage`` (default ``sqlite:///<out>/study.db``). Each trial
   suggests bits and widths, costs them on the :class:`~optuna_kmtpe.DSPPackingModel`, builds
   the width-scaled model initialised from the base model (:mod:`optuna_kmtpe._inherit`),
   fake-quantises it (:mod:`optuna_kmtpe._quant`), trains it ``epochs`` epochs and scores it
   on the validation split. Configurations that break a hardware limit are not trained
   unless ``train_infeasible`` (their cost is known beforehand; accuracy is recorded as 0).
4. After every trial, rewrite ``results.csv``; at the end write the plots, pick the chosen
   configuration (the feasible trial with the highest validation accuracy, then the smallest
   size), train it ``final_epochs`` epochs, score it on the test split and write
   ``best_config.json``, ``result.json`` and ``final_model.pt``.

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
import itertools
import json
import math
from pathlib import Path
import sys
import time
from typing import Any
import warnings

from optuna_kmtpe._budget import claim
from optuna_kmtpe._budget import counted
from optuna_kmtpe._budget import FAIL_REASON
from optuna_kmtpe._budget import fail_stale
from optuna_kmtpe._budget import open_slots
from optuna_kmtpe._budget import StopAtTarget
from optuna_kmtpe._budget import SURPLUS
from optuna_kmtpe._budget import Surplus
from optuna_kmtpe._checkpoint import atomic_write
from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._sampler_registry import SAMPLERS as SAMPLER_FACTORIES
from optuna_kmtpe._storage import open_storage


__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "SearchConfig",
    "SearchError",
    "SearchResult",
    "run_search",
]

SAMPLERS = tuple(SAMPLER_FACTORIES)
OBJECTIVES = ("lagrangian", "constraints", "pareto")
_ATTR = "kmtpe:"
_POLL_S = 2.0


class SearchError(ValueError):
    """Bad input to the search (the message says what is wrong and how to fix it)."""


@dataclass
class SearchConfig:
    """Everything ``kmtpe search`` takes; defaults are the command's defaults.

    ``None`` for ``model``, ``base_epochs`` and ``final_epochs`` picks a value per dataset:
    ``digits``: ``small_cnn``, 20 base epochs, 30 final epochs; CIFAR-10: ``resnet20``;
    CIFAR-100: ``resnet18_cifar``; 30 base epochs, 90 final epochs (the paper) for CIFAR.
    When no limit is given, the size limit defaults to the model at 4 bits, width 1.

    ``workers`` processes run the trials (this one and ``workers - 1`` spawned ones), each
    with ``threads`` torch threads (default 1 when ``workers > 1``). ``final=False`` runs
    trials only (no choice, plots, final model or ``result.json``): for the other machines
    of a shared study. ``requeue_running`` fails and re-queues every RUNNING trial on resume
    (no other process may be running one). ``worker_index`` is set by the launcher for its
    spawned workers; worker ``i`` seeds its sampler with ``seed + i`` plus the number of
    trials already in the study.
    """

    dataset: str = "digits"
    model: str | None = None
    data_dir: str | None = None
    download: bool = False
    limit_train: int | None = None
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
    worker_index: int = 0
    device: str | None = None
    progress: bool | None = None

    def resolved_model(self) -> str:
        from optuna_kmtpe._catalog import DATASETS

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
    storage: str
    study_name: str
    out: str
    bits: list[int] | None = None
    widths: list[float] | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    size_mb: float | None = None
    speedup: float | None = None
    latency_ms: float | None = None
    energy_mj: float | None = None
    feasible: bool = False
    trial: int | None = None
    files: dict[str, str] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _resolve(config: SearchConfig) -> SearchConfig:
    from optuna_kmtpe._catalog import DATASETS
    from optuna_kmtpe._catalog import MODEL_NAMES

    if config.dataset not in DATASETS:
        raise SearchError(
            f"Unknown dataset {config.dataset!r}; known datasets: {', '.join(DATASETS)}."
        )
    model = config.resolved_model()
    if model not in MODEL_NAMES:
        raise SearchError(f"Unknown model {model!r}; known models: {', '.join(MODEL_NAMES)}.")
    if config.sampler not in SAMPLERS:
        raise SearchError(f"Unknown sampler {config.sampler!r}; choose from {SAMPLERS}.")
    if config.objective not in OBJECTIVES:
        raise SearchError(f"Unknown objective {config.objective!r}; choose from {OBJECTIVES}.")
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
    if config.threads is not None and config.threads < 1:
        raise SearchError(f"`threads` must be a positive integer, got {config.threads!r}.")
    if config.startup < 0:
        raise SearchError(f"`startup` must be >= 0, got {config.startup}.")
    for name in ("size_limit_mb", "latency_limit_ms", "min_speedup"):
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SearchError(f"`{name.replace('_', '-')}` must be > 0, got {value!r}.")
    digits = config.dataset == "digits"
    out = SearchConfig(**asdict(config))
    out.model = model
    if out.base_epochs is None:
        out.base_epochs = 20 if digits else 30
    if out.final_epochs is None:
        out.final_epochs = 30 if digits else 90
    return out


def _check_input_shape(model_name: str, num_classes: int, shape: tuple[int, ...]) -> None:
    import torch

    from optuna_kmtpe._models import build_model
    from optuna_kmtpe._models import input_shape

    with torch.device("meta"):
        net = build_model(model_name, num_classes)
        try:
            net(torch.zeros((2, *shape)))
        except Exception as e:
            raise SearchError(
                f"Model {model_name!r} (made for inputs {input_shape(model_name)}) cannot take "
                f"this dataset's images {shape}: {type(e).__name__}: {e}. Pick a model for "
                f"this dataset, e.g. --model {_suggest_model(shape)}."
            ) from None


def _suggest_model(shape: tuple[int, ...]) -> str:
    return "small_cnn" if shape[0] == 1 else "resnet20"


def _limits(config: SearchConfig, cost: Any) -> tuple[Any, str]:
    """HardwareLimits from the options; ``--min-speedup s`` becomes a latency limit."""
    from optuna_kmtpe._objective import HardwareLimits

    latency = config.latency_limit_ms
    notes = []
    if config.min_speedup is not None:
        from_speedup = cost.baseline().latency_ms / config.min_speedup
        latency = from_speedup if latency is None else min(latency, from_speedup)
        notes.append(
            f"--min-speedup {config.min_speedup:g} = latency <= {from_speedup:.6g} ms "
            "(FiP16 baseline latency / speedup)"
        )
    size = config.size_limit_mb
    if size is None and latency is None and not config.no_limits:
        size = cost.evaluate(4).size_mb
        notes.append(
            f"no limit given: size <= {size:.6g} MB (the model at 4 bits, width 1); "
            "--no-limits searches for accuracy alone"
        )
    return HardwareLimits(size_mb=size, latency_ms=latency), "; ".join(notes)


def _storage(config: SearchConfig, out: Path) -> tuple[Any, str, bool]:
    """Optuna storage object (:func:`optuna_kmtpe._storage.open_storage`), its URL, and
    whether it is this run's own local file."""
    url = config.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    try:
        storage = open_storage(url)
    except Exception as e:
        raise SearchError(f"Cannot open the study storage {url!r}: {type(e).__name__}: {e}") from e
    return storage, url, config.storage is None


def run_search(
    config: SearchConfig,
    log: Callable[[str], None] | None = None,
    ready: Callable[[], None] | None = None,
) -> SearchResult:
    """Run the search described in the module docstring.

    Args:
        config: The options.
        log: Receives progress lines (default: printed on stderr).
        ready: Called once the preparation is done, right before this process starts
            trials (a spawned worker tells its launcher so).

    Returns:
        The :class:`SearchResult` (``feasible`` is False when no trial met the limits).

    Raises:
        SearchError: Bad options, an existing study without ``resume``, a study to resume
            that does not match the options, or limits no configuration can meet.
        optuna_kmtpe._data.DataError: Unknown, missing or unreadable dataset.
        optuna_kmtpe._checkpoint.CheckpointError: A checkpoint that does not fit the model.
    """
    import optuna
    import torch

    from optuna_kmtpe._cost import DSPPackingModel
    from optuna_kmtpe._data import load_dataset
    from optuna_kmtpe._models import build_model
    from optuna_kmtpe._report import trials_table
    from optuna_kmtpe._report import write_table
    from optuna_kmtpe._search_space import MixedPrecisionSpace
    from optuna_kmtpe._train import evaluate
    from optuna_kmtpe._train import pick_device

    started = time.perf_counter()
    log = log or _stderr
    cfg = _resolve(config)
    model_name = str(cfg.model)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    progress = sys.stderr.isatty() if cfg.progress is None else cfg.progress
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    # --- Study first: a bad --resume must fail before any training. ----------------------
    storage, storage_url, local = _storage(cfg, out)
    study_name = cfg.study_name or f"kmtpe-{model_name}-{cfg.dataset}"
    _check_study_name(storage, storage_url, study_name, cfg.resume)

    # --- Data and base model. --------------------------------------------------------------
    data = load_dataset(
        cfg.dataset,
        cfg.data_dir,
        download=cfg.download,
        seed=cfg.seed,
        limit_train=cfg.limit_train,
    )
    log(f"[kmtpe] data: {data.summary()}")
    _check_input_shape(model_name, data.num_classes, data.input_shape)
    base = _base_model(cfg, data, out, device, log)
    base_val = base_test = None
    if cfg.final:  # only the process that reports the result needs the base accuracy
        base_val = evaluate(base, data, "val", device=device)
        base_test = evaluate(base, data, "test", device=device)
        log(f"[kmtpe] base model (float): val accuracy {base_val:.4f}, test {base_test:.4f}")

    # --- Cost model, search space (from the study on resume, else from the Hessian), limits.
    with torch.device("meta"):
        meta_model = build_model(model_name, data.num_classes)
    cost = DSPPackingModel(meta_model, data.input_shape)
    study = optuna.load_study(study_name=study_name, storage=storage) if cfg.resume else None
    if study is not None:
        _check_resume(study.user_attrs, cfg, model_name)
        space = MixedPrecisionSpace.from_json(study.user_attrs[_ATTR + "space"])
        log(f"[kmtpe] search space: read from the study ({len(space.layers)} layers)")
    else:
        space = _pruned_space(cfg, base, data, device, progress, log)
    atomic_write(out / "space.json", lambda f: f.write(space.to_json(indent=2)))
    limits = _checked_limits(cfg, cost, space, log)
    limit_dict = {k: v for k, v in asdict(limits).items() if v is not None}
    pareto_metrics = ["size_mb"] + (["latency_ms"] if limits.latency_ms is not None else [])

    # --- Study. -----------------------------------------------------------------------------
    if study is None:
        study = _create_study(
            storage,
            study_name,
            cfg,
            {
                "model": model_name,
                "dataset": cfg.dataset,
                "dataset_label": data.label,
                "num_classes": data.num_classes,
                "objective": cfg.objective,
                "sampler": cfg.sampler,
                "limits": limit_dict,
                "space": space.to_json(),
                "pareto_metrics": pareto_metrics,
            },
        )
    elif study.user_attrs.get(_ATTR + "limits") != limit_dict:
        raise SearchError(
            f"The study to resume was run with the limits {study.user_attrs.get(_ATTR + 'limits')}"
            f", the options give {limit_dict}; its trials' feasibility was judged against the "
            "former. Pass the same limit options, or start a new study (--out / --study-name)."
        )
    n_retry = 0
    if cfg.worker_index == 0:  # the launcher, before it starts any worker of its own
        n_retry = _requeue_interrupted(study, storage, local or cfg.requeue_running)
    slots = max(open_slots(study, cfg.trials), 0)
    study.sampler = make_sampler(
        cfg.sampler, cfg.seed + cfg.worker_index + len(study.trials), cfg.startup
    )
    log(
        f"[kmtpe] study {study_name!r} in {storage_url}: {counted(study)} trials done, "
        f"{slots} to go"
        + (f" ({n_retry} interrupted trial(s) re-queued)" if n_retry else "")
        + f"; sampler {cfg.sampler}, objective {cfg.objective}"
    )
    _note_running_without_heartbeat(study, storage, log)
    candidates = _Candidates(base, model_name, data.num_classes, device, cfg.seed)
    objective = _Objective(cfg, data, space, cost, limits, pareto_metrics, candidates)
    _run_trials(study, objective, cfg, slots, _TrialLog(out, progress, log), log, ready)
    if cfg.final:
        _wait_for_running(study, storage, log)
    table = trials_table(study)
    write_table(table, out / "results.csv")

    # --- Choose, plot, final training. ------------------------------------------------------
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
        baseline_size_mb=cost.baseline().size_mb,
        final_epochs=int(cfg.final_epochs or 0),
        sampler=cfg.sampler,
        objective=cfg.objective,
        storage=storage_url,
        study_name=study_name,
        out=str(out),
    )
    if not cfg.final:
        res.message = (
            f"trials only (--no-final): the study has {counted(study)} of {cfg.trials} trials; "
            "the process that runs without --no-final chooses and trains the final model."
        )
        return res
    chosen = _choose(study)
    res.files = _write_plots(study, table, out, chosen, res, limits.size_mb)
    if chosen is None:
        res.message = (
            f"No configuration met the limits {limit_dict} in {n_complete} completed trials "
            f"({res.n_failed} failed). Relax the limits, run more trials (--resume --trials N), "
            "or pass --train-infeasible to see the accuracy of the ones that broke a limit."
        )
    else:
        _finish(res, chosen, space, data, candidates, cfg, log)
    res.seconds = time.perf_counter() - started
    res.files["result"] = str(out / "result.json")
    atomic_write(out / "result.json", lambda f: json.dump(res.to_dict(), f, indent=2))
    return res


def _check_study_name(storage: Any, storage_url: str, study_name: str, resume: bool) -> None:
    """Refuse to overwrite an existing study, and to resume a missing one."""
    import optuna

    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if study_name in existing and not resume:
        n = existing[study_name].n_trials
        raise SearchError(
            f"Study {study_name!r} already exists in {storage_url} ({n} trials). Pass --resume "
            "to continue it, or choose another --out / --study-name to start afresh."
        )
    if resume and study_name not in existing:
        raise SearchError(
            f"Nothing to resume: no study {study_name!r} in {storage_url}. Run without --resume."
        )


def _run_trials(
    study: Any,
    objective: _Objective,
    cfg: SearchConfig,
    slots: int,
    trial_log: _TrialLog,
    log: Callable[[str], None],
    ready: Callable[[], None] | None,
) -> None:
    """Run trials here and in ``workers - 1`` spawned processes until the study holds
    ``cfg.trials`` counted trials (:mod:`optuna_kmtpe._budget`), then wait for the workers.

    The launcher starts its own trials once every spawned worker is ready (or has died), so
    that all workers share the budget from the first trial on."""
    from optuna_kmtpe._train import DivergenceError

    if slots <= 0:
        return
    workers = [_spawn_worker(cfg, i) for i in range(1, min(cfg.workers, slots))]
    _wait_until_ready(workers)
    _set_threads(cfg.threads or (1 if cfg.workers > 1 else None))
    if ready is not None:
        ready()
    try:
        study.optimize(
            objective,
            n_trials=slots,
            catch=(DivergenceError, Surplus),
            callbacks=[trial_log, StopAtTarget(cfg.trials)],
            show_progress_bar=trial_log.progress and cfg.workers == 1,
            gc_after_trial=False,
        )
    finally:
        for i, (worker, _) in enumerate(workers, start=1):
            worker.join()
            if worker.exitcode != 0:
                log(f"[kmtpe] worker {i} exited with status {worker.exitcode}; see its log")


def _spawn_worker(cfg: SearchConfig, index: int) -> tuple[Any, Any]:
    """A spawned process that joins the study as worker ``index`` (trials only), and the
    event it sets when it is about to start trials."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    worker_cfg = SearchConfig(**asdict(cfg))
    worker_cfg.resume, worker_cfg.final, worker_cfg.progress = True, False, False
    worker_cfg.worker_index, worker_cfg.workers = index, 1
    worker_cfg.threads = cfg.threads or 1
    ready = context.Event()
    process = context.Process(
        target=_worker_main, args=(worker_cfg, ready), name=f"kmtpe-worker-{index}"
    )
    process.start()
    return process, ready


def _wait_until_ready(workers: list[tuple[Any, Any]], timeout_s: float = 600.0) -> None:
    """Wait until every worker is ready to run trials, has died, or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    for process, ready in workers:
        while not ready.wait(0.2) and process.is_alive() and time.monotonic() < deadline:
            pass


def _worker_main(cfg: SearchConfig, ready: Any) -> None:
    """Entry point of a spawned worker: its log lines say which worker wrote them."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    tag = f"[kmtpe w{cfg.worker_index}]"
    run_search(cfg, log=lambda m: _stderr(m.replace("[kmtpe]", tag, 1)), ready=ready.set)


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def _note_running_without_heartbeat(study: Any, storage: Any, log: Callable[[str], None]) -> None:
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if running and not isinstance(storage, optuna.storages.RDBStorage):
        log(
            f"[kmtpe] note: {len(running)} trial(s) RUNNING in a storage without heartbeat "
            "(journal file); they count as in progress. If no process runs them any more "
            "(killed), stop every worker and rerun with --resume --requeue-running."
        )


def _wait_for_running(study: Any, storage: Any, log: Callable[[str], None]) -> None:
    """Before the final steps, wait for trials other machines still run (RDB storages: a
    dead machine's trials are failed by the heartbeat; journal files have none: no wait)."""
    import optuna

    states = (optuna.trial.TrialState.RUNNING,)
    if not isinstance(storage, optuna.storages.RDBStorage):
        return
    said = False
    while running := study.get_trials(deepcopy=False, states=states):
        if not said:
            log(f"[kmtpe] waiting for {len(running)} trial(s) running in other processes")
            said = True
        time.sleep(_POLL_S)
        fail_stale(study)


def _base_model(
    cfg: SearchConfig, data: Any, out: Path, device: Any, log: Callable[[str], None]
) -> Any:
    """The float base model on ``device``: from ``--checkpoint``, ``OUT/base_model.pt`` on
    resume, or trained now (and saved there)."""
    import torch

    from optuna_kmtpe._checkpoint import load_checkpoint
    from optuna_kmtpe._checkpoint import save_checkpoint
    from optuna_kmtpe._models import build_model
    from optuna_kmtpe._train import train

    torch.manual_seed(cfg.seed)
    base = build_model(str(cfg.model), data.num_classes)
    base_path = out / "base_model.pt"
    if cfg.checkpoint is not None:
        load_checkpoint(base, cfg.checkpoint)
        log(f"[kmtpe] base model: loaded {cfg.checkpoint}")
    elif cfg.resume and base_path.is_file():
        load_checkpoint(base, base_path)
        log(f"[kmtpe] base model: loaded {base_path} (resume)")
    else:
        if cfg.resume:
            raise SearchError(
                f"Cannot resume: {base_path} is missing; pass the base model with --checkpoint."
            )
        log(f"[kmtpe] base model: training {cfg.model} for {cfg.base_epochs} epochs on {device}")
        result = train(
            base,
            data,
            epochs=int(cfg.base_epochs or 0),
            max_lr=cfg.final_lr,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=device,
        )
        log(f"[kmtpe] base model: {result.seconds:.1f} s, last epoch loss {result.final_loss:.4f}")
        save_checkpoint(base, base_path, meta=_checkpoint_meta(cfg, data))
    return base.to(device)


def _checkpoint_meta(cfg: SearchConfig, data: Any) -> dict[str, Any]:
    return {"model": cfg.model, "dataset": cfg.dataset, "num_classes": data.num_classes}


def _pruned_space(
    cfg: SearchConfig,
    base: Any,
    data: Any,
    device: Any,
    progress: bool,
    log: Callable[[str], None],
) -> Any:
    """Hessian traces of the base model on ``hessian_batches`` training batches, clustered
    into the pruned :class:`~optuna_kmtpe.MixedPrecisionSpace`."""
    import torch
    import torch.nn.functional as F

    from optuna_kmtpe._models import width_groups
    from optuna_kmtpe._search_space import prune_search_space
    from optuna_kmtpe._sensitivity import hessian_traces
    from optuna_kmtpe._train import batches

    hess_batches = itertools.islice(
        batches(
            data,
            "train",
            cfg.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(cfg.seed),
            device=device,
        ),
        cfg.hessian_batches,
    )
    t0 = time.perf_counter()
    traces = hessian_traces(
        base,
        F.cross_entropy,
        hess_batches,
        max_samples=cfg.hessian_samples,
        rtol=cfg.hessian_rtol,
        min_samples=min(5, cfg.hessian_samples),
        seed=cfg.seed,
        progress=progress,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        space = prune_search_space(
            traces,
            n_clusters=cfg.n_clusters,
            width_layers=list(width_groups(str(cfg.model), data.num_classes)),
        )
    for w in caught:
        log(f"[kmtpe] note: {w.message}")
    log(
        f"[kmtpe] Hessian traces: {len(traces)} layers in {time.perf_counter() - t0:.1f} s; "
        f"space 10^{space.log10_size(pruned=False):.1f} -> 10^{space.log10_size():.1f} "
        "configurations after pruning"
    )
    return space


def _checked_limits(cfg: SearchConfig, cost: Any, space: Any, log: Callable[[str], None]) -> Any:
    """The limits in force (logged), refused if no configuration of ``space`` meets them."""
    limits, limit_note = _limits(cfg, cost)
    if limit_note:
        log(f"[kmtpe] limits: {limit_note}")
    try:
        limits.check_attainable(
            cost,
            [list(space.bits[la]) for la in space.layers],
            [list(space.widths.get(la, (1.0,))) for la in space.layers],
        )
    except ValueError as e:
        raise SearchError(str(e)) from None
    return limits


def _create_study(storage: Any, study_name: str, cfg: SearchConfig, attrs: dict[str, Any]) -> Any:
    """A new study whose user attributes (prefixed ``kmtpe:``) are ``attrs``."""
    import optuna

    from optuna_kmtpe._objective import pareto_directions

    multi = cfg.objective == "pareto"
    directions = pareto_directions(attrs["pareto_metrics"]) if multi else ["maximize"]
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,  # type: ignore[arg-type]
    )
    for key, value in attrs.items():
        study.set_user_attr(_ATTR + key, value)
    return study


@dataclass
class _Candidates:
    """Builds candidates: the width-scaled model initialised from the trained base model
    (:mod:`optuna_kmtpe._inherit`) and fake-quantised (:mod:`optuna_kmtpe._quant`)."""

    base: Any
    model_name: str
    num_classes: int
    device: Any
    seed: int

    @property
    def plan(self) -> Any:
        from optuna_kmtpe._models import width_plan

        return width_plan(self.model_name, self.num_classes)

    def build(self, bits: list[int], widths: list[float]) -> Any:
        from optuna_kmtpe._inherit import inherit_weights
        from optuna_kmtpe._models import build_model
        from optuna_kmtpe._quant import quantize_model

        net = build_model(self.model_name, self.num_classes, widths=widths).to(self.device)
        inherit_weights(self.base, net, self.plan, seed=self.seed)
        return quantize_model(net, bits, inplace=True)


@dataclass
class _Objective:
    """One trial: suggest, cost, and (when feasible or ``train_infeasible``) train and score.

    Every measurement goes into the trial's user attributes (the study is the record).
    """

    cfg: SearchConfig
    data: Any
    space: Any
    cost: Any
    limits: Any
    pareto_metrics: list[str]
    candidates: _Candidates

    def __call__(self, trial: Any) -> float | tuple[float, ...]:
        from optuna_kmtpe._objective import lagrangian
        from optuna_kmtpe._objective import pareto_values
        from optuna_kmtpe._objective import set_constraints
        from optuna_kmtpe._train import DivergenceError
        from optuna_kmtpe._train import evaluate
        from optuna_kmtpe._train import train

        cfg = self.cfg
        claim(trial, cfg.trials)
        conf = self.space.suggest(trial)
        bits, widths = conf.bits_list(), conf.widths_list()
        report = self.cost.evaluate(bits, widths)
        violations = self.limits.violations(report)
        feasible = all(v <= 0 for v in violations.values())
        attrs: dict[str, Any] = {
            "layers": list(self.space.layers),
            "bits": bits,
            "widths": self.candidates.plan.effective_widths(widths).tolist(),
            "size_mb": report.size_mb,
            "speedup": report.speedup,
            "latency_ms": report.latency_ms,
            "energy_mj": report.energy_mj,
            "feasible": feasible,
            "violations": violations,
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if cfg.objective != "lagrangian":
            set_constraints(trial, report, self.limits)
        accuracy = 0.0
        trained = feasible or cfg.train_infeasible
        if trained:
            t0 = time.perf_counter()
            device = self.candidates.device
            net = self.candidates.build(bits, widths)
            try:
                train(
                    net,
                    self.data,
                    epochs=cfg.epochs,
                    max_lr=cfg.lr,
                    batch_size=cfg.batch_size,
                    seed=cfg.seed + trial.number,
                    device=device,
                )
                accuracy = evaluate(net, self.data, "val", device=device)
            except DivergenceError as e:
                trial.set_user_attr(FAIL_REASON, f"diverged: {e}")
                raise
            trial.set_user_attr("train_seconds", time.perf_counter() - t0)
        trial.set_user_attr("trained", trained)
        trial.set_user_attr("accuracy", accuracy)
        if cfg.objective == "pareto":
            return pareto_values(accuracy, report, self.pareto_metrics)
        if cfg.objective == "lagrangian":
            return lagrangian(accuracy, report, self.limits)
        return accuracy


@dataclass
class _TrialLog:
    """Study callback: a line per trial (failures always) and ``results.csv`` rewritten."""

    out: Path
    progress: bool
    log: Callable[[str], None]

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna_kmtpe._report import trials_table
        from optuna_kmtpe._report import write_table

        a = trial.user_attrs
        if a.get(SURPLUS):
            self.log(f"[kmtpe] trial {trial.number}: not run, other workers cover --trials")
        elif trial.state.name == "FAIL":
            self.log(f"[kmtpe] trial {trial.number} FAILED: {a.get(FAIL_REASON, 'error')}")
        elif not self.progress:  # with the progress bar, per-trial lines would break it
            acc = f"{a['accuracy']:.4f}" if a.get("trained") else "not trained"
            self.log(
                f"[kmtpe] trial {trial.number}: acc {acc}, {a.get('size_mb', 0):.4g} MB, "
                f"speedup {a.get('speedup', 0):.2f}x, "
                f"{'feasible' if a.get('feasible') else 'over a limit'}, bits {a.get('bits')}"
            )
        write_table(trials_table(study), self.out / "results.csv")


def _write_plots(
    study: Any, table: Any, out: Path, chosen: Any, res: SearchResult, size_limit: float | None
) -> dict[str, str]:
    """The plots of :func:`optuna_kmtpe._report.write_plots`; returns ``files`` of the result."""
    from optuna_kmtpe._report import write_plots

    files = {"results": str(out / "results.csv"), "space": str(out / "space.json")}
    for p in write_plots(
        study,
        table,
        out,
        chosen=None if chosen is None else chosen.number,
        title=f"{res.model} on {res.dataset_label}, sampler {res.sampler}",
        size_limit_mb=size_limit,
    ):
        files[p.stem] = str(p)
    return files


def _finish(
    res: SearchResult,
    chosen: Any,
    space: Any,
    data: Any,
    candidates: _Candidates,
    cfg: SearchConfig,
    log: Callable[[str], None],
) -> None:
    """Fill ``res`` from the chosen trial, write ``best_config.json``, and train, score and
    save the final model (``final_epochs > 0``)."""
    from optuna_kmtpe._checkpoint import save_checkpoint
    from optuna_kmtpe._train import DivergenceError
    from optuna_kmtpe._train import evaluate
    from optuna_kmtpe._train import train

    a = chosen.user_attrs
    res.bits, res.widths, res.trial, res.feasible = (
        list(a["bits"]),
        list(a["widths"]),
        chosen.number,
        True,
    )
    res.val_accuracy = float(a["accuracy"])
    res.size_mb, res.speedup = float(a["size_mb"]), float(a["speedup"])
    res.latency_ms, res.energy_mj = float(a["latency_ms"]), float(a["energy_mj"])
    out = Path(res.out)
    atomic_write(
        out / "best_config.json",
        lambda f: json.dump(
            {
                "model": res.model,
                "dataset": res.dataset_label,
                "trial": chosen.number,
                "layers": res.layers,
                "bits": res.bits,
                "widths": res.widths,
                "params": chosen.params,
                "val_accuracy": res.val_accuracy,
                "size_mb": res.size_mb,
                "speedup": res.speedup,
                "latency_ms": res.latency_ms,
            },
            f,
            indent=2,
        ),
    )
    res.files["best_config"] = str(out / "best_config.json")
    res.accuracy = res.val_accuracy
    if res.final_epochs <= 0:
        return
    log(f"[kmtpe] final model: trial {chosen.number}, training {res.final_epochs} epochs")
    conf = space.configuration(chosen.params)
    net = candidates.build(conf.bits_list(), conf.widths_list())
    device = candidates.device
    try:
        train(
            net,
            data,
            epochs=res.final_epochs,
            max_lr=cfg.final_lr,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=device,
        )
    except DivergenceError as e:  # the search's results stand; say so instead of crashing
        res.message = (
            f"The final training diverged ({e}); the accuracy is the chosen trial's validation "
            "accuracy. Retry with a lower --final-lr (the study is kept: add --resume)."
        )
        log(f"[kmtpe] {res.message}")
        return
    res.val_accuracy = evaluate(net, data, "val", device=device)
    res.test_accuracy = evaluate(net, data, "test", device=device)
    res.accuracy = res.test_accuracy
    meta = {**_checkpoint_meta(cfg, data), "bits": res.bits, "widths": res.widths}
    save_checkpoint(net, out / "final_model.pt", meta=meta)
    res.files["final_model"] = str(out / "final_model.pt")


def _check_resume(stored: dict[str, Any], cfg: SearchConfig, model_name: str) -> None:
    wanted = {"model": model_name, "dataset": cfg.dataset, "objective": cfg.objective}
    diff = {k: (stored.get(_ATTR + k), v) for k, v in wanted.items() if stored.get(_ATTR + k) != v}
    if diff:
        parts = ", ".join(f"{k}: study has {s!r}, options say {o!r}" for k, (s, o) in diff.items())
        raise SearchError(f"The study to resume was run with other options ({parts}).")
    if _ATTR + "space" not in stored:
        raise SearchError("The study to resume has no stored search space; was it made by kmtpe?")


def _requeue_interrupted(study: Any, storage: Any, fail_running: bool) -> int:
    """Enqueue a re-run of every interrupted trial that has none yet; returns how many.

    ``fail_running`` first marks RUNNING trials as interrupted FAIL: only for the run's own
    local storage before it starts workers, or on request (``--requeue-running``); elsewhere
    other workers may be running them, and Optuna's heartbeat fails the stale ones. A trial
    killed before its first suggestion has nothing to re-run (a fresh trial fills the count).
    Each enqueue re-reads the study first, so a resume that started at the same moment and
    already queued the retry is seen; two resumes re-checking in the same instant can still
    both enqueue one (the budget then keeps the total, one retry runs twice).
    """
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    n = 0
    for t in study.get_trials(deepcopy=False):
        interrupted = t.state == TrialState.FAIL and not _failed_on_purpose(t)
        if t.state == TrialState.RUNNING and fail_running:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            interrupted = True
        if interrupted and t.params and not _has_retry(study, t.number):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            n += 1
    return n


def _failed_on_purpose(trial: Any) -> bool:
    """A FAIL the run itself decided (diverged candidate, surplus trial): not a kill."""
    return FAIL_REASON in trial.user_attrs or SURPLUS in trial.user_attrs


def _has_retry(study: Any, number: int) -> bool:
    """Whether ``study`` (read afresh) holds a retry of trial ``number``: ours or Optuna's
    heartbeat callback's."""
    for t in study.get_trials(deepcopy=False):
        if number in (t.user_attrs.get("retry_of"), t.system_attrs.get("failed_trial")):
            return True
    return False


def _choose(study: Any) -> Any:
    """The feasible COMPLETE trial with the highest accuracy, then the smallest size."""
    best = None
    key: tuple[float, float, int] | None = None
    for t in study.get_trials(deepcopy=False, states=None):
        a = t.user_attrs
        if t.state.name != "COMPLETE" or not a.get("feasible") or not a.get("trained"):
            continue
        k = (-float(a["accuracy"]), float(a["size_mb"]), t.number)
        if key is None or k < key:
            best, key = t, k
    return best
