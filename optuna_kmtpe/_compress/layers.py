"""The one definition of a quantisable layer, shared by sensitivity, widths, quantisation and cost.

A *quantisable layer* is a module of one of :data:`QUANTISABLE_TYPES`: ``nn.Conv1d``,
``nn.Conv2d`` (any ``groups``: plain, grouped and depthwise) and ``nn.Linear``. They are the
layers that get a Hessian trace, a bit-width, a width multiplier and a row of the cost
model, always in ``model.named_modules()`` order, keyed by their qualified name.

Other convolutions (``Conv3d``, ``ConvTranspose1d/2d/3d``) carry compute the cost model does
not model and that the fake-quantised layers do not simulate, so :func:`quantisable_layers`
refuses a model that has one, naming the layer: silently leaving it in float would make the
traces, the bit list and the cost rows disagree. Everything else (BatchNorm, activations,
pooling, residual additions, embeddings) stays in float and is not costed.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(8, 3))
    >>> list(quantisable_layers(net))
    ['0', '2']
"""

from __future__ import annotations

from torch import nn


__all__ = ["QUANTISABLE_TYPES", "UnsupportedLayerError", "quantisable_layers"]

#: Module types that are quantised, width-scaled, costed and get a Hessian trace.
QUANTISABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)

# Layers with weights and compute that this package does not model: refused by name.
_UNSUPPORTED_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


class UnsupportedLayerError(ValueError):
    """The model has a layer with compute the package cannot quantise or cost."""


def quantisable_layers(model: nn.Module, *, allow_empty: bool = False) -> dict[str, nn.Module]:
    """The quantisable layers of ``model`` (name -> module) in ``named_modules()`` order.

    Args:
        model: Any ``torch.nn.Module``.
        allow_empty: Return an empty dict instead of raising when there is none.

    Raises:
        UnsupportedLayerError: The model has a ``Conv3d`` or ``ConvTranspose*`` layer (the
            message names it), or, unless ``allow_empty``, no quantisable layer at all.
    """
    layers: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, _UNSUPPORTED_TYPES):
            raise UnsupportedLayerError(
                f"Layer {name!r} is a {type(module).__name__}, which cannot be quantised or "
                f"costed; supported layers: {_names()}. Replace it, or keep it outside the "
                "model you search."
            )
        if isinstance(module, QUANTISABLE_TYPES):
            layers[name] = module
    if not layers and not allow_empty:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise UnsupportedLayerError(
            f"The model has no quantisable layer ({_names()}); module types found: "
            f"{', '.join(kinds)}."
        )
    return layers


def _names() -> str:
    return ", ".join(t.__name__ for t in QUANTISABLE_TYPES)
