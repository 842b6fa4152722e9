"""Training and scoring loops over any ``(inputs, targets)`` batches (PyTorch ``DataLoader``).

The recipe is the paper's (section IV-B), the same as the built-in datasets get: Adam with
weight decay 1e-4 and a OneCycle schedule peaking at ``lr`` over ``epochs`` epochs, unless an
``optimizer`` factory is given (then it is used as it is, without a schedule). A non-finite
loss raises :class:`DivergenceError` (the search records the trial as FAILED and goes on).

Example:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    >>> net = nn.Linear(4, 3)
    >>> train_on_batches(net, loader, epochs=1, seed=0)
    >>> 0.0 <= evaluate_on_batches(net, loader) <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import math
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F


__all__ = [
    "DivergenceError",
    "LossFn",
    "MetricFn",
    "OptimizerFactory",
    "accuracy",
    "evaluate_on_batches",
    "pick_device",
    "to_device",
    "train_on_batches",
]

#: ``loss_fn(outputs, targets) -> scalar tensor``.
LossFn = Callable[[Any, Any], torch.Tensor]
#: ``metric_fn(outputs, targets) -> float``: the batch's mean score (higher is better).
MetricFn = Callable[[Any, Any], float]
#: ``optimizer(parameters) -> torch.optim.Optimizer``.
OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite (the candidate diverged)."""


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy of a batch of logits (the default metric)."""
    return float((outputs.argmax(dim=1) == targets).float().mean())


def to_device(x: Any, device: torch.device) -> Any:
    """``x`` (a tensor, or lists / tuples / dicts of them) on ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    return x


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU.

    Raises:
        ValueError: ``device`` names CUDA but none is available, or is not a device.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"Unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} requested but CUDA is not available here.")
    return dev


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def train_on_batches(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    epochs: int,
    lr: float = 1e-3,
    loss_fn: LossFn = F.cross_entropy,
    optimizer: OptimizerFactory | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> None:
    """Train ``model`` in place for ``epochs`` passes over ``batches`` (re-iterated per epoch).

    ``on_epoch(epoch, mean_loss)`` is called after each epoch (``epoch`` from 1, the mean of
    its batch losses); an exception it raises stops the training and propagates.

    Raises:
        DivergenceError: The loss became NaN or infinite; names the epoch and step.
    """
    if epochs <= 0:
        return
    torch.manual_seed(seed)
    device = _device_of(model)
    steps_per_epoch = _length(batches)
    if optimizer is None:
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
        total_steps = epochs * steps_per_epoch if steps_per_epoch else None
        scheduler = (
            torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
            if total_steps
            else None
        )
    else:
        opt, scheduler, total_steps = optimizer(model.parameters()), None, None
    model.train()
    step = 0
    for epoch in range(epochs):
        losses: list[torch.Tensor] = []
        for x, y in batches:
            loss = loss_fn(model(to_device(x, device)), to_device(y, device))
            if not torch.isfinite(loss):
                raise DivergenceError(
                    f"Training loss became {loss.item()} at epoch {epoch + 1}/{epochs}, step "
                    f"{step + 1} (lr={lr:g})."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if scheduler is not None and total_steps is not None and step < total_steps - 1:
                scheduler.step()
            step += 1
            if on_epoch is not None:
                losses.append(loss.detach())
        if on_epoch is not None:
            on_epoch(epoch + 1, float(torch.stack(losses).mean()) if losses else math.nan)


@torch.no_grad()
def evaluate_on_batches(
    model: nn.Module, batches: Iterable[Any], *, metric_fn: MetricFn = accuracy
) -> float:
    """Sample-weighted mean of ``metric_fn`` over ``batches``, in eval mode.

    Raises:
        DivergenceError: The model outputs NaN or infinite values.
    """
    device = _device_of(model)
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for x, y in batches:
            out = model(to_device(x, device))
            if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
                raise DivergenceError("The model outputs NaN or infinite values.")
            size = len(y)
            total += float(metric_fn(out, to_device(y, device))) * size
            n += size
    finally:
        model.train(was_training)
    return total / n if n else math.nan


def _length(batches: Iterable[Any]) -> int:
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return 0
