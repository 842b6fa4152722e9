"""Per-layer choices of a :class:`~optuna_kmtpe.MixedPrecisionSearch`: float, fixed or
restricted bits, restricted widths; and the search space they give."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Union

from optuna_kmtpe._compress.cost import PACKING


if TYPE_CHECKING:
    from optuna_kmtpe._compress.search_space import MixedPrecisionSpace


__all__ = ["LayerChoice", "LayerChoiceLike", "apply_choices", "resolve_choices"]

FLOAT = "float"


@dataclass(frozen=True)
class LayerChoice:
    """What the search may do with one layer (named by its qualified module name).

    Args:
        bits: ``None`` (the Hessian-pruned candidates), one bit-width (fixed, e.g. 8 for the
            first and last layer), or the candidate bit-widths of this layer.
        widths: ``None`` (the searched widths, if the layer leads a width group), or the
            candidate width multipliers of this layer (``[1.0]`` keeps its width).
        keep_float: Leave the layer in float: it is not quantised, gets no trial parameter,
            and the cost model prices it at 16 bits (the FiP16 reference).

    Example:
        >>> LayerChoice(bits=8)
        LayerChoice(bits=8, widths=None, keep_float=False)
    """

    bits: int | Sequence[int] | None = None
    widths: Sequence[float] | None = None
    keep_float: bool = False

    def __post_init__(self) -> None:
        if self.keep_float and (self.bits is not None or self.widths is not None):
            raise ValueError(
                "A LayerChoice with keep_float=True takes no bits or widths; drop them or "
                "set keep_float=False."
            )


#: A :class:`LayerChoice`, or its short forms: ``"float"``, an int (fixed bits) or a list of
#: ints (candidate bits).
LayerChoiceLike = Union[LayerChoice, str, int, Sequence[int]]


def _as_choice(name: str, value: LayerChoiceLike) -> LayerChoice:
    if isinstance(value, LayerChoice):
        choice = value
    elif value == FLOAT:
        choice = LayerChoice(keep_float=True)
    elif isinstance(value, str):
        raise ValueError(
            f"Layer choice for {name!r} is {value!r}; the only string choice is 'float'."
        )
    else:
        choice = LayerChoice(bits=value)
    if choice.bits is not None:
        bits = [choice.bits] if isinstance(choice.bits, int) else list(choice.bits)
        bad = [b for b in bits if isinstance(b, bool) or b not in PACKING or b == 16]
        if not bits or bad:
            raise ValueError(
                f"Layer {name!r}: bits {bits} must be a non-empty choice of "
                f"{sorted((b for b in PACKING if b != 16), reverse=True)} (the bit-widths the "
                "cost model packs); use 'float' to keep a layer unquantised."
            )
    if choice.widths is not None:
        widths = list(choice.widths)
        if not widths or any(not (w > 0) for w in widths):
            raise ValueError(
                f"Layer {name!r}: widths {widths} must be a non-empty list of numbers > 0."
            )
    return choice


def resolve_choices(
    choices: Mapping[str, LayerChoiceLike] | None, layers: Sequence[str]
) -> dict[str, LayerChoice]:
    """Validate ``choices`` against the model's quantisable ``layers``.

    Raises:
        ValueError: An unknown layer name (the message lists the known ones), a bad choice,
            or every layer kept in float.
    """
    if not choices:
        return {}
    unknown = [n for n in choices if n not in layers]
    if unknown:
        raise ValueError(
            f"`layer_choices` names {unknown}, which are not quantisable layers of the model; "
            f"its quantisable layers (Conv1d / Conv2d / Linear) are: {', '.join(layers)}."
        )
    resolved = {n: _as_choice(n, v) for n, v in choices.items()}
    if all(resolved.get(n, LayerChoice()).keep_float for n in layers):
        raise ValueError(
            "`layer_choices` keeps every quantisable layer in float; nothing is left to "
            "search. Quantise at least one layer."
        )
    return resolved


def apply_choices(
    space: MixedPrecisionSpace,
    choices: Mapping[str, LayerChoice],
    width_leaders: Sequence[str],
) -> MixedPrecisionSpace:
    """``space`` with the fixed / restricted bits and widths of ``choices`` (float layers
    are already left out of ``space``).

    Raises:
        ValueError: Widths given for a layer whose width is set by another layer.
    """
    bits = dict(space.bits)
    widths = dict(space.widths)
    bit_choices = set(space.bit_choices)
    for name, choice in choices.items():
        if choice.keep_float:
            continue
        if choice.bits is not None:
            b = [choice.bits] if isinstance(choice.bits, int) else list(choice.bits)
            bits[name] = tuple(sorted({int(v) for v in b}, reverse=True))
            bit_choices |= set(bits[name])
        if choice.widths is not None:
            if name not in width_leaders:
                raise ValueError(
                    f"Layer {name!r} does not set its own width (it follows its width group's "
                    f"leader, is depthwise, or is fixed like the classifier); layers whose "
                    f"widths can be chosen: {', '.join(width_leaders) or 'none'}."
                )
            widths[name] = tuple(float(w) for w in choice.widths)
    return replace(
        space,
        bits=bits,
        widths=widths,
        bit_choices=tuple(sorted(bit_choices, reverse=True)),
    )
