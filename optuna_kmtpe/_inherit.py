"""Initialise a width-scaled network from the trained width-1 network.

:func:`optuna_kmtpe._models.build_model` (through ``apply_widths``) builds a width-scaled
model with *freshly initialised* Conv / Linear / BatchNorm modules. A candidate trained for a
few epochs from scratch would be scored mostly on its initialisation, so
:func:`inherit_weights` copies the trained weights over instead, channel by channel:

* Channel ``j`` of a layer with ``n`` channels (old count ``m``) takes the trained channel
  ``j mod m``: narrower layers keep their first ``n`` channels (slicing), wider layers repeat
  channels ``0, 1, ...`` again (replication, as Net2WiderNet, Chen et al. 2016).
* On the *input* side of a Conv / Linear (dimension 1 of its weight), a replicated input
  channel's weights are divided by the number of copies of that channel, so a widened layer
  computes the same function as before (exactly for plain chains and torchvision-style
  residual blocks). Not for ResNet-20: its option-A shortcuts zero-pad at both ends of the
  channel axis, so in a widened stage replicated channels meet other shortcut channels than
  in the base model and the widened network is a different function (tested); there the
  inherited weights are only a starting point. Sliced inputs are dropped.
* The replicated *output* copies get a small seeded Gaussian perturbation (``noise`` times
  the layer's weight standard deviation) so that copies do not stay identical in training.
* A ``Linear`` that follows a ``flatten`` maps whole channel blocks (``in_factor`` features
  per channel, from the :class:`~optuna_kmtpe._widths.WidthPlan`).
* BatchNorm weights, biases and running statistics follow their channels (mod ``m``).
  Anything whose shape already matches is copied as is.

Example:
    >>> import torch
    >>> from optuna_kmtpe._models import build_model, width_plan
    >>> base = build_model("small_cnn", 10)
    >>> wide = build_model("small_cnn", 10, widths=[1.25, 1.25, 1, 1])
    >>> _ = inherit_weights(base, wide, width_plan("small_cnn", 10))
    >>> bool(torch.equal(wide.conv1.weight[:16], base.conv1.weight))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn


if TYPE_CHECKING:
    from optuna_kmtpe._widths import WidthPlan


__all__ = ["inherit_weights"]


def _cyclic(new: int, old: int, device: torch.device) -> torch.Tensor:
    return torch.arange(new, device=device) % old


@torch.no_grad()
def inherit_weights(
    source: nn.Module, target: nn.Module, plan: WidthPlan, *, noise: float = 0.01, seed: int = 0
) -> nn.Module:
    """Copy ``source``'s trained parameters and buffers into the width-scaled ``target``.

    Args:
        source: The trained model at width 1 (float or fake-quantised).
        target: The same architecture built with other width multipliers.
        plan: The models' :class:`~optuna_kmtpe._widths.WidthPlan`.
        noise: Relative standard deviation of the perturbation of replicated output channels.
        seed: Seed of that perturbation.

    Returns:
        ``target``, updated in place.

    Raises:
        ValueError: The two models do not have the same parameter and buffer names.
    """
    src = source.state_dict()
    dst = target.state_dict()
    if set(src) != set(dst):
        missing = sorted(set(dst) - set(src))[:10]
        extra = sorted(set(src) - set(dst))[:10]
        raise ValueError(
            f"Cannot inherit weights between different architectures: the source lacks "
            f"{missing} and has extra {extra}."
        )
    layer_index = {name: i for i, name in enumerate(plan.names)}
    generator = torch.Generator().manual_seed(seed)
    for key, new in dst.items():
        old = src[key].to(new.device)
        if old.shape == new.shape:
            new.copy_(old)
            continue
        if old.dim() != new.dim():
            raise ValueError(f"{key}: cannot map shape {tuple(old.shape)} to {tuple(new.shape)}.")
        module, _, attr = key.rpartition(".")
        value = old
        in_factor = 1
        if module in layer_index and attr == "weight" and old.dim() >= 2:
            in_factor = int(plan.in_factor[layer_index[module]])
            value = _map_inputs(value, new.shape[1], in_factor)
        if value.shape[0] != new.shape[0]:
            value = _map_outputs(value, new.shape[0], noise, generator)
        if value.shape != new.shape:
            raise ValueError(f"{key}: cannot map shape {tuple(old.shape)} to {tuple(new.shape)}.")
        new.copy_(value)
    target.load_state_dict(dst)
    return target


def _map_inputs(weight: torch.Tensor, new_in: int, in_factor: int) -> torch.Tensor:
    """Slice / replicate dimension 1 by channel; divide replicated channels by their count."""
    old_in = weight.shape[1]
    if old_in == new_in:
        return weight
    old_c, new_c = old_in // in_factor, new_in // in_factor
    shape = weight.shape
    blocks = weight.reshape(shape[0], old_c, in_factor, *shape[2:])
    index = _cyclic(new_c, old_c, weight.device)
    counts = torch.bincount(index, minlength=old_c).to(weight.dtype)
    mapped = blocks[:, index] / counts[index].reshape(1, -1, *([1] * (blocks.dim() - 2)))
    return mapped.reshape(shape[0], new_in, *shape[2:])


def _map_outputs(
    value: torch.Tensor, new_out: int, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """Slice / replicate dimension 0; perturb the replicated copies of weight tensors."""
    old_out = value.shape[0]
    mapped = value[_cyclic(new_out, old_out, value.device)].clone()
    if new_out > old_out and value.dim() >= 2 and noise > 0 and value.is_floating_point():
        extra = mapped[old_out:]
        std = float(value.std()) if value.numel() > 1 else 0.0
        perturb = torch.randn(extra.shape, generator=generator, dtype=extra.dtype)
        mapped[old_out:] = extra + noise * std * perturb.to(extra.device)
    return mapped
