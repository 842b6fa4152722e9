"""The Optuna pruners of ``kmtpe search --pruner``, set for a search of a few epochs.

A trained candidate reports its objective value after every epoch but its last (step = the
epoch, 1-based) and may be pruned there; its last epoch's value is its result, reported at
step ``epochs`` (:mod:`optuna_kmtpe._search.objective`). The names and settings:

* ``none``: :class:`~optuna.pruners.NopPruner`; every candidate trains all its epochs and
  nothing is reported.
* ``median``: ``MedianPruner(n_startup_trials=5, n_warmup_steps=0)``: once 5 trials have
  completed, a trial whose value after an epoch is below the median of the completed trials'
  values after that epoch stops.
* ``successive-halving`` (the default of the commands, :data:`DEFAULT_PRUNER`):
  ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)``: rungs after epochs 1, 3,
  9, ...; a trial goes past a rung only in the best third of the trials that reached it.
* ``hyperband``: ``HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)``:
  successive halving in brackets that start pruning at different rungs.

Example:
    >>> type(make_pruner("median", epochs=4)).__name__
    'MedianPruner'
"""

from __future__ import annotations

import optuna


__all__ = ["DEFAULT_PRUNER", "PRUNERS", "make_pruner"]

PRUNERS = ("none", "median", "successive-halving", "hyperband")
#: The default of ``kmtpe search`` and ``kmtpe compare``: on 8x8 digits (5 seeds, 40 trials of
#: 4 epochs) it halved the search's training epochs at the same test accuracy
#: (docs/results.md, "Pruning").
DEFAULT_PRUNER = "successive-halving"


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner ``name`` (one of :data:`PRUNERS`) for candidates of ``epochs`` epochs.

    Raises:
        ValueError: ``name`` is not one of :data:`PRUNERS`.
    """
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(int(epochs), 1), reduction_factor=3
        )
    raise ValueError(f"Unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}.")
