"""One ``input_shape`` convention for the whole API: the shape of one input, without the batch
dimension, e.g. ``(3, 32, 32)``; a leading batch dimension of 1, ``(1, 3, 32, 32)``, is
accepted too and dropped when the model cannot take the shape as given.

Example:
    >>> import torch
    >>> net = torch.nn.Conv2d(1, 4, 3)
    >>> one_input_shape(net, (1, 8, 8)), one_input_shape(net, (1, 1, 8, 8))
    ((1, 8, 8), (1, 8, 8))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import torch


__all__ = ["one_input_shape"]


def one_input_shape(
    model: torch.nn.Module, input_shape: Sequence[int], device: torch.device | None = None
) -> tuple[int, ...]:
    """The shape of one input of ``model`` from ``input_shape`` given either way.

    The shape as given is tried first (a batch of two such inputs, zeros, eval mode, no
    gradients: two, so that torch's unbatched reading of a 3-D input cannot pass); then, if
    it starts with 1, the shape without that leading dimension.

    Raises:
        ValueError: Not a tuple of positive integers, or the model takes neither reading
            (the message names both and the model's error).
    """
    import torch

    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple, torch.Size)) else ()
    if not shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
    ):
        raise ValueError(
            "`input_shape` must be the shape of one input as positive integers, e.g. (3, 32, 32) "
            f"(a leading batch dimension of 1 is accepted too); got {input_shape!r}."
        )
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    readings = [shape] + ([shape[1:]] if len(shape) >= 2 and shape[0] == 1 else [])
    error: Exception | None = None
    was_training = model.training
    model.eval()
    try:
        for reading in readings:
            try:
                with torch.no_grad():
                    model(torch.zeros((2, *reading), device=device))
                return reading
            except Exception as e:  # noqa: BLE001 - any failure means this reading does not fit
                error = error or e
    finally:
        model.train(was_training)
    tried = " or ".join(str((2, *r)) for r in readings)
    raise ValueError(
        f"The model cannot take an input of shape {shape}: a batch of shape {tried} fails "
        f"({type(error).__name__}: {error}). `input_shape` is one input's shape, e.g. "
        "(3, 32, 32), or with a leading batch dimension of 1; "
        "tuple(next(iter(train_loader))[0].shape[1:]) gives it."
    )
