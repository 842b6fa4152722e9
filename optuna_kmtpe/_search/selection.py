"""Choosing under noise: re-score the best few trials before picking one.

One validation score of a few-epoch candidate is a noisy draw (on 8x8 digits one
configuration scored anywhere from 96.9% to 98.6% over training seeds), so the single best
trial is mostly the luckiest. :func:`rescore_top` trains the ``top`` best distinct feasible
configurations ``repeats`` more times with fresh seeds, exactly as a trial trains them, and
ranks them by the mean of all their scores (the trial's and the new ones).

Example:
    >>> r = Rescored(trial=3, accuracy=0.9, rescored=(0.8, 0.85))
    >>> round(r.mean, 6), round(r.sd, 6)
    (0.85, 0.05)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

import numpy as np

from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._search.objective import trained_params


if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from optuna_kmtpe._search.objective import TrialObjective


__all__ = [
    "RESCORE_SEED",
    "Rescored",
    "candidates",
    "rescore_top",
    "rescoring_record",
    "speed_reference",
]

#: Re-scores train with ``seed + RESCORE_SEED + 1000 * rank + repeat``: never a trial's seed
#: (``seed + trial.number``) in a study of fewer than 100,000 trials.
RESCORE_SEED = 100_000
_logger = get_logger(__name__)


@dataclass(frozen=True)
class Rescored:
    """One re-scored trial: its own score and the new ones."""

    trial: int
    accuracy: float
    rescored: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Mean of the trial's score and the re-scores."""
        return float(np.mean([self.accuracy, *self.rescored]))

    @property
    def sd(self) -> float:
        """Sample standard deviation of the trial's score and the re-scores."""
        return float(np.std([self.accuracy, *self.rescored], ddof=1))


def rescoring_record(study: optuna.Study, ranked: list[Rescored]) -> list[dict[str, Any]]:
    """What decided the choice, best mean first: per re-scored trial its configuration
    (layer -> bits, layer -> width, params, size, speedup) and scores (the trial's first)."""
    trials = study.get_trials(deepcopy=False)
    record = []
    for r in ranked:
        a = trials[r.trial].user_attrs
        record.append(
            {
                "trial": r.trial,
                "bits": dict(zip(a["layers"], a["bits"])),
                "widths": dict(zip(a["layers"], a["widths"])),
                "params": trained_params(trials[r.trial]),
                "size_mb": float(a["size_mb"]),
                "speedup": float(a["speedup"]),
                "scores": [r.accuracy, *r.rescored],
                "mean": r.mean,
                "sd": r.sd,
            }
        )
    return record


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    """Feasible, trained COMPLETE trials, one per configuration (the one that trained it),
    best validation score first, then smallest size, then lowest number."""
    keep = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
        and t.user_attrs.get("feasible")
        and t.user_attrs.get("trained")
        and "reused_from_trial" not in t.user_attrs
    ]
    return sorted(
        keep,
        key=lambda t: (-float(t.user_attrs["accuracy"]), float(t.user_attrs["size_mb"]), t.number),
    )


def rescore_top(
    study: optuna.Study,
    objective: TrialObjective,
    *,
    top: int = 5,
    repeats: int = 2,
    extra: Sequence[FrozenTrial] = (),
) -> list[Rescored]:
    """Re-train and re-score the ``top`` best configurations ``repeats`` times each, and
    the ``extra`` trials (e.g. :func:`speed_reference`'s) when not among them.

    Returns:
        The re-scored trials, best mean first (ties: the earlier rank); a configuration whose
        re-training diverged is left out (logged).

    Raises:
        ValueError: ``top`` or ``repeats`` below 1.
    """
    if top < 1 or repeats < 1:
        raise ValueError(f"`top` and `repeats` must be >= 1, got {top} and {repeats}.")
    found = []
    pool = candidates(study)[:top]
    pool += [t for t in extra if t.number not in {p.number for p in pool}]
    for rank, t in enumerate(pool):
        bits, widths = objective.configuration(trained_params(t))
        scores = []
        try:
            for r in range(repeats):
                net = objective.builder.build(
                    bits, widths if objective.builder.plan is not None else None
                )
                seed = objective.seed + RESCORE_SEED + 1000 * rank + r
                objective.train_fn(net, epochs=objective.epochs, seed=seed)
                scores.append(float(objective.eval_fn(net)))
        except DivergenceError as e:
            _logger.info(f"re-score of trial {t.number} diverged ({e}); it is not chosen")
            continue
        found.append(Rescored(t.number, float(t.user_attrs["accuracy"]), tuple(scores)))
        _logger.info(
            f"re-score of trial {t.number}: {found[-1].mean:.4f} +- {found[-1].sd:.4f} "
            f"(trial {found[-1].accuracy:.4f}, re-scores {', '.join(f'{x:.4f}' for x in scores)})"
        )
    order = sorted(range(len(found)), key=lambda i: (-found[i].mean, i))
    return [found[i] for i in order]


def speed_reference(pool: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The warm-start trial of ``pool`` that the speed-band choice is measured against (and
    also re-scores), or none: each baseline method's best-scoring warm start (what that
    method would pick on the proxy), then the fastest of those.

    Not simply the fastest warm start: at 2 bits per weight that is uniform 2-bit at width
    1, which scores 20% on Fashion-MNIST and no one would pick.

    Example:
        >>> from optuna.trial import create_trial
        >>> def warm(method, accuracy, speedup):
        ...     attrs = {"warm_start": method, "accuracy": accuracy, "speedup": speedup}
        ...     return create_trial(value=accuracy, user_attrs=attrs)
        >>> pool = [warm("uniform", 0.85, 8.2), warm("uniform", 0.20, 9.3), warm("ilp", 0.87, 6.3)]
        >>> [t.user_attrs["speedup"] for t in speed_reference(pool)]
        [8.2]
    """
    best: dict[str, FrozenTrial] = {}
    for t in pool:
        method = t.user_attrs.get("warm_start")
        if method is not None and (method not in best or _proxy_key(t) > _proxy_key(best[method])):
            best[method] = t
    if not best:
        return []
    return [max(best.values(), key=lambda t: float(t.user_attrs["speedup"]))]


def _proxy_key(t: FrozenTrial) -> tuple[float, float]:
    """A warm start's rank within its method: proxy score, then speed."""
    return float(t.user_attrs["accuracy"]), float(t.user_attrs["speedup"])
