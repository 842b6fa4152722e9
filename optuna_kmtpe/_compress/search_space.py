"""Hessian-pruned mixed-precision search space (paper section III-A).

:func:`prune_search_space` clusters the layers' normalised Hessian traces (trace / number of
weights) with exact 1-D k-means, sorts the clusters by centroid from most to least sensitive
and gives cluster ``i`` the bit-width subset ``B_i`` (:func:`bit_subsets`). Width multipliers
are not pruned. The result, a :class:`MixedPrecisionSpace`, suggests a configuration into any
Optuna trial, so TPE, random search and k-means TPE search the same space.

This module imports neither torch nor Optuna.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import json
import math
from typing import Any
from typing import Literal
from typing import Protocol
from typing import TYPE_CHECKING
import warnings

import numpy as np

from optuna_kmtpe._kmeans1d import kmeans_1d


if TYPE_CHECKING:
    from optuna.trial import BaseTrial

    from optuna_kmtpe._compress.sensitivity import TraceEstimate


__all__ = [
    "SPACE_RULES",
    "Configuration",
    "MixedPrecisionSpace",
    "bit_subsets",
    "prune_search_space",
]

DEFAULT_BITS = (8, 6, 4, 3, 2)
DEFAULT_WIDTHS = (0.75, 0.875, 1.0, 1.125, 1.25)
#: How a space's bits were chosen (:attr:`MixedPrecisionSpace.rule`).
SPACE_RULES = ("baselines", "paper", "given")
_FORMAT = "optuna_kmtpe.MixedPrecisionSpace"
_VERSION = 1


class _HasNormalized(Protocol):
    @property
    def normalized(self) -> float: ...


def bit_subsets(bit_choices: Sequence[int], n_clusters: int) -> list[tuple[int, ...]]:
    """Candidate bit-widths of each cluster, most sensitive cluster first.

    Rule: sort ``B`` descending (positions ``0..n-1``); cluster ``i`` of ``k`` (0-based) is
    centred at position ``c_i = ceil(i * (n - 1) / (k - 1))`` (evenly spaced, rounded towards
    fewer bits) and takes the window ``B[c_i - 1 .. c_i + 1]`` clipped to ``B``. For the paper's
    ``k = 4`` and ``B = {8, 6, 4, 3, 2}`` the centres are 0, 2, 3, 4, which gives exactly its
    ``{8, 6}, {6, 4, 3}, {4, 3, 2}, {3, 2}``. ``k = 1`` allows all of ``B``.

    Example:
        >>> bit_subsets((8, 6, 4, 3, 2), 4)
        [(8, 6), (6, 4, 3), (4, 3, 2), (3, 2)]
        >>> bit_subsets((8, 6, 4, 3, 2), 3)
        [(8, 6), (6, 4, 3), (3, 2)]
    """
    b = _check_bits(bit_choices)
    if not (isinstance(n_clusters, (int, np.integer)) and n_clusters >= 1):
        raise ValueError(f"n_clusters must be a positive int, got {n_clusters!r}.")
    n, k = len(b), int(n_clusters)
    if k == 1:
        return [b]
    centres = [-(-(i * (n - 1)) // (k - 1)) for i in range(k)]  # integer ceil
    return [b[max(c - 1, 0) : c + 2] for c in centres]


@dataclass(frozen=True)
class Configuration:
    """One point of a :class:`MixedPrecisionSpace`: a bit-width and a width per layer.

    The bit-width is shared by the layer's weights and its input activations.
    """

    bits: dict[str, int]
    widths: dict[str, float]

    def bits_list(self) -> list[int]:
        """Bit-widths in layer order."""
        return list(self.bits.values())

    def widths_list(self) -> list[float]:
        """Width multipliers in layer order."""
        return list(self.widths.values())


@dataclass(frozen=True)
class MixedPrecisionSpace:
    """Allowed bit-widths and width multipliers per layer.

    Trial parameters are ``"bits/<layer>"`` and ``"width/<layer>"`` (categorical); layers
    that are not in ``widths`` keep width 1 and suggest no width parameter.

    Attributes:
        layers: Layer names in model order.
        bits: Layer -> allowed bit-widths (descending).
        widths: Layer -> allowed width multipliers, for the layers whose width is searched.
        bit_choices: The unpruned bit-widths ``B``.
        clusters: Layer -> cluster index (0 = most sensitive), when built from traces.
        normalized_traces: Layer -> trace / numel, when built from traces.
        rule: How ``bits`` were chosen: ``"paper"`` (each cluster's subset, as
            :func:`prune_search_space` gives), ``"baselines"`` (the cluster subset and the
            bit-widths of the feasible uniform, ILP and greedy allocations,
            :func:`optuna_kmtpe._search.space.widen_space`) or ``"given"`` (by hand).

    Example:
        >>> import optuna
        >>> space = prune_search_space({"conv": 3e-2, "mid": 2e-3, "fc": 1e-4}, n_clusters=3)
        >>> space.bits
        {'conv': (8, 6), 'mid': (6, 4, 3), 'fc': (3, 2)}
        >>> study = optuna.create_study(direction="maximize")
        >>> def objective(trial: optuna.Trial) -> float:
        ...     config = space.suggest(trial)
        ...     return -sum(config.bits_list())  # stand-in for accuracy under limits
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study.optimize(objective, n_trials=5)
        >>> space.configuration(study.best_params).bits["conv"] in (8, 6)
        True
        >>> MixedPrecisionSpace.from_json(space.to_json()) == space
        True
        >>> round(space.log10_size(), 2), round(space.log10_size(pruned=False), 2)
        (3.18, 4.19)
    """

    layers: tuple[str, ...]
    bits: dict[str, tuple[int, ...]]
    widths: dict[str, tuple[float, ...]]
    bit_choices: tuple[int, ...] = DEFAULT_BITS
    clusters: dict[str, int] = field(default_factory=dict)
    normalized_traces: dict[str, float] = field(default_factory=dict)
    rule: str = "given"

    def __post_init__(self) -> None:
        if self.rule not in SPACE_RULES:
            raise ValueError(f"rule must be one of {SPACE_RULES}, got {self.rule!r}.")
        if not self.layers:
            raise ValueError("A MixedPrecisionSpace needs at least one layer.")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"Layer names must be unique, got {list(self.layers)}.")
        if set(self.bits) != set(self.layers):
            missing = sorted(set(self.layers) - set(self.bits))
            extra = sorted(set(self.bits) - set(self.layers))
            raise ValueError(
                f"bits must name every layer once (missing {missing}, extra {extra})."
            )
        unknown = sorted(set(self.widths) - set(self.layers))
        if unknown:
            raise ValueError(f"widths names layers that are not in the space: {unknown}.")
        choices = set(_check_bits(self.bit_choices))
        for layer, allowed in self.bits.items():
            if not allowed or not set(allowed) <= choices:
                raise ValueError(
                    f"Layer {layer!r} allows bits {list(allowed)}, which must be a non-empty "
                    f"subset of bit_choices {list(self.bit_choices)}."
                )
        for layer, allowed_w in self.widths.items():
            _check_widths(allowed_w, f"widths of layer {layer!r}")

    def suggest(self, trial: BaseTrial) -> Configuration:
        """Suggest a bit-width (and width, where searched) for every layer into ``trial``."""
        bits = {
            layer: int(trial.suggest_categorical(f"bits/{layer}", list(self.bits[layer])))
            for layer in self.layers
        }
        widths = {
            layer: float(trial.suggest_categorical(f"width/{layer}", list(self.widths[layer])))
            if layer in self.widths
            else 1.0
            for layer in self.layers
        }
        return Configuration(bits=bits, widths=widths)

    def params(self, config: Configuration) -> dict[str, Any]:
        """Trial parameters of ``config`` (e.g. for ``study.enqueue_trial``)."""
        out: dict[str, Any] = {f"bits/{layer}": config.bits[layer] for layer in self.layers}
        out.update({f"width/{layer}": config.widths[layer] for layer in self.widths})
        return out

    def configuration(self, params: Mapping[str, Any]) -> Configuration:
        """The :class:`Configuration` of trial parameters (e.g. ``study.best_params``)."""
        try:
            bits = {layer: int(params[f"bits/{layer}"]) for layer in self.layers}
            widths = {
                layer: float(params[f"width/{layer}"]) if layer in self.widths else 1.0
                for layer in self.layers
            }
        except KeyError as e:
            raise ValueError(f"params lack {e.args[0]!r}; were they suggested by this space?")
        return Configuration(bits=bits, widths=widths)

    def log10_size(self, pruned: bool = True) -> float:
        """log10 of the number of configurations, with or without the Hessian pruning."""
        n_bits = [len(self.bits[la]) if pruned else len(self.bit_choices) for la in self.layers]
        n_widths = [len(w) for w in self.widths.values()]
        return float(np.sum(np.log10(n_bits)) + np.sum(np.log10(n_widths)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (see :meth:`to_json`)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "layers": list(self.layers),
            "bits": {la: list(b) for la, b in self.bits.items()},
            "widths": {la: list(w) for la, w in self.widths.items()},
            "bit_choices": list(self.bit_choices),
            "clusters": dict(self.clusters),
            "normalized_traces": dict(self.normalized_traces),
            "rule": self.rule,
        }

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to JSON; ``kwargs`` go to :func:`json.dumps` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> MixedPrecisionSpace:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"Not a serialised MixedPrecisionSpace (expected format {_FORMAT}).")
        if data.get("version") != _VERSION:
            raise ValueError(f"Unsupported MixedPrecisionSpace version {data.get('version')!r}.")
        return cls(
            layers=tuple(data["layers"]),
            bits={la: tuple(int(b) for b in bs) for la, bs in data["bits"].items()},
            widths={la: tuple(float(w) for w in ws) for la, ws in data["widths"].items()},
            bit_choices=tuple(int(b) for b in data["bit_choices"]),
            clusters={la: int(c) for la, c in data["clusters"].items()},
            normalized_traces={la: float(t) for la, t in data["normalized_traces"].items()},
            rule=str(data.get("rule", "paper")),  # spaces saved before the rule existed
        )


def prune_search_space(
    traces: Mapping[str, TraceEstimate | _HasNormalized | float],
    *,
    n_clusters: int = 4,
    scale: Literal["log", "linear"] = "log",
    bit_choices: Sequence[int] = DEFAULT_BITS,
    width_choices: Sequence[float] = DEFAULT_WIDTHS,
    width_layers: Collection[str] | None = None,
    subsets: Sequence[Sequence[int]] | None = None,
) -> MixedPrecisionSpace:
    """Prune the bit-widths of each layer by clustering its normalised Hessian trace.

    The normalised traces (``TraceEstimate.normalized``, or plain floats) are clustered with
    exact 1-D k-means, by default on a log10 scale because traces span decades (the paper
    does not say which; ``scale="linear"`` is the literal reading). Equal values always share
    a cluster; with fewer distinct values than ``n_clusters`` the number of clusters drops to
    that count (with a warning) and the subsets follow :func:`bit_subsets` for the smaller k.
    On the log scale, non-positive traces (possible for an indefinite Hessian or a noisy
    estimate) join the least sensitive cluster, with a warning.

    Args:
        traces: Layer name -> normalised trace (an object with ``.normalized`` or a float),
            in model order (the output of :func:`~optuna_kmtpe.hessian_traces`).
        n_clusters: k of the k-means (paper: 4).
        scale: ``"log"`` or ``"linear"``: the scale the k-means works on.
        bit_choices: The bit-widths ``B``.
        width_choices: The width multipliers ``S``, for every searched layer (not pruned).
        width_layers: Layers whose width is searched (default: every layer). For the model
            zoo, the keys of ``optuna_kmtpe._zoo.models.width_groups`` are the layers whose
            multiplier matters.
        subsets: Explicit bit-width subsets per cluster, most sensitive first (overrides the
            rule of :func:`bit_subsets`); needs exactly as many subsets as clusters.

    Returns:
        The pruned :class:`MixedPrecisionSpace`.

    Raises:
        ValueError: Empty or NaN / infinite traces, bad choices, or subsets that do not match.

    Example:
        >>> space = prune_search_space(
        ...     {"a": 1.0, "b": 0.5, "c": 1e-2, "d": 1e-3, "e": 1e-5}, width_layers=["a"]
        ... )
        >>> space.bits["a"], space.bits["e"], space.widths
        ((8, 6), (3, 2), {'a': (0.75, 0.875, 1.0, 1.125, 1.25)})
    """
    b = _check_bits(bit_choices)
    widths = _check_widths(width_choices, "width_choices")
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}.")
    if not traces:
        raise ValueError("traces is empty: estimate them first with hessian_traces().")
    layers = tuple(traces)
    values = np.array([_normalized(t) for t in traces.values()], dtype=float)
    bad = [la for la, v in zip(layers, values) if not np.isfinite(v)]
    if bad:
        raise ValueError(
            f"Normalised traces must be finite, but layers {bad} have NaN / inf; re-estimate "
            "them (check the loss for NaN) or leave those layers out."
        )
    if width_layers is None:
        width_layers = layers
    unknown = sorted(set(width_layers) - set(layers))
    if unknown:
        raise ValueError(f"width_layers names layers without a trace: {unknown}.")

    x = values
    if scale == "log":
        positive = values > 0
        if not positive.any():
            raise ValueError(
                "No normalised trace is positive, so the log scale is undefined; use "
                "scale='linear' (or estimate the traces more precisely)."
            )
        if not positive.all():
            low = [la for la, p in zip(layers, positive) if not p]
            warnings.warn(
                f"Layers {low} have non-positive normalised traces; on the log scale they join "
                "the least sensitive cluster.",
                UserWarning,
                stacklevel=2,
            )
        x = np.log10(np.where(positive, values, values[positive].min()))

    n_distinct = np.unique(x).size
    k = min(n_clusters, n_distinct) if n_clusters >= 1 else n_clusters
    if subsets is None:
        cluster_bits = bit_subsets(b, k)  # validates n_clusters
    else:
        cluster_bits = [tuple(sorted({int(v) for v in s}, reverse=True)) for s in subsets]
        if len(cluster_bits) != n_clusters:
            raise ValueError(
                f"subsets has {len(cluster_bits)} entries but n_clusters is {n_clusters}."
            )
        if k < n_clusters:
            raise ValueError(
                f"Only {n_distinct} distinct normalised traces for {n_clusters} explicit "
                "subsets; pass fewer subsets."
            )
    if k < n_clusters:
        warnings.warn(
            f"n_clusters={n_clusters} but only {n_distinct} distinct normalised traces; "
            f"using {k} clusters.",
            UserWarning,
            stacklevel=2,
        )
    ascending = kmeans_1d(x, k)  # 0 = smallest centroid
    clusters = (k - 1) - ascending  # 0 = most sensitive
    return MixedPrecisionSpace(
        layers=layers,
        bits={la: cluster_bits[int(c)] for la, c in zip(layers, clusters)},
        widths={la: widths for la in layers if la in set(width_layers)},
        bit_choices=b,
        clusters={la: int(c) for la, c in zip(layers, clusters)},
        normalized_traces={la: float(v) for la, v in zip(layers, values)},
        rule="paper",
    )


def _normalized(t: TraceEstimate | _HasNormalized | float) -> float:
    value = getattr(t, "normalized", t)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f"A trace must be a TraceEstimate or a number, got {type(t).__name__}."
        ) from None


def _check_bits(bit_choices: Sequence[int]) -> tuple[int, ...]:
    b = tuple(int(v) for v in bit_choices)
    if not b or any(v < 1 for v in b) or len(set(b)) != len(b):
        raise ValueError(f"bit_choices must be distinct positive ints, got {list(bit_choices)}.")
    if any(v != w for v, w in zip(b, bit_choices)):
        raise ValueError(f"bit_choices must be ints, got {list(bit_choices)}.")
    return tuple(sorted(b, reverse=True))


def _check_widths(width_choices: Sequence[float], what: str) -> tuple[float, ...]:
    w = tuple(float(v) for v in width_choices)
    if not w or any(not (math.isfinite(v) and v > 0) for v in w) or len(set(w)) != len(w):
        raise ValueError(f"{what} must be distinct positive numbers, got {list(width_choices)}.")
    return w
