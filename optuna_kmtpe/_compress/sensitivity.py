"""Per-layer Hessian traces by Hutchinson's method (paper section III-A).

For every Conv / Linear weight ``W_l`` of a model we estimate ``tr(H_ll)``, the trace of the
Hessian of the loss with respect to ``W_l`` alone, as the mean of ``v^T H_ll v`` over
Rademacher vectors ``v`` (entries +-1), each with an honest standard error.

Design (measured on a CIFAR ResNet-20, see ``docs/sensitivity.md``):

* Probes are per layer: ``v`` is nonzero on one layer's weight only, so a sample is
  ``v_l^T H_ll v_l``. One whole-model probe is cheaper per sample, but its layer-``l`` part
  ``v_l^T (H v)_l`` carries the cross terms ``v_l^T H_lm v_m``, which made it 7-4000x noisier.
* One gradient graph (``create_graph=True``) per batch serves every probe on that batch
  (``retain_graph=True``); it is freed before the next batch is loaded.
* Adaptive stopping: a layer whose relative standard error reached ``rtol`` is no longer
  probed. Probes of a late layer are cheap (the double backward stops at that layer), probes
  of an early one cost nearly a whole-model product, and the noisy layers are rarely the
  expensive ones, so this is where most of the time goes away.
* Batched probes (``is_grads_batched=True``, i.e. ``vmap`` over probe vectors) were slower
  per sample than a loop on CPU and are not used.

Sampling and standard errors: every sample is one (batch, probe) pair; samples cycle over the
batches so that each batch gets the same number of probes (up to one). The estimate is the
mean of all samples, i.e. the trace of the Hessian of the loss averaged over the given
batches, and the standard error is the sample standard deviation over all samples divided by
``sqrt(n)``. With several batches this also counts the spread between batches, which makes
it conservative for the given batches. It is *not* an error bar for the trace over the whole
data set: with ``B`` random batches of spread ``s_b`` and ``n`` probes of spread ``s_w``, that
error is ``sqrt(s_b**2 / B + s_w**2 / n)``, while the pooled formula gives about
``sqrt((s_b**2 + s_w**2) / n)``, which is smaller as soon as a batch gets several probes.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import contextlib
from dataclasses import asdict
from dataclasses import dataclass
import math
import secrets
import time
from typing import Any
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from optuna_kmtpe._compress.layers import quantisable_layers
from optuna_kmtpe._compress.layers import QUANTISABLE_TYPES


__all__ = ["TraceEstimate", "hessian_traces", "LAYER_TYPES"]

#: Module types whose ``weight`` gets a trace: the quantisable layers of
#: :mod:`optuna_kmtpe._compress.layers` (one definition for traces, bits, widths and cost).
LAYER_TYPES: tuple[type[nn.Module], ...] = QUANTISABLE_TYPES

_METHODS = ("adaptive", "layerwise", "whole")


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate of the trace of one layer's Hessian block.

    Attributes:
        trace: Estimated ``tr(H_ll)`` (mean of the samples).
        stderr: Standard error of ``trace`` (sample s.d. / sqrt(n_samples)); ``inf`` with
            fewer than two samples.
        numel: Number of weights in the layer.
        n_samples: Number of (batch, probe) samples used.

    Example:
        >>> est = TraceEstimate(trace=12.0, stderr=0.6, numel=2304, n_samples=40)
        >>> round(est.normalized, 6), round(est.rel_stderr, 6)
        (0.005208, 0.05)
    """

    trace: float
    stderr: float
    numel: int
    n_samples: int

    @property
    def normalized(self) -> float:
        """Trace divided by the number of weights (the paper's sensitivity)."""
        return self.trace / self.numel

    @property
    def normalized_stderr(self) -> float:
        """Standard error of :attr:`normalized`."""
        return self.stderr / self.numel

    @property
    def rel_stderr(self) -> float:
        """``stderr / |trace|`` (``inf`` for a zero trace with nonzero spread)."""
        if self.trace == 0.0:
            return 0.0 if self.stderr == 0.0 else math.inf
        return self.stderr / abs(self.trace)

    def to_dict(self) -> dict[str, float | int]:
        """Fields plus ``normalized`` and ``rel_stderr``, for JSON."""
        out: dict[str, float | int] = dict(asdict(self))
        out["normalized"] = self.normalized
        out["rel_stderr"] = self.rel_stderr
        return out


class _Samples:
    """Running sums of one layer's samples (float64, Welford)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (x - self.mean)

    @property
    def stderr(self) -> float:
        if self.n < 2:
            return math.inf
        return math.sqrt(self._m2 / (self.n - 1) / self.n)

    @property
    def sd(self) -> float:
        return math.sqrt(self._m2 / (self.n - 1)) if self.n >= 2 else math.inf

    def converged(self, rtol: float, min_samples: int) -> bool:
        if self.n < max(min_samples, 2):
            return False
        return self.stderr <= rtol * abs(self.mean)

    def needed(self, rtol: float) -> float:
        """Predicted total samples to reach ``rtol`` from the current s.d. and mean."""
        if self.n < 2:
            return math.inf
        if self.mean == 0.0:
            return 0.0 if self.sd == 0.0 else math.inf
        return (self.sd / (rtol * abs(self.mean))) ** 2 if rtol > 0 else math.inf


def _find_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    layers: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for name, module in quantisable_layers(model, allow_empty=True).items():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            if id(weight) in seen:  # tied weights: the first module owns the trace
                continue
            seen.add(id(weight))
            layers.append((name, weight))
    if not layers:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(
            "The model has no Conv / Linear layer with a weight, so there is no Hessian trace "
            f"to estimate (module types found: {', '.join(kinds)}). Supported layer types: "
            f"{', '.join(t.__name__ for t in LAYER_TYPES)}."
        )
    return layers


@contextlib.contextmanager
def _eval_with_weight_grads(model: nn.Module, weights: list[nn.Parameter]) -> Iterator[None]:
    """Eval mode (BatchNorm statistics frozen), grads only for ``weights``; restores both."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    targets = {id(w) for w in weights}
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(id(p) in targets)
        with torch.enable_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(e, device) for e in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _gradients(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batch: Any,
    weights: list[nn.Parameter],
    wanted: Iterable[int],
    device: torch.device,
    index: int,
) -> list[torch.Tensor | None]:
    """Gradients of the batch loss w.r.t. ``weights[wanted]`` (graph kept), None elsewhere."""
    try:
        inputs, targets = batch
    except (TypeError, ValueError):
        raise ValueError(
            f"Batch {index} is not an (inputs, targets) pair (got {type(batch).__name__}). "
            "Pass an iterable of (inputs, targets), e.g. a DataLoader or a list of tuples."
        ) from None
    outputs = model(_to_device(inputs, device))
    loss = loss_fn(outputs, _to_device(targets, device))
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(
            f"loss_fn must return a scalar (0-dim) tensor, got {shape} on batch {index}. "
            "Reduce it, e.g. with reduction='mean' or .mean()."
        )
    if not torch.isfinite(loss):
        raise ValueError(f"The loss on batch {index} is {loss.item()}; traces need a finite loss.")
    if not loss.requires_grad:
        raise ValueError("The loss does not depend on the model's Conv / Linear weights.")
    wanted = list(wanted)
    grads = torch.autograd.grad(
        loss, [weights[i] for i in wanted], create_graph=True, allow_unused=True
    )
    out: list[torch.Tensor | None] = [None] * len(weights)
    for i, g in zip(wanted, grads):
        out[i] = g
    return out


def _probe(
    grad: torch.Tensor | None,
    weight: nn.Parameter,
    v: torch.Tensor,
) -> float:
    """``v^T H v`` for one layer from its gradient graph (0 if the gradient is constant)."""
    if grad is None or not grad.requires_grad:
        return 0.0
    (hv,) = torch.autograd.grad(grad, weight, v, retain_graph=True, allow_unused=True)
    if hv is None:
        return 0.0
    return float(torch.sum(hv * v, dtype=torch.float64))


def _rademacher(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    v = torch.randint(0, 2, like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return v.mul_(2).sub_(1)


def hessian_traces(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Any],
    *,
    max_samples: int = 200,
    rtol: float = 0.1,
    min_samples: int = 5,
    seed: int | None = None,
    method: Literal["adaptive", "layerwise", "whole"] = "adaptive",
    time_limit: float | None = None,
    progress: bool = True,
) -> dict[str, TraceEstimate]:
    """Estimate the Hessian trace of every Conv / Linear weight with Hutchinson's method.

    Each sample is ``v^T H_ll v`` for a Rademacher vector ``v`` on one layer's weight and one
    batch; see the module docstring for the sampling scheme and why the standard errors are
    honest. The model is put in eval mode (BatchNorm statistics frozen) and its modes and
    ``requires_grad`` flags are restored afterwards; its ``.grad`` fields are not touched.
    Runs on the device of the model's parameters. ``batches`` is read once into a list (keep
    it to a few batches); one batch's gradient graph is alive at a time.

    Args:
        model: A PyTorch model with at least one Conv / Linear layer.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor`` (e.g. ``F.cross_entropy``).
        batches: Iterable of ``(inputs, targets)``; tensors are moved to the model's device.
        max_samples: Most samples per layer.
        rtol: Target relative standard error ``stderr / |trace|`` per layer; a layer that
            reaches it stops being probed (``method="adaptive"``). ``0`` means always
            ``max_samples``.
        min_samples: Samples a layer gets before its standard deviation is trusted (>= 2).
        seed: Seed of the probe vectors (``None``: fresh randomness).
        method: ``"adaptive"`` (default): per-layer probes, each layer stops on its own.
            ``"layerwise"``: per-layer probes of every layer each round until all layers
            reach ``rtol``. ``"whole"``: one whole-model Hessian-vector product per sample
            (cheap per sample, but cross-layer terms make it far noisier). The last two exist
            for comparison (``benchmarks/bench_hessian.py``).
        time_limit: Stop after this many seconds and return what was reached.
        progress: Show a tqdm bar on runs longer than two seconds.

    Returns:
        ``{qualified module name: TraceEstimate}`` in module order.

    Raises:
        ValueError: No Conv / Linear layer, no batches, a non-scalar or non-finite loss, or a
            non-finite Hessian-vector product; or bad arguments.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        >>> data = [(torch.randn(32, 4), torch.randint(0, 3, (32,)))]
        >>> traces = hessian_traces(model, nn.functional.cross_entropy, data, seed=0)
        >>> sorted(traces)
        ['0', '2']
        >>> all(t.rel_stderr <= 0.1 or t.n_samples == 200 for t in traces.values())
        True
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if not (isinstance(max_samples, int) and max_samples >= 1):
        raise ValueError(f"max_samples must be a positive int, got {max_samples!r}.")
    if not (isinstance(min_samples, int) and min_samples >= 2):
        raise ValueError(f"min_samples must be an int >= 2, got {min_samples!r}.")
    if not (rtol >= 0.0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}.")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be positive or None, got {time_limit!r}.")

    layers = _find_layers(model)
    batch_list = list(batches)
    if not batch_list:
        raise ValueError("batches is empty: pass at least one (inputs, targets) batch.")
    names = [name for name, _ in layers]
    weights = [w for _, w in layers]
    device = weights[0].device
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63) if seed is None else seed)
    stats = [_Samples() for _ in layers]
    n_batches = len(batch_list)
    deadline = None if time_limit is None else time.perf_counter() + time_limit

    def done(i: int) -> bool:
        return stats[i].n >= max_samples or stats[i].converged(rtol, min_samples)

    def record(i: int, value: float, b: int) -> None:
        if not math.isfinite(value):
            raise ValueError(
                f"The Hessian-vector product of layer {names[i]!r} on batch {b} is {value}; "
                "check the model and loss for NaN / inf (e.g. a log of zero)."
            )
        stats[i].add(value)

    def per_batch_count(i: int) -> int:
        """Probes of layer ``i`` on each batch of the next round."""
        s = stats[i]
        if method != "adaptive" or n_batches == 1:
            return 1  # with one batch the graph is kept, so single steps cost nothing extra
        if s.n < min_samples:
            want: float = min_samples - s.n
        else:
            want = min(max(s.needed(rtol) - s.n, 1.0), float(s.n))  # at most double
        return max(1, math.ceil(min(want, max_samples - s.n) / n_batches))

    bar = tqdm(
        total=len(layers),
        desc="Hessian traces",
        unit="layer",
        delay=2.0,
        disable=not progress,
        leave=False,
    )
    cached: list[torch.Tensor | None] | None = None  # graph kept across rounds: one batch
    timed_out = False
    try:
        with _eval_with_weight_grads(model, weights):
            while not timed_out:
                if method == "adaptive":
                    active = [i for i in range(len(layers)) if not done(i)]
                else:
                    finished = all(done(i) for i in range(len(layers)))
                    active = [] if finished else list(range(len(layers)))
                    active = [i for i in active if stats[i].n < max_samples]
                if not active:
                    break
                counts = {i: per_batch_count(i) for i in active}
                for b, batch in enumerate(batch_list):
                    if n_batches == 1 and cached is not None:
                        grads = cached
                    else:
                        # Only the active layers' gradients; the others stay None.
                        wanted = range(len(layers)) if n_batches == 1 else active
                        grads = _gradients(model, loss_fn, batch, weights, wanted, device, b)
                        if n_batches == 1:
                            cached = grads
                    if method == "whole":
                        vs = [_rademacher(w, generator) for w in weights]
                        live = [(i, g) for i, g in enumerate(grads) if g is not None]
                        live = [(i, g) for i, g in live if g.requires_grad]
                        hvs: list[torch.Tensor | None] = [None] * len(layers)
                        if live:
                            out = torch.autograd.grad(
                                [g for _, g in live],
                                weights,
                                [vs[i] for i, _ in live],
                                retain_graph=True,
                                allow_unused=True,
                            )
                            hvs = list(out)
                        for i in active:
                            hv = hvs[i]
                            value = 0.0
                            if hv is not None:
                                value = float(torch.sum(hv * vs[i], dtype=torch.float64))
                            record(i, value, b)
                    else:
                        for i in active:
                            for _ in range(counts[i]):
                                if stats[i].n >= max_samples:
                                    break
                                v = _rademacher(weights[i], generator)
                                record(i, _probe(grads[i], weights[i], v), b)
                                if deadline is not None and time.perf_counter() > deadline:
                                    timed_out = True
                                    break
                            if timed_out:
                                break
                    del grads
                    if deadline is not None and time.perf_counter() > deadline:
                        timed_out = True
                    if timed_out:
                        break
                bar.set_postfix(samples=sum(s.n for s in stats), refresh=False)
                bar.update(sum(done(i) for i in range(len(layers))) - bar.n)
    finally:
        cached = None
        bar.close()

    return {
        name: TraceEstimate(trace=s.mean, stderr=s.stderr, numel=weights[i].numel(), n_samples=s.n)
        for i, (name, s) in enumerate(zip(names, stats))
    }
