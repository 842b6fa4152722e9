"""Read (and, for tests, write) the idx files of MNIST / Fashion-MNIST with NumPy.

An idx file is a big-endian header -- two zero bytes, a type byte (``0x08``: unsigned bytes,
the only type these datasets use), the number of dimensions ``d``, then ``d`` sizes as
32-bit integers -- followed by the data. The files may be gzipped (``.gz``), as Debian's
``dataset-fashion-mnist`` installs them. Every check that fails raises :class:`IdxError`
naming the file and what is wrong with it.

Example:
    >>> import tempfile, numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_idx(folder / "x-idx3-ubyte.gz", np.zeros((2, 3, 3), dtype=np.uint8))
    >>> read_idx(folder / "x-idx3-ubyte.gz", ndim=3).shape
    (2, 3, 3)
"""

from __future__ import annotations

import gzip
from pathlib import Path
import struct
import zlib

import numpy as np


__all__ = ["IdxError", "read_idx", "write_idx"]

_UBYTE = 0x08


class IdxError(ValueError):
    """An idx file is unreadable, truncated or not what was expected."""


def read_idx(path: str | Path, *, ndim: int) -> np.ndarray:
    """The ``uint8`` array stored in an idx file (gzipped when its name ends in ``.gz``).

    Args:
        path: The file.
        ndim: Dimensions expected (3 for images, 1 for labels).

    Raises:
        IdxError: Bad gzip stream, bad magic number, other type or dimensions than
            expected, or a data size that does not match the header.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path}: cannot read it ({type(e).__name__}: {e}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{path}: not an idx file (its first bytes are {raw[:4].hex() or 'none'}).")
    if raw[2] != _UBYTE or raw[3] != ndim:
        raise IdxError(
            f"{path}: magic number {raw[:4].hex()}, expected 0000{_UBYTE:02x}{ndim:02x} "
            f"(unsigned bytes, {ndim} dimension(s))."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated header ({len(raw)} bytes, expected {header}).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise IdxError(
            f"{path}: {len(raw) - header} data bytes, the header's shape {shape} needs "
            f"{expected} (truncated or corrupt file)."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a ``uint8`` array as an idx file (gzipped when the name ends in ``.gz``)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
