"""One thread setting for every command that trains, applied before anything trains.

``torch.set_num_threads`` sets the intra-op threads of this process; the inter-op threads are
set too while torch still allows it (once, before any inter-op work). ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` are set as well unless the user set them, so that libraries loaded later
and spawned worker processes follow. Called before torch is imported (as the command handlers
do), the environment variables also reach torch's own OpenMP pool.

Example:
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> set_threads(1)
    1
    >>> torch.get_num_threads()
    1
    >>> _ = set_threads(before)
"""

from __future__ import annotations

import os


#: The default of ``--threads``: 1, measured fastest on a shared 2-core machine
#: (docs/threads.md).
DEFAULT_THREADS = 1


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads from now on (None: :data:`DEFAULT_THREADS`).

    Returns:
        The number of threads in force.

    Raises:
        ValueError: ``threads`` below 1.
    """
    n = DEFAULT_THREADS if threads is None else threads
    if int(n) != n or n < 1:
        raise ValueError(f"`threads` must be a positive integer, got {threads!r}.")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(n))
    import torch  # NOTE: after the environment, so that a first import reads it

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set, or inter-op work already ran: torch allows it once
        pass
    return torch.get_num_threads()
