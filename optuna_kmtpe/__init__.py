"""optuna-kmtpe: k-means TPE for Optuna and sensitivity-aware mixed-precision search.

Every public name is loaded on first access, and importing this package or
:class:`KMeansTPESampler` does not import torch: the torch-based parts (Hessian
sensitivity, search-space pruning, hardware cost model) load only when used.
"""

from __future__ import annotations

import importlib
from typing import Any
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits
    from optuna_kmtpe._compress.search_space import MixedPrecisionSpace
    from optuna_kmtpe._compress.search_space import prune_search_space
    from optuna_kmtpe._compress.sensitivity import hessian_traces
    from optuna_kmtpe._compress.sensitivity import TraceEstimate
    from optuna_kmtpe._export import export
    from optuna_kmtpe._sampler import KMeansTPESampler
    from optuna_kmtpe._search.api import BestConfiguration
    from optuna_kmtpe._search.api import MixedPrecisionSearch
    from optuna_kmtpe._search.choices import LayerChoice


__version__ = "0.1.0"

# Public name -> private module that defines it. Loaded lazily so that Optuna users who only
# want the sampler do not pay for torch.
_LAZY_EXPORTS = {
    "KMeansTPESampler": "optuna_kmtpe._sampler",
    "hessian_traces": "optuna_kmtpe._compress.sensitivity",
    "TraceEstimate": "optuna_kmtpe._compress.sensitivity",
    "prune_search_space": "optuna_kmtpe._compress.search_space",
    "MixedPrecisionSpace": "optuna_kmtpe._compress.search_space",
    "DSPPackingModel": "optuna_kmtpe._compress.cost",
    "HardwareLimits": "optuna_kmtpe._compress.limits",
    "MixedPrecisionSearch": "optuna_kmtpe._search.api",
    "BestConfiguration": "optuna_kmtpe._search.api",
    "LayerChoice": "optuna_kmtpe._search.choices",
    "export": "optuna_kmtpe._export",
}

__all__ = [
    "KMeansTPESampler",
    "hessian_traces",
    "TraceEstimate",
    "prune_search_space",
    "MixedPrecisionSpace",
    "DSPPackingModel",
    "HardwareLimits",
    "MixedPrecisionSearch",
    "BestConfiguration",
    "LayerChoice",
    "export",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'optuna_kmtpe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
