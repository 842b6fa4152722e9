"""Which scored configuration a search hands back: the highest score, or the fastest among
those whose score is within noise of it.

Under a size-only limit the score alone ignores latency, and the search returned a slower
model than uniform quantisation at the same size (mnist-5k, 2.5 bits per weight:
4.8x against uniform's 7.3x over FiP16, docs/results.md). Rule ``"speed-band"`` (the
default) takes, among the configurations whose mean score is within ``band`` of the best
mean, the one with the highest speedup on the cost model, then the smallest size, then the
higher mean. Without ``band`` it is one standard error of a configuration's mean score:
the within-configuration standard deviation pooled over the configurations scored more than
once (the re-scores), divided by the square root of the number of scores per configuration;
0 when none was scored twice (then only exact ties go to speed). Rule ``"score"`` is the
former one: the highest mean, then the smallest size.

Example:
    >>> slow = Scored(trial=0, scores=(0.90, 0.92), speedup=4.8, size_mb=0.01)
    >>> fast = Scored(trial=1, scores=(0.91, 0.90), speedup=7.3, size_mb=0.01)
    >>> pick([slow, fast], "speed-band").trial, pick([slow, fast], "score").trial
    (1, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

import numpy as np


__all__ = ["CHOICE_RULES", "Scored", "pick", "tie_band"]

CHOICE_RULES = ("speed-band", "score")


@dataclass(frozen=True)
class Scored:
    """One configuration's scores (its trial's and any re-scores) and its cost."""

    trial: int
    scores: tuple[float, ...]
    speedup: float
    size_mb: float

    @property
    def mean(self) -> float:
        """Mean of the scores."""
        return float(np.mean(self.scores))


def tie_band(entries: Sequence[Scored]) -> float:
    """One standard error of a mean score: pooled within-configuration standard deviation
    over the configurations scored at least twice, over sqrt(scores per configuration);
    0 when none was scored twice."""
    repeated = [e.scores for e in entries if len(e.scores) >= 2]
    if not repeated:
        return 0.0
    pooled = float(np.mean([np.var(s, ddof=1) for s in repeated]))
    n = float(np.mean([len(s) for s in repeated]))
    return math.sqrt(pooled / n)


def pick(entries: Sequence[Scored], rule: str = "speed-band", band: float | None = None) -> Scored:
    """The chosen entry under ``rule`` (see the module docstring); ties keep the earlier.

    Raises:
        ValueError: No entries, an unknown rule or a negative band.
    """
    if not entries:
        raise ValueError("No scored configuration to choose from.")
    if rule not in CHOICE_RULES:
        raise ValueError(f"`choice_rule` must be one of {CHOICE_RULES}, got {rule!r}.")
    order = {id(e): i for i, e in enumerate(entries)}
    if rule == "score":
        return min(entries, key=lambda e: (-e.mean, e.size_mb, order[id(e)]))
    width = tie_band(entries) if band is None else float(band)
    if not (width >= 0):
        raise ValueError(f"`tie_band` must be >= 0, got {band!r}.")
    top = max(e.mean for e in entries)
    near = [e for e in entries if e.mean >= top - width - 1e-12]
    return min(near, key=lambda e: (-e.speedup, e.size_mb, -e.mean, order[id(e)]))
