"""The public API of the search: Algorithm 1 on any PyTorch model and data loaders."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import itertools
import json
import math
from typing import Any
from typing import TYPE_CHECKING

import optuna
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.allocate import Allocation
from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.inherit import NARROW_RULES
from optuna_kmtpe._compress.layers import quantisable_layers
from optuna_kmtpe._compress.limits import HardwareLimits
from optuna_kmtpe._compress.limits import METRIC_DIRECTIONS
from optuna_kmtpe._compress.limits import OBJECTIVES
from optuna_kmtpe._compress.limits import pareto_directions
from optuna_kmtpe._compress.loops import accuracy
from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._compress.loops import evaluate_on_batches
from optuna_kmtpe._compress.loops import LossFn
from optuna_kmtpe._compress.loops import MetricFn
from optuna_kmtpe._compress.loops import OptimizerFactory
from optuna_kmtpe._compress.loops import pick_device
from optuna_kmtpe._compress.loops import train_on_batches
from optuna_kmtpe._compress.search_space import Configuration
from optuna_kmtpe._compress.search_space import DEFAULT_BITS
from optuna_kmtpe._compress.search_space import DEFAULT_WIDTHS
from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
from optuna_kmtpe._compress.search_space import SPACE_RULES
from optuna_kmtpe._compress.sensitivity import TraceEstimate
from optuna_kmtpe._compress.shapes import one_input_shape
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._search.allocations import layer_omega
from optuna_kmtpe._search.allocations import reference_allocations
from optuna_kmtpe._search.allocations import undominated
from optuna_kmtpe._search.baselines import BaselineResult
from optuna_kmtpe._search.baselines import run_baseline
from optuna_kmtpe._search.choice_rule import CHOICE_RULES
from optuna_kmtpe._search.choice_rule import pick
from optuna_kmtpe._search.choice_rule import Scored
from optuna_kmtpe._search.choice_rule import tie_band as tie_band_of
from optuna_kmtpe._search.choices import apply_choices
from optuna_kmtpe._search.choices import LayerChoice
from optuna_kmtpe._search.choices import LayerChoiceLike
from optuna_kmtpe._search.choices import resolve_choices
from optuna_kmtpe._search.objective import CandidateBuilder
from optuna_kmtpe._search.objective import EvalFn
from optuna_kmtpe._search.objective import FLOAT_COST_BITS
from optuna_kmtpe._search.objective import trained_params
from optuna_kmtpe._search.objective import TrainFn
from optuna_kmtpe._search.objective import TrialObjective
from optuna_kmtpe._search.repair import INFEASIBLE_MODES
from optuna_kmtpe._search.selection import candidates
from optuna_kmtpe._search.selection import rescore_top
from optuna_kmtpe._search.selection import rescoring_record
from optuna_kmtpe._search.selection import speed_reference
from optuna_kmtpe._search.space import estimate_space
from optuna_kmtpe._search.space import widen_space


if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


__all__ = ["BestConfiguration", "MixedPrecisionSearch", "OBJECTIVES"]

_ATTR = "kmtpe:"
_logger = get_logger(__name__)


@dataclass(frozen=True)
class BestConfiguration:
    """The chosen configuration of a study (:meth:`MixedPrecisionSearch.best`).

    Attributes:
        trial: Number of the trial it comes from.
        bits: Layer name -> bit-width (``None``: kept in float), every quantisable layer.
        widths: Layer name -> the width multiplier in force (after width-group ties).
        accuracy: The validation score of the trial (``metric_fn``; top-1 accuracy by
            default) after ``epochs`` epochs of quantisation-aware training.
        size_mb: Weight size in MB (10^6 bytes) on the cost model.
        speedup: Speedup over the FiP16 model on the cost model.
        latency_ms: Latency on the cost model.
        energy_mj: Energy per input on the cost model.
        params: The parameters of the configuration (``study.enqueue_trial`` takes them):
            the trial's, or its repaired configuration's when its proposal broke a limit.
        rescored_accuracy: With ``best(study, rescore=k)``: the mean of the trial's score
            and its re-scores (fresh training seeds); else None.
        rescoring: With ``rescore=k``: every re-scored configuration, best mean first
            (:func:`~optuna_kmtpe._search.selection.rescoring_record`); else empty.
        tie_band: The score band within which rule ``"speed-band"`` took the fastest
            configuration (0 with rule ``"score"``).
    """

    trial: int
    bits: dict[str, int | None]
    widths: dict[str, float]
    accuracy: float
    size_mb: float
    speedup: float
    latency_ms: float
    energy_mj: float
    params: dict[str, Any] = field(default_factory=dict)
    rescored_accuracy: float | None = None
    rescoring: list[dict[str, Any]] = field(default_factory=list)
    tie_band: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class _LoaderTrainer:
    """``train_fn`` from a training loader (see :mod:`optuna_kmtpe._compress.loops`), with
    the per-epoch hook."""

    loader: Iterable[Any]
    lr: float
    loss_fn: LossFn
    optimizer: OptimizerFactory | None

    def __call__(
        self,
        model: nn.Module,
        *,
        epochs: int,
        seed: int,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> None:
        train_on_batches(
            model,
            self.loader,
            epochs=epochs,
            lr=self.lr,
            loss_fn=self.loss_fn,
            optimizer=self.optimizer,
            seed=seed,
            on_epoch=on_epoch,
        )


@dataclass
class _LoaderEvaluator:
    """``eval_fn`` from a validation loader."""

    loader: Iterable[Any]
    metric_fn: MetricFn

    def __call__(self, model: nn.Module) -> float:
        return evaluate_on_batches(model, self.loader, metric_fn=self.metric_fn)


class MixedPrecisionSearch:
    """Search per-layer bit-widths and widths of a trained model under hardware limits.

    Algorithm 1 of the paper on any ``torch.nn.Module``: estimate the Hessian trace of every
    quantisable layer (``Conv1d``, ``Conv2d`` incl. grouped and depthwise, ``Linear``) on a
    few training batches, prune each layer's bit-widths by clustering the traces (keeping,
    by default, the bits of the feasible uniform, ILP and greedy configurations), then let
    an Optuna study pick bits (and width multipliers) per layer, starting from those
    configurations. Each trial is costed on the
    :class:`~optuna_kmtpe.DSPPackingModel`; a configuration within the limits is built
    (width-scaled copy of the model with its trained weights inherited, fake-quantised),
    trained ``epochs`` epochs and scored on the validation data. A configuration equal to
    one an earlier COMPLETE trial already scored is not trained again (see ``optimize``).

    The constructor does all the preparation (the Hessian traces take seconds on small
    models), so every check, the limits included, fails there and not in a trial. The
    caller owns the study (storage, name, sampler, resume, workers): :meth:`optimize`
    runs trials in it, :meth:`best` reads the chosen configuration from it, and
    :meth:`build` returns that configuration as a model.

    Example:
        .. testcode::

            import optuna
            import torch
            from torch import nn

            from optuna_kmtpe import HardwareLimits
            from optuna_kmtpe import KMeansTPESampler
            from optuna_kmtpe import MixedPrecisionSearch

            x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
            data = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(x, y), batch_size=16
            )
            model = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 3)
            )
            search = MixedPrecisionSearch(
                model,
                train_loader=data,
                val_loader=data,
                input_shape=(1, 8, 8),
                limits=HardwareLimits(size_mb=0.01),
                epochs=1,
                hessian_samples=5,
            )
            study = optuna.create_study(direction="maximize", sampler=KMeansTPESampler(seed=0))
            search.optimize(study, n_trials=3)
            best = search.best(study)
            qmodel = search.build(best)
            assert qmodel(x[:2]).shape == (2, 3)

    Args:
        model: The trained float model (the search never modifies it; with ``device`` it
            is moved there).
        train_loader: Training batches ``(inputs, targets)``, iterated once per epoch (a
            ``DataLoader``). Required unless ``train_fn`` is given.
        val_loader: Validation batches that score each candidate. Required unless
            ``eval_fn`` is given.
        input_shape: Shape of one input, e.g. ``(1, 8, 8)``; a leading batch dimension of 1,
            ``(1, 1, 8, 8)``, is accepted too (:mod:`optuna_kmtpe._compress.shapes`: the
            convention of the whole API). The cost model prices one sample.
        limits: The :class:`~optuna_kmtpe.HardwareLimits` (``None``: accuracy alone).
        epochs: Quantisation-aware training epochs per candidate.
        lr: Peak learning rate of the default recipe (Adam, weight decay 1e-4, OneCycle).
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor`` for training and the
            Hessian traces (default: cross-entropy).
        metric_fn: ``metric_fn(outputs, targets) -> float``, a batch's mean score, higher
            is better (default: top-1 accuracy); averaged over ``val_loader``.
        optimizer: ``optimizer(parameters) -> torch.optim.Optimizer`` instead of the default
            recipe (then no schedule is used).
        layer_choices: Layer name -> choice: ``"float"`` (keep in float), an int (fixed
            bits, e.g. ``8`` for the first and last layer), a list of ints (candidate bits),
            or a :class:`~optuna_kmtpe.LayerChoice` (also candidate widths).
        search_widths: Also search width multipliers (needs a ``torch.fx``-traceable model;
            ``False`` searches bits only, e.g. for data-dependent control flow).
        bit_choices: The bit-widths ``B`` before pruning.
        width_choices: The width multipliers ``S`` of each width group's leading layer.
        n_clusters: k of the clustering of the Hessian traces.
        space_rule: How the traces prune each layer's bits. ``"baselines"`` (default): the
            cluster's subset plus the bit-widths (and width multipliers) of every feasible
            uniform configuration and of the ILP and greedy allocations, so what a user
            would try by hand is in the space; ``"paper"``: the paper's cluster subsets
            alone (``{8,6}, {6,4,3}, {4,3,2}, {3,2}`` for k = 4). Recorded in
            ``space.rule``; ignored with ``space``.
        space: A ready :class:`~optuna_kmtpe.MixedPrecisionSpace` (e.g. read back from a
            study); skips the Hessian traces. Its layers must be the quantised layers.
        hessian_batches: Training batches the traces are estimated on.
        hessian_samples: Most Hutchinson samples per layer.
        hessian_rtol: Relative standard error at which a layer's trace estimate stops.
        hessian_data: Batches for the traces instead of the first ``hessian_batches`` of
            ``train_loader``.
        objective: ``"lagrangian"`` (one scalar, any sampler; default), ``"constraints"``
            (accuracy, limits as Optuna constraints) or ``"pareto"`` (accuracy against cost
            metrics; a multi-objective study).
        pareto_metrics: Cost metrics of the Pareto objective (default: size, plus latency
            when it is limited).
        train_infeasible: Also train configurations that break a limit, as proposed
            (overrides ``infeasible``).
        infeasible: What a trial does with a proposal that breaks a limit: ``"repair"``
            (default) lowers it to the nearest feasible configuration of the space by the
            greedy allocation's rule and trains that, recording both
            (:mod:`optuna_kmtpe._search.repair`); ``"penalty"`` scores it with the
            Lagrangian penalty without training (the former behaviour).
        reuse_repeats: Reuse the result of an earlier trial with the same bits and widths
            instead of training again.
        narrow: The trained channels a narrowed layer (width < 1) keeps: those of largest
            L1 weight norm (``"magnitude"``, default, as filter pruning) or its first ones
            (``"first"``, the earlier rule); measured in docs/results.md.
        device: Where to train (default: where the model is).
        seed: Seeds the traces, the weight inheritance and each trial's training
            (``seed + trial.number``).
        train_fn: ``train_fn(model, epochs=..., seed=...)`` replaces the training loop;
            with an ``on_epoch`` parameter its trials can be pruned
            (:data:`~optuna_kmtpe._search.objective.TrainFn`).
        eval_fn: ``eval_fn(model) -> float`` replaces the validation loop.
        progress: Show a progress bar while the traces are estimated.
        hardware: Keyword arguments of :class:`~optuna_kmtpe.DSPPackingModel` (array
            ``rows`` / ``cols``, ``clock_mhz``, ``dram_gbps``, energy constants). The default
            is the memory-bound model (19.2 GB/s DRAM, 32 x 32 array); ``{"dram_gbps": None}``
            is the compute-bound reading that the paper's speedups follow.

    Raises:
        ValueError: The model has no quantisable layer (or one that cannot be costed),
            ``input_shape`` does not fit the model, a layer choice names an unknown layer,
            the limits cannot be met by any configuration, or another argument is invalid.
            Each message says what to change.
        TypeError: ``model`` is not a ``torch.nn.Module``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        train_loader: Iterable[Any] | None = None,
        val_loader: Iterable[Any] | None = None,
        input_shape: Sequence[int],
        limits: HardwareLimits | None = None,
        epochs: int = 1,
        lr: float = 1e-3,
        loss_fn: LossFn | None = None,
        metric_fn: MetricFn | None = None,
        optimizer: OptimizerFactory | None = None,
        layer_choices: Mapping[str, LayerChoiceLike] | None = None,
        search_widths: bool = True,
        bit_choices: Sequence[int] = DEFAULT_BITS,
        width_choices: Sequence[float] = DEFAULT_WIDTHS,
        n_clusters: int = 4,
        space_rule: str = "baselines",
        space: MixedPrecisionSpace | None = None,
        hessian_batches: int = 2,
        hessian_samples: int = 50,
        hessian_rtol: float = 0.1,
        hessian_data: Iterable[Any] | None = None,
        objective: str = "lagrangian",
        pareto_metrics: Sequence[str] | None = None,
        train_infeasible: bool = False,
        infeasible: str = "repair",
        reuse_repeats: bool = True,
        narrow: str = "magnitude",
        device: str | torch.device | None = None,
        seed: int = 0,
        train_fn: TrainFn | None = None,
        eval_fn: EvalFn | None = None,
        progress: bool = False,
        hardware: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        if train_fn is None and train_loader is None:
            raise ValueError(
                "`train_loader` is required (batches of (inputs, targets) to train each "
                "candidate on), unless you pass your own `train_fn`."
            )
        if eval_fn is None and val_loader is None:
            raise ValueError(
                "`val_loader` is required (batches of (inputs, targets) that score each "
                "candidate), unless you pass your own `eval_fn`."
            )
        _check_int("epochs", epochs, 0)
        for name, value in (
            ("n_clusters", n_clusters),
            ("hessian_batches", hessian_batches),
            ("hessian_samples", hessian_samples),
        ):
            _check_int(name, value, 1)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"`lr` must be a finite number > 0, got {lr!r}.")
        if objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}.")
        if space_rule not in SPACE_RULES[:2]:
            raise ValueError(f"`space_rule` must be one of {SPACE_RULES[:2]}, got {space_rule!r}.")
        if infeasible not in INFEASIBLE_MODES:
            raise ValueError(
                f"`infeasible` must be one of {INFEASIBLE_MODES}, got {infeasible!r}."
            )
        if narrow not in NARROW_RULES:
            raise ValueError(f"`narrow` must be one of {NARROW_RULES}, got {narrow!r}.")
        if limits is not None and not isinstance(limits, HardwareLimits):
            raise TypeError(
                f"`limits` must be a HardwareLimits (or None), got {type(limits).__name__}."
            )
        self._limits = limits or HardwareLimits()
        if pareto_metrics is None:
            pareto_metrics = ["size_mb"] + (
                ["latency_ms"] if self._limits.latency_ms is not None else []
            )
        unknown = [m for m in pareto_metrics if m not in METRIC_DIRECTIONS]
        if unknown or not pareto_metrics:
            raise ValueError(
                f"`pareto_metrics` {list(pareto_metrics)} must be a non-empty choice of "
                f"{list(METRIC_DIRECTIONS)}."
            )

        self._device = pick_device(device) if device is not None else _device_of(model)
        if device is not None:
            model.to(self._device)
        self._model = model
        self._layers = tuple(quantisable_layers(model))  # raises, naming a bad layer
        self._input_shape = one_input_shape(model, input_shape, self._device)
        self._choices: dict[str, LayerChoice] = resolve_choices(layer_choices, self._layers)
        self._float = tuple(n for n in self._layers if self._choices.get(n, _FREE).keep_float)
        self._searched = tuple(n for n in self._layers if n not in self._float)
        try:
            self._cost = DSPPackingModel(model, self._input_shape, **dict(hardware or {}))
        except TypeError as e:
            raise ValueError(
                f"`hardware` takes DSPPackingModel's keyword arguments ({_HARDWARE_ARGS}), but"
                f" got {sorted(hardware or {})}: {e}."
            ) from None
        plan = self._cost.plan
        if search_widths and plan is None:
            raise ValueError(
                "Width multipliers need a torch.fx-traceable model with supported channel flow,"
                f" and this one is not ({self._cost._no_plan_reason}). Pass "
                "search_widths=False to search bits only."
            )
        self._plan = plan if search_widths else None
        leaders = list(plan.width_groups()) if (plan is not None and search_widths) else []
        self._width_leaders = tuple(n for n in leaders if n not in self._float)
        if not search_widths:
            wanted = [n for n, c in self._choices.items() if c.widths is not None]
            if wanted:
                raise ValueError(
                    f"`layer_choices` gives widths for {wanted} but search_widths=False; drop "
                    "them or search widths."
                )
        self._bit_choices = tuple(bit_choices)
        self._width_choices = tuple(width_choices)
        self._n_clusters = int(n_clusters)
        self._hessian = (int(hessian_batches), int(hessian_samples), float(hessian_rtol))
        self._hessian_data = hessian_data
        self._loss_fn: LossFn = loss_fn or F.cross_entropy
        self._train_fn: TrainFn = train_fn or _LoaderTrainer(
            train_loader or [], float(lr), self._loss_fn, optimizer
        )
        self._eval_fn: EvalFn = eval_fn or _LoaderEvaluator(
            val_loader or [], metric_fn or accuracy
        )
        self._train_loader = train_loader
        self._epochs = int(epochs)
        self._objective = objective
        self._pareto_metrics = tuple(pareto_metrics)
        self._train_infeasible = bool(train_infeasible)
        self._infeasible = infeasible
        self._space_rule = space_rule
        self._reuse = bool(reuse_repeats)
        self._seed = int(seed)
        self._progress = bool(progress)
        self._traces: dict[str, TraceEstimate] = {}
        self._allocations: dict[str, list[Allocation]] | None = None
        self._builder = CandidateBuilder(model, self._layers, self._plan, self._seed, narrow)
        if space is not None:
            if tuple(space.layers) != self._searched:
                raise ValueError(
                    f"`space` covers the layers {list(space.layers)}, but the layers to "
                    f"quantise are {list(self._searched)}; build the space for this model and "
                    "these layer choices (or leave `space` out)."
                )
        else:
            space = self._pruned_space()  # the Hessian traces: seconds for small models
        self._check_attainable(space)
        self._space = space
        # HAWQ sensitivities of every bit-width of the space: the repair's step rule (a few
        # weight quantisations per layer; a space without traces weighs perturbations alone)
        self._omega = layer_omega(model, space.normalized_traces, space.bits)

    # --- Properties ------------------------------------------------------------------------

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the model's quantisable layers, in model order."""
        return self._layers

    @property
    def cost_model(self) -> DSPPackingModel:
        """The :class:`~optuna_kmtpe.DSPPackingModel` of the model (one row per layer)."""
        return self._cost

    @property
    def limits(self) -> HardwareLimits:
        """The limits in force."""
        return self._limits

    @property
    def traces(self) -> dict[str, TraceEstimate]:
        """The Hessian trace of every quantisable layer (empty when ``space`` was given)."""
        return dict(self._traces)

    @property
    def space(self) -> MixedPrecisionSpace:
        """The search space: ``space``, or pruned from the Hessian traces of the model."""
        return self._space

    @property
    def layer_choices(self) -> dict[str, LayerChoice]:
        """The validated ``layer_choices``, layer name -> :class:`~optuna_kmtpe.LayerChoice`."""
        return dict(self._choices)

    @property
    def bit_choices(self) -> tuple[int, ...]:
        """The bit-widths ``B`` before pruning."""
        return self._bit_choices

    # --- Running ---------------------------------------------------------------------------

    def objective(self, *, budget: int | None = None) -> TrialObjective:
        """The prepared ``study.optimize`` objective (picklable; for your own workers).

        Args:
            budget: Total trials shared by every process of the study: a trial past it is
                marked ``surplus`` and fails without running (``kmtpe search --workers``).
        """
        return TrialObjective(
            space=self.space,
            cost=self._cost,
            limits=self._limits,
            builder=self._builder,
            train_fn=self._train_fn,
            eval_fn=self._eval_fn,
            epochs=self._epochs,
            seed=self._seed,
            objective=self._objective,
            pareto_metrics=self._pareto_metrics,
            train_infeasible=self._train_infeasible,
            budget=budget,
            reuse=self._reuse,
            infeasible=self._infeasible,
            omega=self._omega,
        )

    def prepare_study(self, study: optuna.Study) -> None:
        """Check that ``study`` fits this search and record the space and limits in it.

        Raises:
            ValueError: Wrong directions for the objective, or the study was run with
                another search space or other limits.
        """
        wanted = (
            pareto_directions(list(self._pareto_metrics))
            if self._objective == "pareto"
            else ["maximize"]
        )
        got = [d.name.lower() for d in study.directions]
        if got != wanted:
            raise ValueError(
                f"The {self._objective!r} objective needs a study with directions {wanted}, "
                f"got {got}; create it with optuna.create_study(directions={wanted})."
            )
        attrs = study.user_attrs
        space = self.space
        stored = attrs.get(_ATTR + "space")
        if stored is None:
            study.set_user_attr(_ATTR + "space", space.to_json())
        elif MixedPrecisionSpace.from_json(stored) != space:
            raise ValueError(
                "The study was run with another search space; pass "
                "space=MixedPrecisionSpace.from_json(study.user_attrs['kmtpe:space']) to "
                "continue it, or use a new study."
            )
        limits = {k: v for k, v in asdict(self._limits).items() if v is not None}
        if _ATTR + "limits" not in attrs:
            study.set_user_attr(_ATTR + "limits", limits)
        elif attrs[_ATTR + "limits"] != limits:
            raise ValueError(
                f"The study was run with the limits {attrs[_ATTR + 'limits']}, this search "
                f"has {limits}; use the same limits or a new study."
            )

    def optimize(
        self,
        study: optuna.Study,
        n_trials: int | None = None,
        *,
        timeout: float | None = None,
        callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] | None = None,
        catch: Iterable[type[Exception]] | type[Exception] = (),
        show_progress_bar: bool = False,
        budget: int | None = None,
        warm_start: bool = True,
    ) -> None:
        """Run ``n_trials`` trials (or until ``timeout``) in ``study``.

        With ``warm_start`` (default) the baseline configurations (:meth:`warm_start_params`:
        the feasible uniform candidates, the ILP's and the greedy's allocation) are enqueued
        first, so they are the study's first trials and its choice can only match or beat
        them on the proxy; they count as trials of ``n_trials`` (at most ``n_trials`` are
        enqueued). A configuration already in
        the study is not enqueued again (a resumed study), and one an earlier trial trained
        is not trained again (``reuse_repeats``). Samplers count them like any finished
        trial: they are among the ``n_startup_trials`` of Optuna's TPE and k-means TPE.

        A diverged candidate becomes a FAILED trial (user attribute ``fail_reason``) and the
        study goes on. A trial whose bits and widths equal those of an earlier COMPLETE
        trial is not trained: it copies that trial's values and measurements and records
        ``reused_from_trial`` (it still counts as one of ``n_trials``). The study's pruner
        may prune a trial after any epoch but its last (Optuna's default ``MedianPruner``
        included; pass ``NopPruner`` to train every candidate in full); a pruned trial
        counts as one of ``n_trials`` too.

        Args:
            study: A study whose directions fit ``objective`` (``"maximize"``, or
                ``pareto_directions`` for ``"pareto"``). The space and the limits are
                recorded in its user attributes.
            n_trials: Trials to run in this call (Optuna's meaning).
            timeout: Seconds after which no new trial starts.
            callbacks: Optuna study callbacks.
            catch: More exception types that fail a trial without stopping the study.
            show_progress_bar: Optuna's progress bar.
            budget: Total trials shared by all processes of the study (see
                :meth:`objective`).
            warm_start: Enqueue the baseline configurations first.
        """
        self.prepare_study(study)
        if warm_start:
            self.enqueue_warm_start(study, limit=n_trials)
        extra = (catch,) if isinstance(catch, type) else tuple(catch)
        study.optimize(
            self.objective(budget=budget),
            n_trials=n_trials,
            timeout=timeout,
            catch=(DivergenceError, *extra),
            callbacks=list(callbacks or []),
            show_progress_bar=show_progress_bar,
            gc_after_trial=False,
        )

    def warm_start_params(self) -> list[tuple[str, dict[str, Any]]]:
        """The baseline configurations of the warm start, as ``(method, trial params)``: the
        undominated feasible uniform ones (most bits first; the ``uniform`` baseline's
        candidates), then the ILP's and the greedy's allocation; a repeat, or one that is
        not in the space (possible with ``space_rule="paper"`` or ``space=``), left out.
        """
        space = self._space
        found = self._reference(space)
        out: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for method, allocs in (
            ("uniform", undominated(found.get("uniform", []), list(space.widths))),
            ("ilp", found.get("ilp", [])),
            ("greedy", found.get("greedy", [])),
        ):
            for a in allocs:
                inside = all(a.bits[n] in space.bits[n] for n in space.layers) and all(
                    a.widths[n] in w for n, w in space.widths.items()
                )
                if not inside:
                    _logger.info(f"warm start: the {method} configuration is not in the space")
                    continue
                conf = Configuration({n: a.bits[n] for n in space.layers}, dict(a.widths))
                params = space.params(conf)
                key = json.dumps(params, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    out.append((method, params))
        return out

    def enqueue_warm_start(self, study: optuna.Study, limit: int | None = None) -> int:
        """Enqueue :meth:`warm_start_params` in ``study`` (``skip_if_exists``; user
        attribute ``warm_start``: the method), at most ``limit`` new ones (the trials left
        in the budget), and return how many were new."""
        added = 0
        for method, params in self.warm_start_params():
            if limit is not None and added >= limit:
                break
            before = len(study.get_trials(deepcopy=False))
            study.enqueue_trial(params, user_attrs={"warm_start": method}, skip_if_exists=True)
            added += len(study.get_trials(deepcopy=False)) - before
        if added:
            _logger.info(f"warm start: {added} baseline configuration(s) enqueued")
        return added

    def best(
        self,
        study: optuna.Study,
        *,
        rescore: int = 0,
        rescore_repeats: int = 2,
        choice_rule: str = "speed-band",
        tie_band: float | None = None,
    ) -> BestConfiguration:
        """The chosen configuration among the feasible, trained COMPLETE trials.

        Rule ``"speed-band"`` (default): among the configurations whose (mean) score is
        within ``tie_band`` of the best, the one with the highest speedup, then the smallest
        size (:mod:`optuna_kmtpe._search.choice_rule`); rule ``"score"``: the highest score,
        then the smallest size, then the lowest trial number.

        Args:
            study: The study :meth:`optimize` ran.
            rescore: Re-train the ``rescore`` best distinct configurations
                ``rescore_repeats`` more times with fresh seeds (each like a trial) and
                choose by the mean score (:mod:`optuna_kmtpe._search.selection`); 0 takes
                the trials' single scores as they are. With ``"speed-band"`` the speed
                reference (:func:`~optuna_kmtpe._search.selection.speed_reference`: the
                fastest of the baselines' proxy choices among the warm starts) is re-scored
                too, so the baseline to beat on speed is compared on the same footing.
            rescore_repeats: Re-scores per configuration.
            choice_rule: ``"speed-band"`` or ``"score"``.
            tie_band: The band in score units; default one standard error of a re-scored
                mean (0 without re-scores: only exact ties go to speed).

        Raises:
            ValueError: No trial met the limits (the message says how many were tried).
        """
        if choice_rule not in CHOICE_RULES:
            raise ValueError(f"`choice_rule` must be one of {CHOICE_RULES}, got {choice_rule!r}.")
        trials = study.get_trials(deepcopy=False)
        pool = candidates(study)
        if not pool:
            n = sum(t.state.name == "COMPLETE" for t in trials)
            raise ValueError(
                f"No configuration met the limits in the {n} completed trials of study "
                f"{study.study_name!r}; relax the limits, run more trials, or pass "
                "train_infeasible=True to see the accuracy of the others."
            )
        scored = [_scored(t, (float(t.user_attrs["accuracy"]),)) for t in pool]
        rescored: dict[int, float] = {}
        rescoring: list[dict[str, Any]] = []
        if rescore > 0:
            reference = speed_reference(pool) if choice_rule == "speed-band" else []
            ranked = rescore_top(
                study, self.objective(), top=rescore, repeats=rescore_repeats, extra=reference
            )
            rescoring = rescoring_record(study, ranked)
            if ranked:  # else every re-score diverged: keep the trials' own scores
                scored = [_scored(trials[r.trial], (r.accuracy, *r.rescored)) for r in ranked]
                rescored = {r.trial: r.mean for r in ranked}
        band = 0.0 if choice_rule == "score" else tie_band
        if band is None:
            band = tie_band_of(scored)
        chosen = trials[pick(scored, choice_rule, band).trial]
        a = chosen.user_attrs
        _say_if_slower(chosen, speed_reference(pool), {e.trial: e.mean for e in scored})
        return BestConfiguration(
            trial=chosen.number,
            bits=dict(zip(a["layers"], a["bits"])),
            widths=dict(zip(a["layers"], a["widths"])),
            accuracy=float(a["accuracy"]),
            size_mb=float(a["size_mb"]),
            speedup=float(a["speedup"]),
            latency_ms=float(a["latency_ms"]),
            energy_mj=float(a["energy_mj"]),
            params=trained_params(chosen),
            rescored_accuracy=rescored.get(chosen.number),
            rescoring=rescoring,
            tie_band=band,
        )

    def baseline(self, method: str, *, epochs: int | None = None) -> BaselineResult:
        """The configuration a search-free method picks under the same limits and cost model:
        ``"uniform"``, ``"ilp"`` (HAWQ-V3's integer program on the Hessian traces),
        ``"greedy"`` or ``"learned"`` (bit-widths learned by gradient under a resource
        penalty; ``epochs`` epochs of ``train_fn``, default 3 times the search's); see
        :mod:`optuna_kmtpe._search.baselines`. ``build(result.params)`` builds it.

        Raises:
            ValueError: Unknown method, ``epochs`` for another method, or no configuration
                of that kind meets the limits.
        """
        return run_baseline(self, method, epochs=epochs)

    def build(self, best: BestConfiguration | FrozenTrial | Mapping[str, Any]) -> nn.Module:
        """The width-scaled, fake-quantised model of a configuration, weights inherited from
        the trained model (not trained further; fine-tune it with your own loop).

        Args:
            best: What :meth:`best` returned, a trial, or trial parameters.
        """
        if hasattr(best, "user_attrs"):  # a trial: the configuration it trained
            params: Mapping[str, Any] = trained_params(best)  # type: ignore[arg-type]
        else:
            params = best.params if hasattr(best, "params") else best  # type: ignore[assignment]
        bits, widths = self.objective().configuration(params)  # type: ignore[arg-type]
        return self._builder.build(bits, widths if self._plan is not None else None)

    def evaluate(self, model: nn.Module) -> float:
        """The validation score of ``model`` (``metric_fn`` over ``val_loader``)."""
        return float(self._eval_fn(model))

    # --- Internals -------------------------------------------------------------------------

    def _check_attainable(self, space: MixedPrecisionSpace) -> None:
        bits = [
            list(space.bits[n]) if n in space.bits else [FLOAT_COST_BITS] for n in self._layers
        ]
        widths = [list(space.widths.get(n, (1.0,))) for n in self._layers]
        self._limits.check_attainable(self._cost, bits, widths)

    def _pruned_space(self) -> MixedPrecisionSpace:
        n_batches, max_samples, rtol = self._hessian
        if self._hessian_data is not None:
            data: Iterable[Any] = self._hessian_data
        else:
            assert self._train_loader is not None, "hessian_data is needed with train_fn"
            data = itertools.islice(self._train_loader, n_batches)
        found = estimate_space(
            self._model,
            self._loss_fn,
            data,
            layers=self._searched,
            width_layers=self._width_leaders,
            n_clusters=self._n_clusters,
            bit_choices=self._bit_choices,
            width_choices=self._width_choices,
            max_samples=max_samples,
            rtol=rtol,
            min_samples=min(5, max_samples),
            seed=self._seed,
            progress=self._progress,
        )
        self._traces = found.traces
        space = found.space
        space = apply_choices(space, self._choices, self._width_leaders)
        if self._space_rule == "baselines":
            space = widen_space(space, self._reference(space))
        _logger.info(
            f"Hessian traces: {len(found.traces)} layers in {found.seconds:.1f} s; "
            f"space 10^{space.log10_size(pruned=False):.1f} -> 10^{space.log10_size():.1f} "
            f"configurations after pruning (rule {space.rule})"
        )
        return space

    def _reference(self, space: MixedPrecisionSpace) -> dict[str, list[Allocation]]:
        """The feasible uniform, ILP and greedy allocations over each layer's candidate bits
        (all of ``B`` unless ``layer_choices`` restricts it); cached."""
        if self._allocations is None:
            bits = {
                n: tuple(space.bits[n])
                if self._choices.get(n, _FREE).bits is not None
                else self._bit_choices
                for n in space.layers
            }
            traces = space.normalized_traces
            omega = (
                layer_omega(self._model, traces, bits)
                if all(n in traces for n in space.layers)
                else None
            )
            fixed = dict.fromkeys(self._float, FLOAT_COST_BITS)
            self._allocations = reference_allocations(
                self._cost, self._limits, bits, space.widths, fixed, omega
            )
        return self._allocations


_FREE = LayerChoice()


def choose(study: optuna.Study) -> FrozenTrial | None:
    """The feasible, trained COMPLETE trial with the highest accuracy, then the smallest
    size, then the lowest number; None when there is none."""
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


def _say_if_slower(
    chosen: FrozenTrial, reference: Sequence[FrozenTrial], means: Mapping[int, float]
) -> None:
    """Log when the chosen configuration is slower than the speed reference."""
    for ref in reference:
        speed, own = float(ref.user_attrs["speedup"]), float(chosen.user_attrs["speedup"])
        if speed > own:
            _logger.warning(
                f"The chosen configuration (trial {chosen.number}, speedup {own:.2f}x) is "
                f"slower than the fastest baseline choice tried (trial {ref.number}, "
                f"{ref.user_attrs['warm_start']}, {speed:.2f}x, score "
                f"{means.get(ref.number, float(ref.user_attrs['accuracy'])):.4f} against "
                f"{means.get(chosen.number, float(chosen.user_attrs['accuracy'])):.4f}); pass "
                "its params to build() for the faster model."
            )


def _scored(t: FrozenTrial, scores: tuple[float, ...]) -> Scored:
    a = t.user_attrs
    return Scored(t.number, scores, float(a["speedup"]), float(a["size_mb"]))


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")


_HARDWARE_ARGS = (
    "rows, cols, clock_mhz, dram_gbps, pj_per_dsp_op, pj_per_dram_byte, pj_per_bram_byte"
)


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
