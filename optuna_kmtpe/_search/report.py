"""What a ``kmtpe search`` run reports while it runs: a line per trial and ``results.csv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from optuna_kmtpe._budget import FAIL_REASON
from optuna_kmtpe._budget import SURPLUS
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._search.results import trials_table
from optuna_kmtpe._search.results import write_table


__all__ = ["TrialLog"]

_logger = get_logger(__name__)


@dataclass
class TrialLog:
    """Study callback: a log line per trial (failures always) and ``results.csv`` rewritten.

    Attributes:
        out: Folder of ``results.csv``.
        progress: A progress bar is shown: per-trial lines (other than failures) would
            break it.
    """

    out: Path
    progress: bool

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        a = trial.user_attrs
        if a.get(SURPLUS):
            _logger.info(f"trial {trial.number}: not run, other workers cover --trials")
        elif trial.state.name == "FAIL":
            _logger.info(f"trial {trial.number} FAILED: {a.get(FAIL_REASON, 'error')}")
        elif not self.progress:
            acc = f"{a['accuracy']:.4f}" if a.get("trained") else "not trained"
            note = f" (reused trial {a['reused_from_trial']})" if "reused_from_trial" in a else ""
            if trial.state.name == "PRUNED":
                note = f" (pruned after epoch {a.get('pruned_at_epoch')})"
            _logger.info(
                f"trial {trial.number}: acc {acc}{note}, {a.get('size_mb', 0):.4g} MB, "
                f"speedup {a.get('speedup', 0):.2f}x, "
                f"{'feasible' if a.get('feasible') else 'over a limit'}, bits {a.get('bits')}"
            )
        write_table(trials_table(study), self.out / "results.csv")
