"""Per-layer bit-widths learned by gradient under a differentiable resource penalty.

The ``learned`` baseline of a search: what an engineer using Uhlich et al. (ICLR 2020) or
HGQ would get. One quantisation-aware training run of the trained model in which every
searched layer's bit-width ``b_l`` is a continuous, trainable number (weights and input
activations share it, as everywhere in this project), then a projection onto the search's
bit-widths.

* **Quantiser.** The search's quantiser (:mod:`optuna_kmtpe._compress.quant`) with a real
  ``b``: weights symmetric per output channel with ``q = 2**(b-1) - 1`` levels each side and
  step ``max|W_c| / q``; input activations affine per tensor with ``2**b - 1`` levels over the
  calibrated (EMA) range. Rounding passes gradients straight through, so the step size ``d``
  gets Uhlich's gradient ``round(x/d) - x/d`` and ``b`` gets it through ``d(b)``. At integer
  ``b`` the forward pass is the search's quantiser. Uhlich learns the step size and the
  dynamic range and derives ``b``; here the dynamic range stays the project's (the channel's
  max and the EMA range) so that the learned layers are the layers the search trains, which
  leaves the step size as the one free quantity per layer; it is written as ``b``, which Adam
  steps at a scale-free rate. HGQ's per-weight fixed-point bits would need a different
  quantiser and could not be projected onto one bit-width per layer without a second rule.
* **Penalty.** :class:`CostSurrogate`: per layer and limited metric, the lower convex hull of
  the cost model's per-layer term at the layer's allowed bit-widths, interpolated linearly in
  ``b``. Size (``weights * b / 8``) is linear, so it is exact everywhere. Cycles and energy
  follow the DSP packing (16 -> 1, 8 / 6 -> 2, 4 / 3 -> 6, 2 -> 15 products per DSP): exact
  at the hull's corners (2, 4 and 8 bits for the default packing), under the cost model at
  6 and 3 bits (which pack like 8 and 4), so the penalty has a slope everywhere instead of
  the step function's zero gradient.
* **Tuning.** Every layer starts at the largest real uniform bit-width at which the
  surrogate meets the limits (so the run redistributes a budget rather than having to find
  it). One penalty weight ``lambda_k`` per set limit, on the relative cost
  ``P_k(b) / limit_k``: at the first step, set so that each limit's gradient on the bits is as
  long as the training loss's (divided by the number of limits); after every step, adapted
  by multiplicative dual ascent, ``lambda_k *= exp(dual_rate * (P_k(b) / limit_k - 1))``
  (grows while the surrogate breaks the limit, shrinks while it is under it; at most a
  factor ``e`` a step). The bits take an Adam step of ``lr`` on the training loss plus the
  penalty and are clipped to the layer's allowed range.
* **Projection.** Each layer's learned ``b`` goes to the nearest allowed bit-width (ties to
  the lower). If that breaks a limit, the greedy of
  :func:`~optuna_kmtpe._compress.allocate.greedy_allocation` lowers layers, with the
  sensitivity ``4 ** (b_learned - b)`` (the quantisation noise power relative to what the run
  settled on), until every limit holds. Widths stay 1 (the method learns bits only).

The training is the caller's ``train_fn`` (the same recipe and data as a search trial): the
bits are not parameters of the model, so its optimiser leaves them alone, and they are stepped
by a forward pre-hook with the gradient the previous batch left.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from optuna_kmtpe._compress.cost import DSPPackingModel
    >>> from optuna_kmtpe._compress.limits import HardwareLimits
    >>> torch.manual_seed(0) and None
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 3))
    >>> x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
    >>> def train_fn(model: nn.Module, *, epochs: int, seed: int) -> None:
    ...     opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ...     for _ in range(epochs * 8):
    ...         loss = nn.functional.cross_entropy(model(x), y)
    ...         opt.zero_grad()
    ...         loss.backward()
    ...         opt.step()
    >>> cost = DSPPackingModel(net, (1, 8, 8))
    >>> limits = HardwareLimits(size_mb=cost.evaluate(3).size_mb)
    >>> found = learn_bits(net, train_fn, cost, limits, {"0": (8, 4, 2), "3": (8, 4, 2)}, epochs=4)
    >>> found.allocation.report.size_mb <= limits.size_mb
    True
    >>> found.steps
    32
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import copy
from dataclasses import dataclass
from dataclasses import replace
import math
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.allocate import Allocation
from optuna_kmtpe._compress.allocate import greedy_allocation
from optuna_kmtpe._compress.cost import PACKING
from optuna_kmtpe._compress.quant import _ActRange
from optuna_kmtpe._compress.quant import MAX_BITS
from optuna_kmtpe._compress.quant import MIN_BITS


if TYPE_CHECKING:
    from optuna_kmtpe._compress.cost import DSPPackingModel
    from optuna_kmtpe._compress.limits import HardwareLimits


__all__ = ["CostSurrogate", "LearnedBits", "learn_bits", "project_bits"]

#: Bits the cost model charges for a layer outside ``allowed`` (kept in float: FiP16).
_FLOAT_BITS = 16
#: Largest change of log(lambda) in one step.
_MAX_LOG_STEP = 1.0
_LAMBDA_RANGE = (1e-8, 1e6)


@dataclass(frozen=True)
class LearnedBits:
    """What :func:`learn_bits` found.

    Attributes:
        learned: Searched layer -> its continuous bit-width at the end of the training.
        rounded: Searched layer -> the nearest allowed bit-width (ties to the lower).
        allocation: The projected configuration (``method`` ``"learned"``), which meets the
            limits; every layer of the cost model.
        lambdas: Set limit -> its final penalty weight.
        relative_cost: Set limit -> the surrogate's ``P(b) / limit`` at the learned bits.
        epochs: Training epochs run.
        steps: Bit-width updates (training steps) made.
    """

    learned: dict[str, float]
    rounded: dict[str, int]
    allocation: Allocation
    lambdas: dict[str, float]
    relative_cost: dict[str, float]
    epochs: int
    steps: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the allocation, which the caller reports)."""
        return {
            "learned_bits": dict(self.learned),
            "rounded_bits": dict(self.rounded),
            "lambdas": dict(self.lambdas),
            "relative_cost": dict(self.relative_cost),
            "epochs": self.epochs,
            "steps": self.steps,
        }


class CostSurrogate:
    """The cost model's size, cycles and energy as differentiable functions of real bits.

    Per layer and metric: the lower convex hull of the exact per-layer term at the layer's
    allowed bit-widths, linear in between (see the module docstring). Layers outside
    ``allowed`` cost their ``fixed`` bits (default 16). Widths are 1.

    Args:
        cost: The cost model.
        allowed: Searched layer -> its allowed bit-widths.
        fixed: Bits of the other layers (default 16).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from optuna_kmtpe._compress.cost import DSPPackingModel
        >>> cost = DSPPackingModel(nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 4)), (10,))
        >>> surrogate = CostSurrogate(cost, {"0": (8, 2), "1": (8, 2)})
        >>> bits = {"0": torch.tensor(8.0), "1": torch.tensor(2.0)}
        >>> float(surrogate(bits)["size_mb"]) == cost.evaluate([8, 2]).size_mb
        True
    """

    def __init__(
        self,
        cost: DSPPackingModel,
        allowed: Mapping[str, Sequence[int]],
        fixed: Mapping[str, int] | None = None,
    ) -> None:
        _check_allowed(cost, allowed)
        fixed = dict(fixed or {})
        bit_sets = {n: sorted({int(b) for b in allowed[n]}) for n in allowed}
        rows = {b: cost.evaluate(b).per_layer for b in {b for s in bit_sets.values() for b in s}}
        base_bits = [fixed.get(n, _FLOAT_BITS) for n in cost.layer_names]
        base = cost.evaluate(
            [_FLOAT_BITS if n in allowed else b for n, b in zip(cost.layer_names, base_bits)]
        )
        index = {n: i for i, n in enumerate(cost.layer_names)}
        outside = np.array([n not in allowed for n in cost.layer_names])
        terms: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
            "size_mb": lambda r: r["weights"] * r["bits"] / 8.0 / 1e6,
            "cycles": lambda r: r["cycles"].astype(float),
            "energy_mj": lambda r: r["energy_uj"] * 1e-3,
        }
        self.clock_hz = cost.clock_hz
        self.layers = tuple(allowed)
        self.fixed = {k: float(np.sum(f(base.per_layer)[outside])) for k, f in terms.items()}
        self._hulls: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        for metric, term in terms.items():
            per_layer = {}
            for name, bits in bit_sets.items():
                values = [float(term(rows[b])[index[name]]) for b in bits]
                xs, ys = _lower_hull([float(b) for b in bits], values)
                per_layer[name] = (
                    torch.tensor(xs, dtype=torch.float64),
                    torch.tensor(ys, dtype=torch.float64),
                )
            self._hulls[metric] = per_layer

    def __call__(self, bits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``size_mb``, ``cycles`` and ``energy_mj`` of real bit-widths (0-d tensors)."""
        out = {}
        for metric, per_layer in self._hulls.items():
            total = torch.tensor(self.fixed[metric], dtype=torch.float64)
            for name, (xs, ys) in per_layer.items():
                total = total + _interpolate(bits[name].double().cpu(), xs, ys)
            out[metric] = total
        return out

    def relative(
        self, bits: Mapping[str, torch.Tensor], limits: HardwareLimits
    ) -> dict[str, torch.Tensor]:
        """``P_k(bits) / limit_k`` per set limit (throughput and latency both bound cycles)."""
        cost = self(bits)
        out = {}
        if limits.size_mb is not None:
            out["size_mb"] = cost["size_mb"] / limits.size_mb
        latency_s = min(
            limits.latency_ms / 1e3 if limits.latency_ms is not None else math.inf,
            1.0 / limits.throughput_fps if limits.throughput_fps is not None else math.inf,
        )
        if latency_s < math.inf:
            out["cycles"] = cost["cycles"] / (latency_s * self.clock_hz)
        if limits.energy_mj is not None:
            out["energy_mj"] = cost["energy_mj"] / limits.energy_mj
        return out


def _lower_hull(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Corners of the lower convex hull of the points (``xs`` ascending)."""
    hull: list[tuple[float, float]] = []
    for p in zip(xs, ys):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) >= (p[1] - y1) * (x2 - x1):  # middle not below the chord
                hull.pop()
            else:
                break
        hull.append(p)
    return [p[0] for p in hull], [p[1] for p in hull]


def _interpolate(b: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Piecewise linear through ``(xs, ys)``, constant outside (one corner: constant)."""
    value = ys[0] + 0.0 * b
    for i in range(len(xs) - 1):
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        value = value + slope * torch.clamp(b - xs[i], min=0.0, max=float(xs[i + 1] - xs[i]))
    return value


# --- The differentiable quantiser ----------------------------------------------------------


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def learned_weight_quant(weight: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel quantisation of ``weight`` at real ``bits``.

    Equal to :func:`~optuna_kmtpe._compress.quant.fake_quantize_weight` at integer bits.

    Example:
        >>> w = torch.tensor([[1.0, -0.4, 0.2], [0.3, 0.0, -0.15]])
        >>> learned_weight_quant(w, torch.tensor(2.0)).tolist()
        [[1.0, 0.0, 0.0], [0.30000001192092896, 0.0, 0.0]]
    """
    q = 2.0 ** (bits - 1.0) - 1.0
    amax = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    scale = (amax / q).reshape(-1, *([1] * (weight.dim() - 1)))
    return _ste_round(weight / scale) * scale


def learned_activation_quant(
    x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: torch.Tensor
) -> torch.Tensor:
    """Affine per-tensor quantisation of ``x`` over ``[lo, hi]`` (and 0) at real ``bits``.

    Equal to :func:`~optuna_kmtpe._compress.quant.fake_quantize_activation` at integer bits.

    Example:
        >>> learned_activation_quant(
        ...     torch.tensor([0.2, 1.6, 5.0]),
        ...     torch.tensor(0.0),
        ...     torch.tensor(3.0),
        ...     torch.tensor(2.0),
        ... ).tolist()
        [0.0, 2.0, 3.0]
    """
    levels = 2.0**bits - 1.0
    lo = torch.clamp(lo.float(), max=0.0)
    hi = torch.clamp(hi.float(), min=0.0)
    width = hi - lo
    scale = torch.where(width > 0, width / levels, torch.ones_like(levels))
    zero = torch.minimum(torch.round(-lo / scale), levels).detach()
    v = torch.minimum(torch.clamp(x / scale + zero, min=0.0), levels)
    return (_ste_round(v) - zero) * scale


class _LearnedLayer(nn.Module):
    """A Conv1d / Conv2d / Linear with weights and input quantised at a learnable ``bits``."""

    def __init__(self, layer: nn.Conv1d | nn.Conv2d | nn.Linear, bits: torch.Tensor) -> None:
        super().__init__()
        self.layer = layer
        self.act_range = _ActRange()
        self.bits = bits  # not a parameter: the caller's optimiser must not see it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi, guard = self.act_range.update(x)
        xq = learned_activation_quant(x, lo, hi, self.bits) + guard
        w = learned_weight_quant(self.layer.weight, self.bits)
        if isinstance(self.layer, nn.Linear):
            return F.linear(xq, w, self.layer.bias)
        return self.layer._conv_forward(xq, w, self.layer.bias)


@dataclass
class _BitStepper:
    """Steps the bits (Adam on loss + penalty) and the penalty weights (dual ascent)."""

    bits: dict[str, torch.Tensor]
    bounds: dict[str, tuple[float, float]]
    surrogate: CostSurrogate
    limits: HardwareLimits
    lr: float
    dual_rate: float

    def __post_init__(self) -> None:
        self.free = [t for t in self.bits.values() if t.requires_grad]
        self.optimizer = torch.optim.Adam(self.free, lr=self.lr) if self.free else None
        self.lambdas: dict[str, float] = {}
        self.steps = 0

    def before_forward(self, module: nn.Module, args: Any) -> None:
        if module.training:
            self.step()

    def step(self) -> None:
        """One update, if the last backward pass left a gradient on the bits."""
        if self.optimizer is None or all(t.grad is None for t in self.free):
            return
        with torch.enable_grad():
            ratios = self.surrogate.relative(self.bits, self.limits)
            if not self.lambdas:
                self._balance(ratios)
            penalty = sum(
                (self.lambdas[k] * r for k, r in ratios.items()),
                torch.zeros((), dtype=torch.float64),
            )
            grads = (
                torch.autograd.grad(penalty, self.free, allow_unused=True)
                if penalty.requires_grad
                else [None] * len(self.free)
            )
        for t, g in zip(self.free, grads):
            if t.grad is None:
                t.grad = torch.zeros_like(t)
            if g is not None:
                t.grad = t.grad + g.to(t.grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, t in self.bits.items():
                t.clamp_(*self.bounds[name])
        for k, r in ratios.items():
            log_step = min(_MAX_LOG_STEP, self.dual_rate * (float(r.detach()) - 1.0))
            self.lambdas[k] = float(np.clip(self.lambdas[k] * math.exp(log_step), *_LAMBDA_RANGE))
        self.steps += 1

    def _balance(self, ratios: dict[str, torch.Tensor]) -> None:
        """First penalty weights: each limit's gradient as long as the loss's / #limits."""
        task = float(torch.stack([t.grad.norm() for t in self.free if t.grad is not None]).norm())
        for k, r in ratios.items():
            grads = torch.autograd.grad(r, self.free, retain_graph=True, allow_unused=True)
            norm = float(torch.stack([g.norm() for g in grads if g is not None] or [r * 0]).norm())
            weight = task / norm / len(ratios) if norm > 0 and task > 0 else 1.0
            self.lambdas[k] = float(np.clip(weight, *_LAMBDA_RANGE))


def learn_bits(
    model: nn.Module,
    train_fn: Callable[..., None],
    cost: DSPPackingModel,
    limits: HardwareLimits,
    allowed: Mapping[str, Sequence[int]],
    fixed: Mapping[str, int] | None = None,
    *,
    epochs: int,
    seed: int = 0,
    lr: float = 0.1,
    dual_rate: float = 2.0,
) -> LearnedBits:
    """Learn per-layer bit-widths in one training run and project them onto ``allowed``.

    Args:
        model: The trained float model (not modified).
        train_fn: ``train_fn(model, epochs=..., seed=...)`` trains ``model`` in place.
        cost: Its cost model (widths 1).
        limits: Every set limit is penalised and met by the projection.
        allowed: Searched layer -> its allowed bit-widths (one entry: fixed bits). Other
            quantisable layers stay in float.
        fixed: Cost-model bits of the layers outside ``allowed`` (default 16).
        epochs: Training epochs (``>= 1``).
        seed: Passed to ``train_fn``.
        lr: Adam step size of the bit-widths (bits per step).
        dual_rate: Rate of the multiplicative dual ascent of the penalty weights.

    Raises:
        ValueError: Bad arguments (the message says which), or the limits cannot be met
            even at the fewest allowed bits.
    """
    _check_args(cost, allowed, epochs, lr, dual_rate)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    bounds = {n: (float(min(b)), float(max(b))) for n, b in allowed.items()}
    surrogate = CostSurrogate(cost, allowed, fixed)
    start = _start_bits(surrogate, limits, bounds)
    bits = {
        n: torch.tensor(start[n], device=device, requires_grad=lo < hi)
        for n, (lo, hi) in bounds.items()
    }
    net = copy.deepcopy(model)
    for name in allowed:
        layer = net.get_submodule(name)
        assert isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Linear), (name, type(layer))
        parent, _, child = name.rpartition(".")
        setattr(
            net.get_submodule(parent) if parent else net, child, _LearnedLayer(layer, bits[name])
        )
    stepper = _BitStepper(bits, bounds, surrogate, limits, float(lr), float(dual_rate))
    handle = net.register_forward_pre_hook(stepper.before_forward)
    try:
        train_fn(net, epochs=int(epochs), seed=int(seed))
    finally:
        handle.remove()
    stepper.step()  # the last batch's gradient
    learned = {n: float(t.detach()) for n, t in bits.items()}
    rounded = {n: _nearest(learned[n], allowed[n]) for n in allowed}
    relative = {k: float(r.detach()) for k, r in surrogate.relative(bits, limits).items()}
    return LearnedBits(
        learned=learned,
        rounded=rounded,
        allocation=project_bits(cost, limits, learned, allowed, fixed),
        lambdas=dict(stepper.lambdas),
        relative_cost=relative,
        epochs=int(epochs),
        steps=stepper.steps,
    )


def _start_bits(
    surrogate: CostSurrogate, limits: HardwareLimits, bounds: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """Every layer at the largest real uniform bit-width ``u`` (clipped to the layer's
    range) at which the surrogate meets every limit (bisection; the fewest bits if none)."""

    def at(u: float) -> dict[str, float]:
        return {n: min(max(u, lo), hi) for n, (lo, hi) in bounds.items()}

    def meets(u: float) -> bool:
        as_tensors = {n: torch.tensor(b) for n, b in at(u).items()}
        return all(float(r) <= 1.0 for r in surrogate.relative(as_tensors, limits).values())

    low = min(lo for lo, _ in bounds.values())
    high = max(hi for _, hi in bounds.values())
    if meets(high):
        return at(high)
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return at(low)


def project_bits(
    cost: DSPPackingModel,
    limits: HardwareLimits,
    learned: Mapping[str, float],
    allowed: Mapping[str, Sequence[int]],
    fixed: Mapping[str, int] | None = None,
) -> Allocation:
    """Round ``learned`` bits to the nearest ``allowed`` ones, then lower bits greedily until
    the limits hold (see the module docstring).

    Example:
        >>> from torch import nn
        >>> from optuna_kmtpe._compress.cost import DSPPackingModel
        >>> from optuna_kmtpe._compress.limits import HardwareLimits
        >>> cost = DSPPackingModel(nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 4)), (10,))
        >>> limits = HardwareLimits(size_mb=cost.evaluate([4, 4]).size_mb)
        >>> project_bits(cost, limits, {"0": 5.2, "1": 7.9}, {"0": (8, 4, 2), "1": (8, 4, 2)}).bits
        {'0': 2, '1': 8}
    """
    rounded = {n: _nearest(float(learned[n]), allowed[n]) for n in allowed}
    omega = {
        n: {int(b): 4.0 ** (float(learned[n]) - b) for b in set(allowed[n]) if b <= rounded[n]}
        for n in allowed
    }
    try:
        found = greedy_allocation(cost, limits, omega, fixed)
    except ValueError as e:
        raise ValueError(f"The learned baseline cannot meet the limits: {e}") from None
    return replace(found, method="learned", omega=math.nan)


def _nearest(value: float, allowed: Sequence[int]) -> int:
    return int(min(allowed, key=lambda b: (abs(b - value), b)))


def _check_args(
    cost: DSPPackingModel,
    allowed: Mapping[str, Sequence[int]],
    epochs: int,
    lr: float,
    dual_rate: float,
) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(
            f"`epochs` of the learned bit-widths must be an integer >= 1, got {epochs!r}."
        )
    for name, value in (("lr", lr), ("dual_rate", dual_rate)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    _check_allowed(cost, allowed)


def _check_allowed(cost: DSPPackingModel, allowed: Mapping[str, Sequence[int]]) -> None:
    if not allowed:
        raise ValueError("`allowed` is empty: give at least one layer's allowed bit-widths.")
    for name, choices in allowed.items():
        bad = [
            b
            for b in choices
            if isinstance(b, bool) or int(b) != b or not MIN_BITS <= b <= MAX_BITS
        ]
        if not choices or bad:
            raise ValueError(
                f"Allowed bit-widths of layer {name!r} must be integers in [{MIN_BITS}, "
                f"{MAX_BITS}], got {list(choices)}."
            )
    unknown = [n for n in allowed if n not in cost.layer_names]
    if unknown:
        raise ValueError(
            f"`allowed` names layers the cost model does not have: {unknown}; its layers "
            f"are {list(cost.layer_names)}."
        )
    unpacked = sorted({int(b) for c in allowed.values() for b in c} - set(PACKING))
    if unpacked:
        raise ValueError(
            f"Bit-widths {unpacked} have no packing rule in the cost model; use {sorted(PACKING)}."
        )
