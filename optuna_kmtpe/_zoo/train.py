"""Training and scoring of (fake-quantised) models on :class:`~optuna_kmtpe._zoo.data.DataSplits`.

One recipe for every phase, the paper's (section IV-B): Adam with weight decay 1e-4 and a
OneCycle learning-rate schedule peaking at ``max_lr`` (0.01), over ``epochs`` epochs. The
phases differ only in their length: the base model, each candidate (a few epochs, starting
from the base model's weights) and the final model (``final_epochs``, paper: 90).

A non-finite loss raises :class:`DivergenceError`, which ``kmtpe search`` turns into a FAILED
trial while the study goes on. Runs on CUDA when present, else on the CPU; seeds make a run
reproducible on the same device (``torch.manual_seed`` and a private generator for the
shuffling and augmentation).

Example:
    >>> from optuna_kmtpe._zoo.data import load_dataset
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> data = load_dataset("digits")
    >>> model = build_model("small_cnn", 10)
    >>> result = train(model, data, epochs=1, seed=0)
    >>> 0.0 <= evaluate(model, data, "val") <= 1.0
    True
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import time
from typing import TYPE_CHECKING

import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.loops import DivergenceError
from optuna_kmtpe._compress.loops import pick_device


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator

    from optuna_kmtpe._zoo.data import DataSplits


__all__ = [
    "DivergenceError",
    "TrainResult",
    "batches",
    "evaluate",
    "pick_device",
    "train",
]


@dataclass(frozen=True)
class TrainResult:
    """Summary of one :func:`train` call.

    Attributes:
        epochs: Epochs run.
        steps: Optimiser steps taken.
        final_loss: Mean training loss of the last epoch (``nan`` after 0 epochs).
        seconds: Wall time.
    """

    epochs: int
    steps: int
    final_loss: float
    seconds: float


def batches(
    data: DataSplits,
    split: str,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield prepared ``(images, labels)`` batches of a split (augmented for ``train``)."""
    images, labels = getattr(data, split)
    n = len(labels)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    device = device or torch.device("cpu")
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = images[idx].to(device, non_blocking=True)
        x = data.prepare(x, train=split == "train", generator=generator if x.is_cpu else None)
        yield x, labels[idx].to(device, non_blocking=True)


def train(
    model: nn.Module,
    data: DataSplits,
    *,
    epochs: int,
    max_lr: float = 0.01,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place with Adam + OneCycle (the paper's recipe).

    Args:
        model: The model (float or fake-quantised); moved to ``device``.
        data: The dataset; trains on ``data.train``.
        epochs: Passes over the training split (0: nothing happens).
        max_lr: Peak learning rate of the OneCycle schedule.
        weight_decay: Adam's (L2) weight decay.
        batch_size: Images per step.
        seed: Seeds the initial state of torch's RNG and the batch order.
        device: Where to train (default: :func:`pick_device`).
        on_epoch: Called as ``on_epoch(epoch, mean_loss)`` after each epoch.

    Raises:
        DivergenceError: The loss became NaN or infinite; names the epoch and step.
    """
    if epochs < 0 or int(epochs) != epochs:
        raise ValueError(f"`epochs` must be a non-negative integer, got {epochs!r}.")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    model.to(dev)
    start = time.perf_counter()
    n = len(data.train[1])
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    if epochs == 0:
        return TrainResult(0, 0, math.nan, 0.0)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=max_lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    model.train()
    step = 0
    mean_loss = math.nan
    for epoch in range(epochs):
        total = torch.zeros((), device=dev)
        count = 0
        for x, y in batches(
            data, "train", batch_size, shuffle=True, generator=generator, device=dev
        ):
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise DivergenceError(
                    f"Training loss became {loss.item()} at epoch {epoch + 1}/{epochs}, step "
                    f"{step + 1} (max_lr={max_lr:g})."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if step < epochs * steps_per_epoch - 1:
                scheduler.step()
            step += 1
            total += loss.detach() * len(y)
            count += len(y)
        mean_loss = float(total) / max(count, 1)
        if on_epoch is not None:
            on_epoch(epoch + 1, mean_loss)
    return TrainResult(epochs, step, mean_loss, time.perf_counter() - start)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DataSplits,
    split: str = "val",
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> float:
    """Top-1 accuracy (in [0, 1]) of ``model`` on a split, in eval mode.

    Raises:
        DivergenceError: The model outputs NaN or infinite logits.
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    n = 0
    try:
        for x, y in batches(data, split, batch_size, device=dev):
            logits = model(x)
            if not torch.isfinite(logits).all():
                raise DivergenceError(f"The model outputs NaN or infinite logits on {split}.")
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
    finally:
        model.train(was_training)
    return float(correct) / max(n, 1)
