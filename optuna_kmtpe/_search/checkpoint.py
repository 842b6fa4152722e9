"""Save and load model weights with clear errors and atomic writes.

A checkpoint is either a plain ``state_dict`` or a dict holding one under ``"state_dict"``
(this package's files, which add ``"meta"``) or ``"model"``. Files are read with
``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary code.

Example:
    >>> import tempfile, pathlib
    >>> from optuna_kmtpe._zoo.models import build_model
    >>> net = build_model("small_cnn", 10)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.pt"
    >>> save_checkpoint(net, path, meta={"model": "small_cnn"})
    >>> load_checkpoint(build_model("small_cnn", 10), path)["model"]
    'small_cnn'
"""

from __future__ import annotations

import os
from pathlib import Path
import secrets
from typing import Any
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from torch import nn


__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "atomic_write"]


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model; the message says why."""


def atomic_write(path: str | Path, write: Any, *, mode: str = "w") -> None:
    """Write ``path`` through a temporary file in the same folder and ``os.replace``.

    ``write(file)`` writes the content; a crash leaves either the old file or the new one.
    The file gets the permissions of a plain ``open``: 0666 less the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    # NOTE: os.open, not tempfile.mkstemp: mkstemp makes the file 0600 whatever the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    model: nn.Module, path: str | Path, *, meta: dict[str, Any] | None = None
) -> None:
    """Save ``{"state_dict": ..., "meta": meta}`` atomically."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write(
        path, lambda f: torch.save({"state_dict": state, "meta": meta or {}}, f), mode="wb"
    )


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load the weights of ``path`` into ``model`` (strict) and return the stored ``meta``.

    Raises:
        CheckpointError: Missing or unreadable file, no state dict inside, or keys / shapes
            that do not match ``model`` (all mismatches are named).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"Cannot read checkpoint {path} ({type(e).__name__}: {e}); is it a PyTorch file "
            "saved with torch.save?"
        ) from e
    meta: dict[str, Any] = {}
    state = obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, meta = obj["state_dict"], dict(obj.get("meta") or {})
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        state = obj["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"Checkpoint {path} holds no state dict (a mapping of names to tensors)."
        )
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_few([repr(k) for k in missing])}")
        if unexpected:
            parts.append(f"unexpected keys {_few([repr(k) for k in unexpected])}")
        if shapes:
            parts.append(f"shape mismatches {_few(shapes, sep='; ')}")
        raise CheckpointError(
            f"Checkpoint {path} does not match the model ({type(model).__name__}): "
            + ", ".join(parts)
            + ". Check --model and the dataset's number of classes."
        )
    model.load_state_dict(state)
    return meta


def _few(items: list[str], n: int = 6, sep: str = ", ") -> str:
    shown = items[:n] + ([f"... {len(items) - n} more"] if len(items) > n else [])
    return "[" + sep.join(shown) + "]"
