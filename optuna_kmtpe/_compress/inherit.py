"""Initialise a width-scaled network from the trained width-1 network.

:func:`optuna_kmtpe._zoo.models.build_model` (through ``apply_widths``) builds a width-scaled
model with *freshly initialised* Conv / Linear / BatchNorm modules. A candidate trained for a
few epochs from scratch would be scored mostly on its initialisation, so
:func:`inherit_weights` copies the trained weights over instead, channel by channel, through
one *channel map* per width group (:func:`channel_maps`: new channel -> trained channel):

* Channel ``j`` of a widened group with ``n`` channels (old count ``m``) takes the trained
  channel ``j mod m``: wider groups repeat channels ``0, 1, ...`` again (replication, as
  Net2WiderNet, Chen et al. 2016). A narrowed group keeps by default (``narrow="magnitude"``)
  its ``n`` trained channels of largest L1 weight norm (summed over the group's layers), in
  their original order, as magnitude filter pruning does (Li et al., ICLR 2017); with
  ``narrow="first"`` (the rule before it was measured, docs/results.md) its first ``n``
  channels (slicing). Depthwise layers follow their input's map.
* A group fed by a zero-padding channel adapter (ResNet-20's option-A shortcut at a stage
  transition, probed on channel indices) gets a *shortcut-aligned* map
  (:func:`shortcut_aligned_map`): a channel where the widened shortcut adds a copy of trained
  input channel ``c`` takes the trained channel where the base shortcut adds ``c``; the other
  (zero-padded) channels cycle over the base's zero-padded channels. So every channel sees
  the same shortcut as the trained channel it copies.
* On the *input* side of a Conv / Linear (dimension 1 of its weight) the producer's map is
  used and a replicated input channel's weights are divided by its number of copies. Sliced
  inputs are dropped. A ``Linear`` that follows a ``flatten`` maps whole channel blocks
  (``in_factor`` features per channel, from the :class:`~optuna_kmtpe._compress.widths.WidthPlan`).
* BatchNorm weights, biases and running statistics follow their layer's map. Other tensors
  (scalars such as quantiser ranges) are copied as they are.
* Output rows that repeat an earlier row's trained channel get a small seeded Gaussian
  perturbation (``noise`` times the layer's weight standard deviation) so that copies do not
  stay identical in training; the first copy of each trained channel is exact.

What is preserved (``noise=0``, eval mode; tested): a widened network computes the same
function as the trained one when every map covers all trained channels. That holds for plain
chains, depthwise chains and torchvision-style residual blocks whenever no group is narrowed,
and for ResNet-20 when, in addition, at each stage transition (trained ``C_in -> C_out``,
scaled ``C_in' -> C_out'``) the scaled stage keeps at least as many zero-padded channels:
``C_out' - C_in' >= C_out - C_in``. Every uniform multiplier ``>= 1`` satisfies this, as does
any per-stage widening with ``2 w_next - w_prev >= 1`` up to rounding (e.g. 1.125 / 1.25 /
1.5), but e.g. stages at 1.25 / 1 / 1 do not: the 20 shortcut channels leave only 12 of
stage 2's 16 zero-padded trained channels a place. Such networks, and narrowed ones (any
multiplier ``< 1``), lose the trained channels without a place and are only a starting
point for training: narrowed groups keep their largest (or first) channels, or, behind a
shortcut, the channels the shortcut lines up with and then the first zero-padded ones.

Example:
    >>> import torch
    >>> from optuna_kmtpe._zoo.models import build_model, width_plan
    >>> base = build_model("small_cnn", 10)
    >>> wide = build_model("small_cnn", 10, widths=[1.25, 1.25, 1, 1])
    >>> _ = inherit_weights(base, wide, width_plan("small_cnn", 10))
    >>> bool(torch.equal(wide.conv1.weight[:16], base.conv1.weight))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn


if TYPE_CHECKING:
    from optuna_kmtpe._compress.widths import WidthPlan


__all__ = ["NARROW_RULES", "channel_maps", "inherit_weights"]


NARROW_RULES = ("first", "magnitude")


@torch.no_grad()
def inherit_weights(
    source: nn.Module,
    target: nn.Module,
    plan: WidthPlan,
    *,
    noise: float = 0.01,
    seed: int = 0,
    narrow: str = "magnitude",
) -> nn.Module:
    """Copy ``source``'s trained parameters and buffers into the width-scaled ``target``.

    Args:
        source: The trained model at width 1 (float or fake-quantised).
        target: The same architecture built with other width multipliers.
        plan: The models' :class:`~optuna_kmtpe._compress.widths.WidthPlan`.
        noise: Relative standard deviation of the perturbation of replicated output channels.
        seed: Seed of that perturbation.
        narrow: Which trained channels a narrowed group keeps: those of largest L1 weight
            norm (``"magnitude"``, default) or its first ones (``"first"``); see the module
            docstring.

    Returns:
        ``target``, updated in place.

    Raises:
        ValueError: The two models do not have the same parameter and buffer names, or a
            tensor outside the planned layers changed shape.
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
    if narrow not in NARROW_RULES:
        raise ValueError(f"`narrow` must be one of {NARROW_RULES}, got {narrow!r}.")
    importance = _channel_importance(src, plan) if narrow == "magnitude" else None
    maps = channel_maps(plan, target, importance=importance)
    layer_index = {name: i for i, name in enumerate(plan.names)}
    generator = torch.Generator().manual_seed(seed)
    for key, new in dst.items():
        old = src[key].to(new.device)
        module, _, attr = key.rpartition(".")
        layer = layer_index.get(module, plan.norms.get(module))
        value = old
        if layer is not None and old.dim() > 0:
            if module in layer_index and attr == "weight" and plan.groups_base[layer] == 1:
                inputs = maps[int(plan.producer[layer])]
                value = _map_inputs(value, inputs, int(plan.in_factor[layer]))
            value = _map_outputs(value, maps[layer], noise, generator)
        if value.shape != new.shape:
            raise ValueError(f"{key}: cannot map shape {tuple(old.shape)} to {tuple(new.shape)}.")
        new.copy_(value)
    target.load_state_dict(dst)
    return target


def channel_maps(
    plan: WidthPlan, target: nn.Module, *, importance: dict[int, np.ndarray] | None = None
) -> dict[int, np.ndarray]:
    """For each layer of ``plan``, the trained output channel behind each channel of ``target``.

    Key ``-1`` is the model input (never rescaled). See the module docstring for the rules.

    Args:
        plan: The :class:`~optuna_kmtpe._compress.widths.WidthPlan` of the width-1 model.
        target: The width-scaled model (only its channel counts and adapters are read).
        importance: Group leader -> one score per trained channel; a narrowed plain group
            keeps its highest-scoring channels (in index order). ``None``: the first ones.

    Returns:
        Layer index -> integer array with one entry per output channel of ``target``'s layer.

    Raises:
        NotImplementedError: A channel adapter's input comes from a later layer.
    """
    maps = {-1: np.arange(plan.input_channels)}
    fed = {int(plan.leader[out]): (name, inp) for name, (inp, out) in plan.adapters.items()}
    base_out = np.append(plan.out_base, plan.input_channels)
    for i, name in enumerate(plan.names):
        layer = target.get_submodule(name)
        new = int(getattr(layer, "out_channels", getattr(layer, "out_features", 0)))
        leader = int(plan.leader[i])
        if plan.depthwise[i]:
            ratio = int(plan.depth_ratio[i])
            j = np.arange(new)
            maps[i] = maps[int(plan.producer[i])][j // ratio] * ratio + j % ratio
        elif leader < i:
            maps[i] = maps[leader]
        elif i in fed:
            adapter_name, inp = fed[i]
            if inp not in maps:  # producers come before consumers in supported graphs
                raise NotImplementedError(f"{adapter_name!r} is fed by a later layer.")
            adapter = target.get_submodule(adapter_name)
            base = _adapter_sources(adapter, int(base_out[inp]), int(plan.out_base[i]))
            wide = _adapter_sources(adapter, len(maps[inp]), new)
            maps[i] = shortcut_aligned_map(base, wide, maps[inp])
        elif importance is not None and new < plan.out_base[i]:
            keep = np.argsort(-importance[i], kind="stable")[:new]
            maps[i] = np.sort(keep)
        else:
            maps[i] = np.arange(new) % plan.out_base[i]
    return maps


def _channel_importance(state: dict[str, torch.Tensor], plan: WidthPlan) -> dict[int, np.ndarray]:
    """Group leader -> L1 norm of each trained output channel, summed over the group's layers."""
    importance: dict[int, np.ndarray] = {}
    for i, name in enumerate(plan.names):
        if plan.depthwise[i]:  # follows its input's map; never narrowed on its own
            continue
        norms = state[f"{name}.weight"].detach().abs().flatten(1).sum(1).double().cpu().numpy()
        leader = int(plan.leader[i])
        importance[leader] = importance.get(leader, 0.0) + norms
    return importance


def shortcut_aligned_map(
    base_sources: np.ndarray, wide_sources: np.ndarray, input_map: np.ndarray
) -> np.ndarray:
    """Channel map of the residual stream behind a zero-padding shortcut.

    Args:
        base_sources: For each output channel of the width-1 adapter, the input channel it
            carries (``-1``: zero padding).
        wide_sources: The same for the width-scaled adapter.
        input_map: The channel map of the adapter's input (width-scaled -> trained channel).

    Returns:
        One trained channel per width-scaled output channel: where the wide shortcut carries
        a copy of trained input channel ``c``, the channel where the base shortcut carries
        ``c``; the other channels cycle over the base's zero-padded channels.

    Example:
        >>> base = np.r_[[-1] * 2, 0:2, [-1] * 2]  # 2 channels padded to 6
        >>> wide = np.r_[[-1] * 3, 0:3, [-1] * 3]  # 3 channels padded to 9
        >>> shortcut_aligned_map(base, wide, np.array([0, 1, 0])).tolist()
        [0, 1, 4, 2, 3, 2, 5, 0, 1]
    """
    carried = base_sources >= 0
    # Trained input channel -> base output channel carrying it (-1: none, e.g. truncated).
    lands = np.full(max(int(base_sources.max(initial=-1)), int(input_map.max())) + 1, -1)
    lands[base_sources[carried]] = np.flatnonzero(carried)
    result = np.full(len(wide_sources), -1)
    wide_carried = wide_sources >= 0
    result[wide_carried] = lands[input_map[wide_sources[wide_carried]]]
    free = result < 0
    padded = np.flatnonzero(~carried)
    pool = padded if padded.size else np.arange(len(base_sources))
    result[free] = pool[np.arange(int(free.sum())) % pool.size]
    return result


def _adapter_sources(adapter: nn.Module, in_channels: int, out_channels: int) -> np.ndarray:
    """Input channel carried by each output channel of a channel adapter (``-1``: zero)."""
    x = torch.arange(1, in_channels + 1, dtype=torch.float64).reshape(1, -1, 1, 1)
    like = torch.zeros(1, out_channels, 1, 1, dtype=torch.float64)
    out = adapter(x, like).reshape(out_channels)
    return out.round().long().numpy() - 1


def _map_inputs(weight: torch.Tensor, index: np.ndarray, in_factor: int) -> torch.Tensor:
    """Map dimension 1 by channel blocks; divide replicated channels by their count."""
    old_c = weight.shape[1] // in_factor
    shape = weight.shape
    blocks = weight.reshape(shape[0], old_c, in_factor, *shape[2:])
    idx = torch.as_tensor(index, device=weight.device)
    counts = torch.bincount(idx, minlength=old_c).to(weight.dtype)
    mapped = blocks[:, idx] / counts[idx].reshape(1, -1, *([1] * (blocks.dim() - 2)))
    return mapped.reshape(shape[0], len(index) * in_factor, *shape[2:])


def _map_outputs(
    value: torch.Tensor, index: np.ndarray, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """Map dimension 0; perturb weight rows that repeat an earlier row's trained channel."""
    mapped = value[torch.as_tensor(index, device=value.device)].clone()
    copies = np.ones(len(index), dtype=bool)
    copies[np.unique(index, return_index=True)[1]] = False
    if copies.any() and value.dim() >= 2 and noise > 0 and value.is_floating_point():
        rows = torch.as_tensor(np.flatnonzero(copies), device=value.device)
        std = float(value.std()) if value.numel() > 1 else 0.0
        perturb = torch.randn(mapped[rows].shape, generator=generator, dtype=value.dtype)
        mapped[rows] += noise * std * perturb.to(value.device)
    return mapped
