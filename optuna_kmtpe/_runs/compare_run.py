"""``kmtpe compare``: the search against the baselines an engineer would use instead.

One trained base model, one data split, one set of Hessian traces and one set of limits serve
every method, and every method's configuration gets the same final training:

1. Data, base model (``--checkpoint``, else ``OUT/base_model.pt`` when it exists, else
   trained and saved there) and the
   :class:`~optuna_kmtpe.MixedPrecisionSearch` (traces, pruned space, limits), as in
   ``kmtpe search``. The size limit defaults to the model at ``avg_bits`` bits per weight.
2. Per method and seed ``s``: a configuration.

   * ``uniform`` / ``ilp`` / ``greedy`` / ``learned``:
     :meth:`~optuna_kmtpe.MixedPrecisionSearch.baseline` (chosen once per process, with the
     search's seed 0, and used for every seed).
   * a sampler name (``kmeans-tpe``, ``tpe``, ``random``, ...): an in-memory study of
     ``trials`` trials with sampler seed ``s``, then the choice with the best ``rescore``
     configurations re-trained ``rescore_repeats`` times (``rescore=0``: the single best).

3. The configuration is built (weights inherited from the base model), trained
   ``final_epochs`` epochs with ``final_lr`` and seed ``s``, and scored on validation and test.

Each (method, seed) is written to ``OUT/runs/METHOD-seedS.json`` as soon as it is done and is
skipped when that file exists, so a killed run resumes, and several processes may share one
``OUT`` with different ``--methods``; a resume with other options than those in
``OUT/setting.json`` is refused (:func:`check_resume`), so one summary never mixes two
experiments. The summary (``comparison.json``, ``comparison.md``,
``comparison.png``, ``explored.csv``) is rebuilt from every run file present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
import json
import math
from pathlib import Path
import time
from typing import Any

import optuna
import torch

from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.limits import HardwareLimits
from optuna_kmtpe._compress.loops import pick_device
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._runs import compare_report
from optuna_kmtpe._runs.search_run import resolve_config
from optuna_kmtpe._runs.search_run import SearchConfig
from optuna_kmtpe._runs.threads import set_threads
from optuna_kmtpe._runs.zoo import base_model
from optuna_kmtpe._runs.zoo import config_ebops
from optuna_kmtpe._runs.zoo import COST_MODELS
from optuna_kmtpe._runs.zoo import hessian_batches
from optuna_kmtpe._runs.zoo import SearchError
from optuna_kmtpe._runs.zoo import zoo_limits
from optuna_kmtpe._runs.zoo import ZooEvaluator
from optuna_kmtpe._runs.zoo import ZooTrainer
from optuna_kmtpe._sampler_registry import make_sampler
from optuna_kmtpe._sampler_registry import SEARCH_SAMPLERS
from optuna_kmtpe._search.api import MixedPrecisionSearch
from optuna_kmtpe._search.baselines import BASELINES
from optuna_kmtpe._search.checkpoint import atomic_write
from optuna_kmtpe._search.objective import EPOCHS_TRAINED
from optuna_kmtpe._search.objective import trained_params
from optuna_kmtpe._search.pruning import DEFAULT_PRUNER
from optuna_kmtpe._search.pruning import make_pruner
from optuna_kmtpe._search.pruning import PRUNERS
from optuna_kmtpe._search.selection import candidates
from optuna_kmtpe._search.selection import speed_reference
from optuna_kmtpe._zoo import train as _train
from optuna_kmtpe._zoo.data import load_dataset
from optuna_kmtpe._zoo.data import train_subset
from optuna_kmtpe._zoo.data import training_note
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import input_shape as zoo_input_shape


__all__ = ["METHODS", "CompareConfig", "run_compare"]

METHODS = (*BASELINES, *SEARCH_SAMPLERS)
_logger = get_logger(__name__)


@dataclass
class CompareConfig:
    """Everything ``kmtpe compare`` takes; defaults are the command's.

    ``None`` for ``model``, ``base_epochs`` and ``final_epochs`` picks ``kmtpe search``'s
    value for the dataset, and so does ``None`` for ``trial_subset`` (the searches' trials
    train on a fixed subset of that many training images; 0: all). Without
    ``size_limit_mb`` / ``latency_limit_ms`` / ``min_speedup`` the size limit is the model at
    ``avg_bits`` bits per weight (width 1).
    """

    dataset: str = "digits"
    model: str | None = None
    data_dir: str | None = None
    trial_subset: int | None = None
    checkpoint: str | None = None
    methods: tuple[str, ...] = (
        "uniform", "ilp", "greedy", "learned", "kmeans-tpe", "tpe", "random"
    )  # fmt: skip
    trials: int = 40
    startup: int = 10
    seeds: int = 5
    epochs: int = 2
    base_epochs: int | None = None
    final_epochs: int | None = None
    lr: float = 0.001
    final_lr: float = 0.01
    batch_size: int = 64
    avg_bits: float = 2.5
    size_limit_mb: float | None = None
    latency_limit_ms: float | None = None
    min_speedup: float | None = None
    ebops: float | None = None
    cost_model: str = "memory"
    rescore: int = 5
    rescore_repeats: int = 2
    pruner: str = DEFAULT_PRUNER
    space_rule: str = "baselines"
    warm_start: bool = True
    infeasible: str = "repair"
    choice_rule: str = "speed-band"
    narrow: str = "magnitude"
    out: str = "kmtpe_runs/compare"
    device: str | None = None
    # torch threads, set before anything trains (None: DEFAULT_THREADS)
    threads: int | None = None


def run_compare(
    config: CompareConfig, on_run: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run every missing (method, seed) of ``config`` and return the summary (also written
    to ``OUT/comparison.json``).

    Args:
        config: The options.
        on_run: Called with each new run's record (progress).

    Raises:
        SearchError: Bad options or limits no method can meet.
    """
    cfg = config
    search_cfg = _check(cfg)
    set_threads(cfg.threads)  # before the base model and the traces
    out = Path(cfg.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = pick_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_dir, seed=0)
    _logger.info(f"data: {data.summary()}")
    trial_data = train_subset(data, search_cfg.trial_subset or None, 0)
    n_trial_images, n_train_images = len(trial_data.train[1]), len(data.train[1])
    _logger.info(f"data: {training_note(n_trial_images, n_train_images)}")
    if search_cfg.checkpoint is None and (out / "base_model.pt").is_file():
        search_cfg.checkpoint = str(out / "base_model.pt")  # every process, one base model
    base = base_model(
        str(search_cfg.model),
        data,
        out=out,
        device=device,
        seed=search_cfg.seed,
        epochs=int(search_cfg.base_epochs or 0),
        lr=search_cfg.final_lr,
        batch_size=search_cfg.batch_size,
        meta={"model": search_cfg.model, "dataset": cfg.dataset, "num_classes": data.num_classes},
        checkpoint=search_cfg.checkpoint,
    )
    limits = _limits(cfg, str(search_cfg.model), data.num_classes)
    search = MixedPrecisionSearch(
        base,
        train_fn=ZooTrainer(trial_data, cfg.lr, cfg.batch_size, device),
        eval_fn=ZooEvaluator(data, "val", device),
        input_shape=data.input_shape,
        limits=limits,
        epochs=cfg.epochs,
        hessian_data=hessian_batches(
            data, search_cfg.batch_size, search_cfg.hessian_batches, search_cfg.seed, device
        ),
        device=device,
        seed=0,
        hardware=COST_MODELS[cfg.cost_model],
        space_rule=cfg.space_rule,
        infeasible=cfg.infeasible,
        narrow=cfg.narrow,
    )
    final_train = ZooTrainer(data, cfg.final_lr, cfg.batch_size, device)
    setting = {
        "dataset": cfg.dataset,
        "dataset_label": data.label,
        "trial_train_images": n_trial_images,
        "final_train_images": n_train_images,
        "training": training_note(n_trial_images, n_train_images),
        "model": search_cfg.model,
        "limits": {k: v for k, v in asdict(limits).items() if v is not None},
        "avg_bits": cfg.avg_bits if _size_from_bits(cfg) else None,
        "baseline_size_mb": search.cost_model.baseline().size_mb,
        "base_val_accuracy": _train.evaluate(base, data, "val", device=device),
        "base_test_accuracy": _train.evaluate(base, data, "test", device=device),
        "trials": cfg.trials,
        "startup": cfg.startup,
        "epochs": cfg.epochs,
        "final_epochs": search_cfg.final_epochs,
        "rescore": cfg.rescore,
        "rescore_repeats": cfg.rescore_repeats,
        "pruner": cfg.pruner,
        "cost_model": cfg.cost_model,
        "space_rule": cfg.space_rule,
        "warm_start": cfg.warm_start,
        "infeasible": cfg.infeasible,
        "choice_rule": cfg.choice_rule,
        "narrow": cfg.narrow,
        "space": search.space.to_dict(),
    }
    check_resume(out / "setting.json", setting)
    atomic_write(out / "setting.json", lambda f: json.dump(setting, f, indent=2))
    baselines: dict[str, Any] = {}
    for method in cfg.methods:
        for seed in range(cfg.seeds):
            path = out / "runs" / f"{method}-seed{seed}.json"
            if path.exists():
                continue
            t0 = time.perf_counter()
            if method in BASELINES:
                if method not in baselines:
                    baselines[method] = search.baseline(method)
                record = _baseline_record(baselines[method])
            else:
                record = _search_record(search, cfg, method, seed, out)
            record["ebops"] = config_ebops(search.cost_model, record["bits"], record["widths"])
            net = search.build(record["params"])
            final_train(net, epochs=int(search_cfg.final_epochs or 0), seed=seed)
            record.update(
                method=method,
                seed=seed,
                final_val_accuracy=_train.evaluate(net, data, "val", device=device),
                test_accuracy=_train.evaluate(net, data, "test", device=device),
                final_epochs=int(search_cfg.final_epochs or 0),
                seconds=time.perf_counter() - t0,
            )
            atomic_write(path, lambda f, r=record: json.dump(r, f, indent=2))
            _logger.info(
                f"{method} seed {seed}: test {record['test_accuracy']:.4f}, size "
                f"{record['size_mb']:.5g} MB, {record['search_epochs']} search epochs"
            )
            if on_run is not None:
                on_run(record)
    return compare_report.write_summary(out)


#: Keys of ``setting.json`` added after results were committed, with the value those results
#: used (a setting without the key was made with it).
_LEGACY_SETTING = {"narrow": "first"}
#: Wording only: may change between versions without changing the experiment.
_TEXT_KEYS = frozenset({"dataset_label", "training"})


def check_resume(path: Path, setting: dict[str, Any]) -> None:
    """Refuse to add runs to ``path``'s folder when its earlier runs used other options.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "setting.json"
        >>> check_resume(p, {"narrow": "magnitude"})  # nothing there yet: fine
        >>> _ = p.write_text('{"trials": 30}')  # made before --narrow existed
        >>> check_resume(p, {"trials": 30, "narrow": "magnitude"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        optuna_kmtpe._runs.zoo.SearchError: ... (narrow: 'first' there, 'magnitude' now). ...

    Raises:
        SearchError: A key of both settings differs (named with both values).
    """
    if not path.is_file():
        return
    before = {**_LEGACY_SETTING, **json.loads(path.read_text())}
    differ = [
        f"{k}: {before[k]!r} there, {v!r} now"
        for k, v in setting.items()
        if k in before and k not in _TEXT_KEYS and _plain(before[k]) != _plain(v)
    ]
    if differ:
        raise SearchError(
            f"{path.parent} holds runs made with other options ({'; '.join(differ)}). "
            "Resume with the same options, or pass another --out for the new setting; "
            "nothing was written."
        )


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists)."""
    return json.loads(json.dumps(value))


def _check(config: CompareConfig) -> SearchConfig:
    """Validate ``config``; the resolved ``kmtpe search`` options of its base model and
    searches."""
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown or not config.methods:
        raise SearchError(
            f"Unknown methods {unknown}; choose from {', '.join(METHODS)} (comma-separated)."
        )
    if config.pruner not in PRUNERS:
        raise SearchError(f"Unknown pruner {config.pruner!r}; choose from {PRUNERS}.")
    for name in ("trials", "seeds"):
        if getattr(config, name) < 1:
            raise SearchError(f"`{name}` must be >= 1, got {getattr(config, name)}.")
    if config.rescore < 0 or config.rescore_repeats < 1:
        raise SearchError("`rescore` must be >= 0 and `rescore_repeats` >= 1.")
    if config.threads is not None and config.threads < 1:
        raise SearchError(f"`threads` must be a positive integer, got {config.threads!r}.")
    if config.cost_model not in COST_MODELS:
        raise SearchError(
            f"Unknown cost model {config.cost_model!r}; choose from memory, compute."
        )
    if not (math.isfinite(config.avg_bits) and 2 <= config.avg_bits <= 16):
        raise SearchError(f"`avg-bits` must be in [2, 16], got {config.avg_bits!r}.")
    search_cfg = resolve_config(
        SearchConfig(
            dataset=config.dataset,
            model=config.model,
            data_dir=config.data_dir,
            trial_subset=config.trial_subset,
            checkpoint=config.checkpoint,
            base_epochs=config.base_epochs,
            epochs=config.epochs,
            final_epochs=config.final_epochs,
            lr=config.lr,
            final_lr=config.final_lr,
            batch_size=config.batch_size,
            trials=config.trials,
            startup=config.startup,
            size_limit_mb=config.size_limit_mb,
            latency_limit_ms=config.latency_limit_ms,
            min_speedup=config.min_speedup,
            ebops=config.ebops,
            out=config.out,
            device=config.device,
            cost_model=config.cost_model,
        )
    )
    return search_cfg


def _size_from_bits(cfg: CompareConfig) -> bool:
    return (
        cfg.size_limit_mb is None
        and cfg.latency_limit_ms is None
        and cfg.min_speedup is None
        and cfg.ebops is None
    )


def _limits(cfg: CompareConfig, model: str, num_classes: int) -> HardwareLimits:
    with torch.device("meta"):
        meta = build_model(model, num_classes)
    cost = DSPPackingModel(meta, zoo_input_shape(model), **COST_MODELS[cfg.cost_model])
    return zoo_limits(
        cost,
        size_mb=cfg.size_limit_mb,
        latency_ms=cfg.latency_limit_ms,
        min_speedup=cfg.min_speedup,
        default_size=lambda: (
            cost.baseline().size_mb * cfg.avg_bits / 16.0,
            f"--avg-bits {cfg.avg_bits:g}: that many bits per weight at width 1",
        ),
        ebops=cfg.ebops,
    )


def _baseline_record(result: Any) -> dict[str, Any]:
    r = result.to_dict()
    return {
        "bits": list(r["bits"].values()),
        "widths": list(r["widths"].values()),
        "params": r["params"],
        "size_mb": r["size_mb"],
        "speedup": r["speedup"],
        "latency_ms": r["latency_ms"],
        "val_accuracy": r["val_accuracy"],
        "omega": r["omega"],
        "search_epochs": r["epochs_spent"],
        "epochs_to_chosen": r["epochs_spent"],
        "search_seconds": r["seconds"],
        "candidates": r["candidates"],
        "learned": r["learned"],
        "trial": None,
        "explored": [],
    }


def _search_record(
    search: MixedPrecisionSearch, cfg: CompareConfig, method: str, seed: int, out: Path
) -> dict[str, Any]:
    t0 = time.perf_counter()
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(method, seed, cfg.startup),
        pruner=make_pruner(cfg.pruner, cfg.epochs),
    )
    search.optimize(study, n_trials=cfg.trials, warm_start=cfg.warm_start)
    best = search.best(
        study,
        rescore=cfg.rescore,
        rescore_repeats=cfg.rescore_repeats,
        choice_rule=cfg.choice_rule,
    )
    seconds = time.perf_counter() - t0
    pool = candidates(study)
    rescored = min(cfg.rescore, len(pool))
    if cfg.rescore and cfg.choice_rule == "speed-band":  # + the speed reference
        top = {t.number for t in pool[: cfg.rescore]}
        rescored += sum(t.number not in top for t in speed_reference(pool))
    epochs = [int(t.user_attrs.get(EPOCHS_TRAINED, 0)) for t in study.trials]
    rescore_epochs = rescored * cfg.rescore_repeats * cfg.epochs
    return {
        "bits": list(best.bits.values()),
        "widths": list(best.widths.values()),
        "params": best.params,
        "size_mb": best.size_mb,
        "speedup": best.speedup,
        "latency_ms": best.latency_ms,
        "val_accuracy": best.accuracy,
        "rescored_val_accuracy": best.rescored_accuracy,
        "rescoring": best.rescoring,
        "search_epochs": sum(epochs) + rescore_epochs,
        "epochs_to_chosen": sum(epochs[: best.trial + 1]),
        "search_seconds": seconds,
        "trial": best.trial,
        "n_pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "n_trials": len(study.trials),
        "n_trained_feasible": sum(
            bool(a.get("feasible")) and int(a.get(EPOCHS_TRAINED, 0)) > 0
            for a in (t.user_attrs for t in study.trials)
        ),
        "n_repaired": sum("proposed" in t.user_attrs for t in study.trials),
        "n_warm_start": sum("warm_start" in t.user_attrs for t in study.trials),
        "n_reused": sum("reused_from_trial" in t.user_attrs for t in study.trials),
        "tie_band": best.tie_band,
        "n_distinct": len({json.dumps(trained_params(t), sort_keys=True) for t in study.trials}),
        "explored": [
            [t.user_attrs["size_mb"], t.user_attrs["accuracy"]]
            for t in study.trials
            if t.state.name == "COMPLETE"
            and t.user_attrs.get("feasible")
            and t.user_attrs.get("trained")
        ],
    }
