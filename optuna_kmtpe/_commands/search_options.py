"""The options ``kmtpe search`` and ``kmtpe compare`` share about the search space, the warm
start, infeasible proposals, the choice and narrowed layers (docs/search.md)."""

from __future__ import annotations

import argparse
from typing import Any

from optuna_kmtpe._commands._names import CHOICE_RULES
from optuna_kmtpe._commands._names import INFEASIBLE_MODES
from optuna_kmtpe._commands._names import NARROW_RULES
from optuna_kmtpe._commands._names import SPACE_RULES


__all__ = ["add_space_options", "space_options"]


def add_space_options(group: Any) -> None:
    """Add ``--space-rule``, ``--warm-start``, ``--infeasible``, ``--choice-rule`` and
    ``--narrow``."""
    group.add_argument(
        "--space-rule",
        choices=SPACE_RULES,
        default="baselines",
        help="each layer's bits: its Hessian cluster's subset plus the bits of the feasible "
        "uniform, ILP and greedy configurations (baselines, default), or the paper's fixed "
        "cluster subsets alone (paper)",
    )
    group.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="enqueue the feasible uniform, ILP and greedy configurations as the first trials "
        "(default; they count as trials)",
    )
    group.add_argument(
        "--infeasible",
        choices=INFEASIBLE_MODES,
        default="repair",
        help="a proposal over a limit: train its nearest feasible repair (repair, default) or "
        "score it with the Lagrangian penalty untrained (penalty)",
    )
    group.add_argument(
        "--choice-rule",
        choices=CHOICE_RULES,
        default="speed-band",
        help="the chosen configuration: the fastest within one standard error of the best "
        "re-scored mean (speed-band, default) or the best score (score)",
    )
    group.add_argument(
        "--narrow",
        choices=NARROW_RULES,
        default="magnitude",
        help="the trained channels a narrowed layer (width < 1) keeps: those of largest L1 "
        "weight norm (magnitude, default) or its first ones (first, the earlier rule)",
    )


def space_options(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as config fields."""
    return {
        "space_rule": args.space_rule,
        "warm_start": args.warm_start,
        "infeasible": args.infeasible,
        "choice_rule": args.choice_rule,
        "narrow": args.narrow,
    }
