"""The prepared trial objective of a search, and how a candidate model is built.

Both are plain picklable objects, built once by :class:`~optuna_kmtpe.MixedPrecisionSearch`:
worker processes receive them ready and only run ``study.optimize`` on them.

One trial: suggest bits and widths from the space, cost them on the
:class:`~optuna_kmtpe.DSPPackingModel`, and, when the limits are met (or ``train_infeasible``),
build the candidate (width-scaled copy of the trained model, weights inherited, fake-quantised),
train it ``epochs`` epochs and score it. Every measurement goes into the trial's user
attributes (``epochs_trained``: the epochs it trained, 0 for a trial that did not train, a
reused one included); the study is the record.

Pruning: when the study's pruner can prune (not a :class:`~optuna.pruners.NopPruner`, one
objective) and ``train_fn`` takes the per-epoch hook (:data:`TrainFn`), the candidate is
scored after every epoch but its last, the objective value is reported
(``trial.report(value, epoch)``) and the trial stops with :class:`optuna.TrialPruned` when
``trial.should_prune()``; its last epoch's value is reported at step ``epochs``. A pruned
trial records ``accuracy`` (its last score), ``trained`` and ``pruned_at_epoch``. Otherwise
the candidate is scored once, after training, exactly as without a pruner.

Infeasible proposals (``infeasible``): with ``"repair"`` (the default) a proposal that breaks
a limit is repaired to the nearest feasible configuration of the space
(:func:`optuna_kmtpe._search.repair.repair`) and the trial trains and scores that one. The
trial's parameters stay the proposal (Optuna fixes them once suggested); its user attributes
``bits``, ``widths`` and the cost are the repaired configuration's, ``proposed`` records the
proposal (bits, widths, cost, violations) and ``repaired_params`` the repaired configuration
as trial parameters (:func:`trained_params`). The sampler thus sees each proposal with the
score of its repair. With ``"penalty"`` an infeasible proposal is not trained and scores the
Lagrangian penalty (0 accuracy; ``train_infeasible`` trains it as it is).

A configuration is never trained twice: a trial whose bits and widths equal those of an
earlier COMPLETE trial copies its objective values, ``accuracy`` and ``trained`` and records
``reused_from_trial`` (the number of the trial that trained it) instead of training; it
still counts as a trial of the budget. A RUNNING trial of the same configuration in another
worker is waited for; PRUNED and FAILED trials are not reused (the configuration trains).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import copy
from dataclasses import dataclass
import inspect
import time
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
from optuna import TrialPruned
from optuna.pruners import NopPruner
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import torch
from torch import nn

from optuna_kmtpe._budget import claim
from optuna_kmtpe._budget import FAIL_REASON
from optuna_kmtpe._compress.inherit import inherit_weights
from optuna_kmtpe._compress.limits import lagrangian
from optuna_kmtpe._compress.limits import pareto_values
from optuna_kmtpe._compress.limits import set_constraints
from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._compress.quant import quantize_model
from optuna_kmtpe._compress.widths import apply_widths
from optuna_kmtpe._compress.widths import check_widths
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._search.repair import INFEASIBLE_MODES
from optuna_kmtpe._search.repair import repair


if TYPE_CHECKING:
    import optuna

    from optuna_kmtpe._compress.cost import CostReport
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits
    from optuna_kmtpe._compress.search_space import Configuration
    from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
    from optuna_kmtpe._compress.widths import WidthPlan


__all__ = ["CandidateBuilder", "TrialObjective", "TrainFn", "EvalFn", "trained_params"]

_logger = get_logger(__name__)

#: ``train_fn(model, epochs=..., seed=...)`` trains ``model`` in place. One with an
#: ``on_epoch`` parameter is also passed ``on_epoch=hook`` and must call ``hook(epoch)`` after
#: each epoch (1-based; more positional arguments, such as the epoch's mean loss, are
#: ignored) and let what the hook raises (:class:`optuna.TrialPruned`) propagate. Without the
#: parameter a trial is scored only after training and never pruned.
TrainFn = Callable[..., None]
#: ``eval_fn(model) -> float``: the validation score (higher is better).
EvalFn = Callable[[nn.Module], float]

#: Longest wait for another worker's RUNNING trial of the same configuration.
REUSE_WAIT_S = 3600.0
_POLL_S = 0.5
#: User attribute of a trial that reused an earlier trial's result instead of training.
REUSED_FROM = "reused_from_trial"
#: User attribute: the epochs a trial trained (``epochs``, fewer when pruned, 0 untrained).
EPOCHS_TRAINED = "epochs_trained"
#: User attribute of a pruned trial: the epoch after which it stopped.
PRUNED_AT_EPOCH = "pruned_at_epoch"

#: Bits the cost model charges for a layer kept in float (the FiP16 reference).
FLOAT_COST_BITS = 16
#: User attribute of a repaired trial: the proposal that broke a limit.
PROPOSED = "proposed"
#: User attribute of a repaired trial: the trained configuration as trial parameters.
REPAIRED_PARAMS = "repaired_params"


def trained_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters of the configuration ``trial`` trained (the repaired one when its
    proposal broke a limit), e.g. for ``search.build`` or ``study.enqueue_trial``."""
    return dict(trial.user_attrs.get(REPAIRED_PARAMS, trial.params))


@dataclass
class CandidateBuilder:
    """Builds candidates from the trained model: width-scaled (``plan``), weights inherited
    (:func:`optuna_kmtpe._compress.inherit.inherit_weights`, seeded), fake-quantised.

    Attributes:
        base: The trained float model (not modified).
        layers: Its quantisable layers, in order.
        plan: Its width plan, or None when widths are not searched.
        seed: Seed of the inheritance noise.
        narrow: Which trained channels a narrowed layer keeps (``inherit_weights``'s
            ``narrow``: ``"first"`` or ``"magnitude"``).
    """

    base: nn.Module
    layers: tuple[str, ...]
    plan: WidthPlan | None
    seed: int
    narrow: str = "magnitude"

    def build(
        self, bits: Mapping[str, int | None], widths: Sequence[float] | None = None
    ) -> nn.Module:
        """The candidate for ``bits`` (layer -> bits, None: float) and ``widths`` (one
        multiplier per layer in layer order; None: all 1)."""
        net = copy.deepcopy(self.base)
        if self.plan is not None:
            w = check_widths(1.0 if widths is None else list(widths), self.plan.names)
            net = apply_widths(net, self.plan, w)
            inherit_weights(self.base, net, self.plan, seed=self.seed, narrow=self.narrow)
        elif widths is not None and any(float(x) != 1.0 for x in widths):
            raise ValueError("This search does not scale widths (bits only); pass widths 1.")
        return quantize_model(net, {n: bits[n] for n in self.layers}, inplace=True)


@dataclass
class TrialObjective:
    """``study.optimize`` objective of a :class:`~optuna_kmtpe.MixedPrecisionSearch`.

    Attributes:
        space: The (pruned) search space; its layers are the quantised ones.
        cost: The cost model of the trained model.
        limits: Hardware limits.
        builder: Builds candidates.
        train_fn: ``train_fn(model, epochs=..., seed=...)``.
        eval_fn: ``eval_fn(model) -> score``.
        epochs: Training epochs per candidate.
        seed: A trial trains with ``seed + trial.number``.
        objective: ``"lagrangian"``, ``"constraints"`` or ``"pareto"``.
        pareto_metrics: Cost metrics of the Pareto objective.
        train_infeasible: Also train the configurations that break a limit.
        budget: Total counted trials shared by every process of the study
            (:func:`optuna_kmtpe._budget.claim`), or None for Optuna's own ``n_trials``.
        reuse: Reuse an earlier trial's result for a repeated configuration.
        infeasible: ``"repair"`` or ``"penalty"`` (see the module docstring).
        omega: Layer -> bit-width -> HAWQ sensitivity for every bit-width of the space
            (needed by ``"repair"``).
    """

    space: MixedPrecisionSpace
    cost: DSPPackingModel
    limits: HardwareLimits
    builder: CandidateBuilder
    train_fn: TrainFn
    eval_fn: EvalFn
    epochs: int
    seed: int
    objective: str = "lagrangian"
    pareto_metrics: tuple[str, ...] = ("size_mb",)
    train_infeasible: bool = False
    budget: int | None = None
    reuse: bool = True
    infeasible: str = "penalty"
    omega: Mapping[str, Mapping[int, float]] | None = None

    def __post_init__(self) -> None:
        if self.infeasible not in INFEASIBLE_MODES:
            raise ValueError(
                f"`infeasible` must be one of {INFEASIBLE_MODES}, got {self.infeasible!r}."
            )
        if self.infeasible == "repair" and self.omega is None:
            raise ValueError("infeasible='repair' needs the sensitivities `omega`.")

    @property
    def layers(self) -> tuple[str, ...]:
        return self.builder.layers

    def configuration(
        self, params: Mapping[str, Any]
    ) -> tuple[dict[str, int | None], list[float]]:
        """Bits per layer (None: float) and raw widths in layer order from trial params."""
        conf = self.space.configuration(params)
        bits: dict[str, int | None] = {n: conf.bits.get(n) for n in self.layers}
        widths = [conf.widths.get(n, 1.0) for n in self.layers]
        return bits, widths

    def effective_widths(self, widths: Sequence[float]) -> list[float]:
        plan = self.builder.plan
        if plan is None:
            return [1.0] * len(self.layers)
        return [float(w) for w in plan.effective_widths(np.asarray(widths, dtype=float))]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        if self.budget is not None:
            claim(trial, self.budget)
        conf = self.space.suggest(trial)
        attrs = self._cost_attrs(conf)
        if not attrs["feasible"] and self.infeasible == "repair" and not self.train_infeasible:
            assert self.omega is not None  # checked in __post_init__
            fixed = repair(
                conf,
                cost=self.cost,
                limits=self.limits,
                space=self.space,
                omega=self.omega,
                layers=self.layers,
            )
            trial.set_user_attr(
                PROPOSED, {k: v for k, v in attrs.items() if k not in ("report", "layers")}
            )
            trial.set_user_attr(REPAIRED_PARAMS, self.space.params(fixed))
            attrs = self._cost_attrs(fixed)
            conf = fixed
        report = attrs.pop("report")
        feasible = attrs["feasible"]
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if self.objective != "lagrangian":
            set_constraints(trial, report, self.limits)
        if self.reuse:
            twin = _find_twin(trial, attrs["bits"], attrs["widths"])
            if twin is not None:
                return _reuse(trial, twin)
        accuracy = 0.0
        trained = feasible or self.train_infeasible
        if trained:
            bits: dict[str, int | None] = {n: conf.bits.get(n) for n in self.layers}
            widths = [conf.widths.get(n, 1.0) for n in self.layers]
            accuracy = self._train(trial, self.builder.build(bits, widths), report)
        trial.set_user_attr("trained", trained)
        trial.set_user_attr("accuracy", accuracy)
        trial.set_user_attr(EPOCHS_TRAINED, self.epochs if trained else 0)
        if self.objective == "pareto":
            return pareto_values(accuracy, report, list(self.pareto_metrics))
        return self._scalar_value(accuracy, report)

    def _cost_attrs(self, conf: Configuration) -> dict[str, Any]:
        """The cost user attributes of ``conf`` (and its ``report``, to be popped)."""
        bits = [conf.bits.get(n) for n in self.layers]
        widths = [conf.widths.get(n, 1.0) for n in self.layers]
        report = self.cost.evaluate([FLOAT_COST_BITS if b is None else b for b in bits], widths)
        violations = self.limits.violations(report)
        return {
            "layers": list(self.layers),
            "bits": bits,
            "widths": self.effective_widths(widths),
            "size_mb": report.size_mb,
            "speedup": report.speedup,
            "latency_ms": report.latency_ms,
            "energy_mj": report.energy_mj,
            "feasible": all(v <= 0 for v in violations.values()),
            "violations": violations,
            "report": report,
        }

    def _scalar_value(self, accuracy: float, report: CostReport) -> float:
        """The single objective's value of a score (``lagrangian`` or ``constraints``)."""
        if self.objective == "lagrangian":
            return lagrangian(accuracy, report, self.limits)
        return accuracy

    def _train(self, trial: optuna.Trial, net: nn.Module, report: CostReport) -> float:
        """Train and score ``net``; per-epoch reports and pruning as the module says."""
        study = trial.study
        hook = _EpochHook(
            trial,
            net,
            self,
            report,
            prune=len(study.directions) == 1 and not isinstance(study.pruner, NopPruner),
        )
        t0 = time.perf_counter()
        try:
            if _takes_on_epoch(self.train_fn):
                self.train_fn(
                    net, epochs=self.epochs, seed=self.seed + trial.number, on_epoch=hook
                )
            else:
                self.train_fn(net, epochs=self.epochs, seed=self.seed + trial.number)
            accuracy = float(self.eval_fn(net))
        except DivergenceError as e:
            trial.set_user_attr(FAIL_REASON, f"diverged: {e}")
            if hook.epochs_done is not None:
                trial.set_user_attr(EPOCHS_TRAINED, hook.epochs_done)
            raise
        except TrialPruned:
            trial.set_user_attr("train_seconds", time.perf_counter() - t0)
            trial.set_user_attr("trained", True)
            trial.set_user_attr("accuracy", hook.score)
            trial.set_user_attr(EPOCHS_TRAINED, hook.epochs_done or 0)
            trial.set_user_attr(PRUNED_AT_EPOCH, hook.epochs_done or 0)
            raise
        trial.set_user_attr("train_seconds", time.perf_counter() - t0)
        if hook.prune and self.epochs > 0:
            trial.report(self._scalar_value(accuracy, report), self.epochs)
        return accuracy


@dataclass
class _EpochHook:
    """``on_epoch`` of one trial: counts the epochs; with ``prune``, scores the candidate
    after every epoch but the last (in its training mode afterwards), reports the value and
    raises :class:`optuna.TrialPruned` when the pruner says so."""

    trial: optuna.Trial
    net: nn.Module
    objective: TrialObjective
    report: CostReport
    prune: bool
    epochs_done: int | None = None
    score: float = 0.0

    def __call__(self, epoch: int, *_: Any) -> None:
        self.epochs_done = int(epoch)
        if not self.prune or epoch >= self.objective.epochs:
            return
        was_training = self.net.training
        # Scoring leaves torch's RNG as it was (a DataLoader draws a seed from it), so the
        # training goes on exactly as it would without the reports.
        with torch.random.fork_rng(devices=[]):
            self.score = float(self.objective.eval_fn(self.net))
        self.net.train(was_training)
        self.trial.report(self.objective._scalar_value(self.score, self.report), epoch)
        if self.trial.should_prune():
            raise TrialPruned(
                f"trial {self.trial.number} pruned after epoch {epoch} of "
                f"{self.objective.epochs} (score {self.score:.4f})"
            )


def _takes_on_epoch(train_fn: TrainFn) -> bool:
    """Whether ``train_fn`` has an ``on_epoch`` parameter (the per-epoch hook)."""
    try:
        param = inspect.signature(train_fn).parameters.get("on_epoch")
    except (TypeError, ValueError):  # no signature (e.g. a builtin): no hook
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _find_twin(trial: optuna.Trial, bits: list[Any], widths: list[float]) -> FrozenTrial | None:
    """The earliest COMPLETE trial with these bits and widths, if any.

    A RUNNING trial with a lower number (another worker, the same configuration) is waited
    for, at most :data:`REUSE_WAIT_S` seconds: if it completes, it is the twin; if it fails
    or is pruned, this trial trains. PRUNED and FAIL trials are never reused.
    """
    deadline = time.monotonic() + REUSE_WAIT_S
    while True:
        waiting = False
        for t in trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
        ):
            a = t.user_attrs
            if t.number == trial.number or a.get("bits") != bits or a.get("widths") != widths:
                continue
            if t.state == TrialState.COMPLETE and "accuracy" in a:
                return t
            waiting = waiting or t.number < trial.number
        if not waiting or time.monotonic() > deadline:
            return None
        time.sleep(_POLL_S)


def _reuse(trial: optuna.Trial, twin: FrozenTrial) -> float | tuple[float, ...]:
    """Copy ``twin``'s result into ``trial`` (its cost attributes and constraints are the
    same already) and return its objective values."""
    origin = twin.user_attrs.get(REUSED_FROM, twin.number)
    trial.set_user_attr(REUSED_FROM, origin)
    trial.set_user_attr("trained", twin.user_attrs.get("trained", False))
    trial.set_user_attr("accuracy", twin.user_attrs["accuracy"])
    trial.set_user_attr(EPOCHS_TRAINED, 0)
    _logger.debug(f"trial {trial.number}: same configuration as trial {origin}; reused")
    values = twin.values
    return float(values[0]) if len(values) == 1 else tuple(float(v) for v in values)
