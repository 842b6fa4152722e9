"""Per-layer width multipliers: how they propagate through a network's graph.

A :class:`WidthPlan` is read once from a ``torch.fx`` trace of a width-1 model. It lists the
model's quantisable layers (:mod:`optuna_kmtpe._compress.layers`: ``Conv1d`` / ``Conv2d`` /
``Linear``) in ``named_modules()`` order and knows, for each, which
layer feeds its input, and which layers must share an output width because their outputs
meet in an elementwise operation (a residual addition). :meth:`WidthPlan.channels` then turns
one multiplier per layer into channel counts with NumPy only, so the cost model can evaluate
thousands of configurations per second, and :func:`optuna_kmtpe._zoo.models.build_model` uses the
same plan to build the width-scaled network, so the two always agree.

Rules (the docs in ``docs/cost_model.md`` repeat them):

* A layer's output channels are ``max(1, floor(base * w + 0.5))`` (round half up).
* The next layer's input channels follow (a ``Linear`` after ``flatten`` keeps its
  ``in_features / channels`` spatial factor).
* Depthwise convolutions (``groups == in_channels``) follow their input; their own multiplier
  is ignored.
* Layers whose outputs meet in ``+``, ``-``, ``*`` or ``/`` form a tie group; every member
  takes the multiplier of the group's first member in layer order (its *leader*), the others'
  multipliers are ignored.
* Layers whose outputs reach the model's output (the classifier), and groups tied to the
  model's input, keep their width-1 channel counts.
* A grouped convolution that is not depthwise (``1 < groups < in_channels``) keeps its
  channels and groups, and so does the layer that feeds it (through any depthwise chain):
  their tie groups keep width 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

import numpy as np


if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch


# A module that sets this attribute to an int ``i`` is a parameter-free channel adapter: its
# output has as many channels as its ``i``-th positional argument (e.g. the option-A shortcut
# of ResNet-20, which zero-pads its input to the residual branch's width). Its argument 0 is
# its input, and each output channel must be one input channel or zero:
# optuna_kmtpe._compress.inherit probes the channel layout by calling it on channel indices.
CHANNELS_FOLLOW_ARG = "_kmtpe_channels_follow_arg"

_INPUT = -1  # "channel source" of the model input.
# Elementwise operations whose tensor operands must have equal channel counts.
_TIE_NAMES = {"add", "add_", "iadd", "sub", "sub_", "isub", "mul", "mul_", "imul"}
_TIE_NAMES |= {"div", "div_", "truediv", "itruediv"}
_CONCAT_TARGETS = {"cat", "concat", "concatenate", "stack"}


def scaled_channels(base: np.ndarray | int, width: np.ndarray | float) -> np.ndarray:
    """Channel count after a width multiplier: ``max(1, floor(base * width + 0.5))``.

    Example:
        >>> int(scaled_channels(16, 0.875)), int(scaled_channels(3, 0.1))
        (14, 1)
    """
    return np.maximum(1, np.floor(np.asarray(base) * np.asarray(width) + 0.5)).astype(np.int64)


@dataclass(frozen=True)
class WidthPlan:
    """How width multipliers map to channel counts for one network (see the module docstring).

    Arrays are indexed by layer, in ``named_modules()`` order.

    Attributes:
        names: Qualified module names of the ``Conv2d`` / ``Linear`` layers.
        out_base: Output channels / features at width 1.
        in_base: Input channels / features at width 1.
        groups_base: ``groups`` of each conv at width 1 (1 for ``Linear``).
        producer: Index of the layer whose output feeds this layer, ``-1`` for the model input.
        in_factor: ``in_base // out_base[producer]`` (the spatial size a ``Linear`` flattens).
        leader: Index of the layer whose multiplier sets this layer's output width.
        fixed: Whether the output width never changes (classifier, tied to the input).
        depthwise: Whether the layer is a depthwise conv (its output follows its input).
        depth_ratio: ``out_base // in_base`` of depthwise layers (1 elsewhere).
        input_channels: Channels of the model input.
        norms: Normalisation module name -> index of the layer whose channels it normalises.
        adapters: Channel adapter module name (see ``CHANNELS_FOLLOW_ARG``) -> ``(source of
            its input, layer whose width its output follows)``; ``-1`` is the model input.
    """

    names: tuple[str, ...]
    out_base: np.ndarray
    in_base: np.ndarray
    groups_base: np.ndarray
    producer: np.ndarray
    in_factor: np.ndarray
    leader: np.ndarray
    fixed: np.ndarray
    depthwise: np.ndarray
    depth_ratio: np.ndarray
    input_channels: int
    norms: dict[str, int]
    adapters: dict[str, tuple[int, int]]
    _root: np.ndarray  # non-depthwise layer that sets a depthwise layer's width (-1: input)

    @property
    def num_layers(self) -> int:
        return len(self.names)

    def width_groups(self) -> dict[str, list[str]]:
        """Leader name -> names of the layers whose output width it sets (itself first).

        Depthwise layers and fixed layers are not listed.
        """
        groups: dict[str, list[str]] = {}
        for i, name in enumerate(self.names):
            if self.fixed[i] or self.depthwise[i]:
                continue
            groups.setdefault(self.names[self.leader[i]], []).append(name)
        return groups

    def effective_widths(self, widths: Sequence[float] | np.ndarray) -> np.ndarray:
        """The multiplier that actually sets each layer's output width under ``widths``.

        A tie group's members take their leader's entry, depthwise layers that of the layer at
        the root of their chain, and fixed layers (and depthwise chains fed by the model
        input) 1.

        Args:
            widths: One positive multiplier per layer, in layer order (already validated).

        Returns:
            One float per layer; ``scaled_channels`` of the base width and these gives the
            output channels of every layer that is not depthwise.
        """
        own = np.where(self.fixed, 1.0, np.asarray(widths, dtype=float)[self.leader])
        return np.where(self.depthwise, np.append(own, 1.0)[self._root], own)

    def channels(self, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Output channels, input channels and groups of every layer under ``widths``.

        Args:
            widths: One positive multiplier per layer, in layer order (already validated).

        Returns:
            ``(out, in, groups)`` integer arrays, one entry per layer.
        """
        scaled = scaled_channels(self.out_base, widths[self.leader])
        own = np.where(self.fixed, self.out_base, scaled)
        # Depthwise layers take the width of the non-depthwise layer at the root of their chain.
        own_ext = np.append(own, self.input_channels)
        out = np.where(self.depthwise, own_ext[self._root] * self.depth_ratio, own)
        in_ = np.append(out, self.input_channels)[self.producer] * self.in_factor
        groups = np.where(self.depthwise, in_, self.groups_base)
        return out, in_, groups


class _Tracer:
    """Builds a ``torch.fx`` graph that keeps channel adapters as leaf modules."""

    @staticmethod
    def trace(model: torch.nn.Module) -> Any:
        import torch.fx

        class Tracer(torch.fx.Tracer):
            def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
                if getattr(m, CHANNELS_FOLLOW_ARG, None) is not None:
                    return True
                return bool(super().is_leaf_module(m, qualname))

        return Tracer().trace(model)


def _find(parent: dict[int, int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def plan_widths(model: torch.nn.Module, input_channels: int) -> WidthPlan:
    """Read the :class:`WidthPlan` of a width-1 model from its ``torch.fx`` graph.

    Args:
        model: The network at width 1. Must be ``torch.fx`` traceable and call each
            ``Conv2d`` / ``Linear`` once.
        input_channels: Channels of the model input (e.g. 3 for RGB images).

    Raises:
        NotImplementedError: The graph has an operation whose channel behaviour is not
            modelled (channel concatenation, a parametrised module other than
            ``Conv2d`` / ``Linear`` / ``BatchNorm``, a layer called twice).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
        >>> plan_widths(net, 1).names
        ('0',)
    """
    import torch

    from optuna_kmtpe._compress.layers import quantisable_layers

    layers = quantisable_layers(model)
    names = tuple(layers)
    index = {name: i for i, name in enumerate(names)}
    graph = _Tracer.trace(model)
    modules = dict(model.named_modules())

    src: dict[Any, int] = {}  # fx node -> channel source (layer index or _INPUT)
    producer = [_INPUT] * len(names)
    seen: set[str] = set()
    norms: dict[str, int] = {}
    adapters: dict[str, tuple[int, int]] = {}
    parent = {i: i for i in range(-1, len(names))}  # union-find over layers and the input
    output_sources: list[int] = []

    def sources(args: Any) -> list[int]:
        found: list[int] = []
        flat = args if isinstance(args, (list, tuple)) else [args]
        for a in flat:
            if isinstance(a, (list, tuple)):
                found += sources(a)
            elif a in src:
                found.append(src[a])
        return found

    for node in graph.nodes:
        if node.op == "placeholder":
            if not src:
                src[node] = _INPUT
            continue
        if node.op == "output":
            output_sources = sources(node.args)
            continue
        if node.op == "get_attr":
            continue
        if node.op == "call_module":
            target = str(node.target)
            module = modules[target]
            arg_sources = sources(node.args[:1])
            if target in index:
                if target in seen:
                    raise NotImplementedError(
                        f"Layer {target!r} is called more than once; shared layers are not "
                        "supported by the width / cost model."
                    )
                seen.add(target)
                producer[index[target]] = arg_sources[0] if arg_sources else _INPUT
                src[node] = index[target]
                continue
            follow = getattr(module, CHANNELS_FOLLOW_ARG, None)
            if follow is not None:
                followed = sources(node.args[follow])
                if followed:
                    src[node] = followed[0]
                    adapters[target] = (arg_sources[0] if arg_sources else _INPUT, followed[0])
                continue
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                norms[target] = arg_sources[0] if arg_sources else _INPUT
            elif any(True for _ in module.parameters(recurse=False)):
                raise NotImplementedError(
                    f"Module {target!r} ({type(module).__name__}) has parameters but is not a "
                    "Conv1d, Conv2d, Linear or BatchNorm layer; its channel count cannot be "
                    "scaled."
                )
            if arg_sources:
                src[node] = arg_sources[0]
            continue
        # call_function / call_method
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        arg_sources = sources(list(node.args) + list(node.kwargs.values()))
        if not arg_sources:
            continue
        if name in _CONCAT_TARGETS:
            raise NotImplementedError(
                f"Operation {name!r} concatenates tensors; width scaling through channel "
                "concatenation is not supported."
            )
        if name in _TIE_NAMES and len(arg_sources) > 1:
            first = _find(parent, arg_sources[0])
            for s in arg_sources[1:]:
                parent[_find(parent, s)] = first
        src[node] = arg_sources[0]

    missing = [n for n in names if n not in seen]
    if missing:
        raise NotImplementedError(f"Layers never called in forward(): {missing}.")

    n = len(names)
    out_base = np.array([_out_features(layers[nm]) for nm in names], dtype=np.int64)
    in_base = np.array([_in_features(layers[nm]) for nm in names], dtype=np.int64)
    groups_base = np.array([getattr(layers[nm], "groups", 1) for nm in names], dtype=np.int64)
    depthwise = (groups_base > 1) & (groups_base == in_base)
    prod = np.array(producer, dtype=np.int64)
    prod_out = np.append(out_base, input_channels)[prod]
    if np.any(in_base % prod_out):
        bad = [names[i] for i in np.flatnonzero(in_base % prod_out)]
        raise NotImplementedError(f"Cannot relate the inputs of {bad} to their producers.")
    in_factor = in_base // prod_out

    fixed_roots = {_find(parent, _INPUT)} | {_find(parent, s) for s in output_sources}
    # A grouped (not depthwise) conv keeps its channels and groups: its output and the layer
    # that feeds it (through any depthwise chain) stay at width 1.
    for i in map(int, np.flatnonzero(~depthwise & (groups_base > 1))):
        fixed_roots.add(_find(parent, i))
        p = int(prod[i])
        while p >= 0 and depthwise[p]:
            p = int(prod[p])
        fixed_roots.add(_find(parent, p))
    leader = np.arange(n)
    first_of_root: dict[int, int] = {}
    for i in range(n):
        if depthwise[i]:
            continue
        first_of_root.setdefault(_find(parent, i), i)
    fixed = np.zeros(n, dtype=bool)
    for i in range(n):
        root = _find(parent, i)
        if depthwise[i]:
            if root != i or i in output_sources:
                raise NotImplementedError(
                    f"Depthwise layer {names[i]!r} feeds a residual addition or the output."
                )
            continue
        leader[i] = first_of_root[root]
        fixed[i] = root in fixed_roots
    for i in map(int, np.flatnonzero(~depthwise & (groups_base > 1))):
        if not fixed[i]:  # unreachable: grouped convs were fixed above
            raise NotImplementedError(
                f"Grouped conv {names[i]!r} (groups={groups_base[i]}) cannot be width-scaled."
            )

    root_of = np.arange(n)
    for i in range(n):  # producers come before consumers in layer order for supported graphs
        if depthwise[i]:
            p = int(prod[i])
            root_of[i] = root_of[p] if p >= 0 else _INPUT
    depth_ratio = np.where(depthwise, out_base // np.maximum(in_base, 1), 1)
    return WidthPlan(
        names=names,
        out_base=out_base,
        in_base=in_base,
        groups_base=groups_base,
        producer=prod,
        in_factor=in_factor,
        leader=leader,
        fixed=fixed,
        depthwise=depthwise,
        depth_ratio=depth_ratio,
        input_channels=int(input_channels),
        norms=norms,
        adapters=adapters,
        _root=root_of,
    )


def _out_features(m: torch.nn.Module) -> int:
    return int(getattr(m, "out_channels", getattr(m, "out_features", 0)))


def _in_features(m: torch.nn.Module) -> int:
    return int(getattr(m, "in_channels", getattr(m, "in_features", 0)))


def check_widths(widths: Sequence[float] | np.ndarray | float, names: Sequence[str]) -> np.ndarray:
    """Validate and broadcast width multipliers to one float per layer.

    Raises:
        ValueError: Wrong length (the message lists the layers in order) or a value <= 0.
    """
    return per_layer_values(widths, names, "widths", float)


def per_layer_values(values: Any, names: Sequence[str], what: str, kind: type) -> np.ndarray:
    """Broadcast one value or check a per-layer list against ``names``; floats must be > 0.

    Raises:
        ValueError: Wrong length (the message lists ``index:name`` in order) or bad values.
    """
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"`{what}` must be a number or a flat list, got shape {arr.shape}.")
    if arr.size == 1:
        arr = np.full(len(names), arr[0])
    if arr.size != len(names):
        order = ", ".join(f"{i}:{n}" for i, n in enumerate(names))
        raise ValueError(
            f"`{what}` has {arr.size} entries but the model has {len(names)} Conv/Linear "
            f"layers; give one value (broadcast) or {len(names)} values in this order: {order}."
        )
    if kind is float and not np.all(np.isfinite(arr) & (arr > 0)):
        i = int(np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))[0])
        raise ValueError(
            f"`{what}` must be finite and > 0, got {arr[i]:g} for layer {i} ({names[i]})."
        )
    return arr


def apply_widths(model: torch.nn.Module, plan: WidthPlan, widths: np.ndarray) -> torch.nn.Module:
    """Replace the Conv/Linear/BatchNorm modules of ``model`` by width-scaled ones, in place.

    Args:
        model: The width-1 model ``plan`` was read from (any model, not only the zoo's).
        plan: Its width plan.
        widths: Validated multipliers, one per layer (a NumPy array).

    Returns:
        ``model``, with freshly initialised replaced modules.
    """
    from torch import nn

    out, in_, groups = plan.channels(np.asarray(widths, dtype=float))
    for i, layer in enumerate(plan.names):
        old = model.get_submodule(layer)
        new: nn.Module
        if isinstance(old, (nn.Conv1d, nn.Conv2d)):
            new = type(old)(
                int(in_[i]),
                int(out[i]),
                old.kernel_size,  # type: ignore[arg-type]
                stride=old.stride,  # type: ignore[arg-type]
                padding=old.padding,  # type: ignore[arg-type]
                dilation=old.dilation,  # type: ignore[arg-type]
                groups=int(groups[i]),
                bias=old.bias is not None,
                padding_mode=old.padding_mode,
            )
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        else:
            assert isinstance(old, nn.Linear)
            new = nn.Linear(int(in_[i]), int(out[i]), bias=old.bias is not None)
        new.to(device=old.weight.device, dtype=old.weight.dtype)
        _set_submodule(model, layer, new)
    channels = np.append(out, plan.input_channels)
    for norm_name, source in plan.norms.items():
        old_bn = model.get_submodule(norm_name)
        assert isinstance(old_bn, nn.modules.batchnorm._BatchNorm)
        new_bn = type(old_bn)(
            int(channels[source]),
            eps=old_bn.eps,
            momentum=old_bn.momentum,
            affine=old_bn.affine,
            track_running_stats=old_bn.track_running_stats,
        )
        if old_bn.weight is not None:
            new_bn.to(device=old_bn.weight.device, dtype=old_bn.weight.dtype)
        _set_submodule(model, norm_name, new_bn)
    return model


def _set_submodule(model: torch.nn.Module, qualname: str, module: torch.nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
