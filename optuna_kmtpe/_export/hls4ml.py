"""hls4ml export (work in progress)."""

from __future__ import annotations

from typing import Any

from optuna_kmtpe._export._layers import ExportError


def export_hls4ml(*args: Any, **kwargs: Any) -> Any:
    raise ExportError("The hls4ml export is not implemented yet.")
