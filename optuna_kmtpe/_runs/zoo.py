"""The zoo side that ``kmtpe search`` and ``kmtpe compare`` share: default epochs, the base
model, the batches of the Hessian traces, the trainer and evaluator of the built-in datasets,
the cost-model readings and the limits from the options.

Example:
    >>> default_epochs("digits")
    (20, 30)
    >>> sorted(COST_MODELS)
    ['compute', 'memory']
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
import itertools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.limits import HardwareLimits
from optuna_kmtpe._logging import get_logger
from optuna_kmtpe._search.checkpoint import load_checkpoint
from optuna_kmtpe._search.checkpoint import save_checkpoint
from optuna_kmtpe._search.objective import FLOAT_COST_BITS
from optuna_kmtpe._zoo import train as _train
from optuna_kmtpe._zoo.data import DataSplits
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import input_shape as zoo_input_shape


__all__ = [
    "COST_MODELS",
    "COST_MODEL_NOTES",
    "SearchError",
    "ZooEvaluator",
    "ZooTrainer",
    "base_model",
    "check_input_shape",
    "default_epochs",
    "hessian_batches",
    "zoo_limits",
]

_logger = get_logger(__name__)


class SearchError(ValueError):
    """Bad input to the search (the message says what is wrong and how to fix it)."""


#: ``--cost-model``: DSPPackingModel keyword arguments per reading.
COST_MODELS: dict[str, dict[str, Any]] = {"memory": {}, "compute": {"dram_gbps": None}}
#: The reading in words, as every summary names it.
COST_MODEL_NOTES = {
    "memory": "latency = max(DSP-array cycles, DRAM bytes at 19.2 GB/s), 32 x 32 array",
    "compute": "latency = DSP-array cycles only, 32 x 32 array; the paper's speedups",
}

# Dataset -> default (base, final) epochs; CIFAR: 30 and the paper's 90.
_EPOCHS = {"digits": (20, 30), "mnist-5k": (10, 15), "fashion-mnist": (8, 8)}


def default_epochs(dataset: str) -> tuple[int, int]:
    """The (base model, final model) epochs of ``dataset`` when the options give none."""
    return _EPOCHS.get(dataset, (30, 90))


@dataclass
class ZooTrainer:
    """``train_fn`` of the built-in datasets: :func:`optuna_kmtpe._zoo.train.train`, with
    the per-epoch hook."""

    data: DataSplits
    lr: float
    batch_size: int
    device: torch.device

    def __call__(
        self,
        model: nn.Module,
        *,
        epochs: int,
        seed: int,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> None:
        _train.train(
            model,
            self.data,
            epochs=epochs,
            max_lr=self.lr,
            batch_size=self.batch_size,
            seed=seed,
            device=self.device,
            on_epoch=on_epoch,
        )


@dataclass
class ZooEvaluator:
    """``eval_fn`` of the built-in datasets: accuracy on a split."""

    data: DataSplits
    split: str
    device: torch.device

    def __call__(self, model: nn.Module) -> float:
        return _train.evaluate(model, self.data, self.split, device=self.device)


def check_input_shape(model_name: str, num_classes: int, shape: tuple[int, ...]) -> None:
    """Raise :class:`SearchError` when zoo model ``model_name`` cannot take ``shape`` images."""
    with torch.device("meta"):
        net = build_model(model_name, num_classes)
        try:
            net(torch.zeros((2, *shape)))
        except Exception as e:
            suggestion = "small_cnn" if shape[0] == 1 else "resnet20"
            raise SearchError(
                f"Model {model_name!r} (made for inputs {zoo_input_shape(model_name)}) cannot "
                f"take this dataset's images {shape}: {type(e).__name__}: {e}. Pick a model for "
                f"this dataset, e.g. --model {suggestion}."
            ) from None


def zoo_limits(
    cost: DSPPackingModel,
    *,
    size_mb: float | None,
    latency_ms: float | None,
    min_speedup: float | None,
    default_size: Callable[[], tuple[float, str]] | None,
    ebops: float | None = None,
) -> HardwareLimits:
    """HardwareLimits from the options (logged); ``min_speedup`` becomes a latency limit.

    ``default_size`` gives (size limit, why) when no limit is given (an EBOPs limit is one);
    None: no default.
    """
    notes = []
    if min_speedup is not None:
        from_speedup = cost.baseline().latency_ms / min_speedup
        latency_ms = from_speedup if latency_ms is None else min(latency_ms, from_speedup)
        notes.append(
            f"--min-speedup {min_speedup:g} = latency <= {from_speedup:.6g} ms "
            "(FiP16 baseline latency / speedup)"
        )
    if size_mb is None and latency_ms is None and ebops is None and default_size is not None:
        size_mb, why = default_size()
        notes.append(f"size <= {size_mb:.6g} MB ({why}; no other limit given)")
    if notes:
        _logger.info(f"limits: {'; '.join(notes)}")
    return HardwareLimits(size_mb=size_mb, latency_ms=latency_ms, ebops=ebops)


def config_ebops(
    cost: DSPPackingModel, bits: Sequence[int | None], widths: Sequence[float]
) -> float:
    """EBOPs of a configuration's per-layer bits (``None``: float, priced as the objective
    does) and widths on ``cost``."""
    return cost.evaluate([FLOAT_COST_BITS if b is None else int(b) for b in bits], widths).ebops


def hessian_batches(
    data: DataSplits, batch_size: int, n_batches: int, seed: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``n_batches`` shuffled training batches of the Hessian traces."""
    return itertools.islice(
        _train.batches(
            data,
            "train",
            batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            device=device,
        ),
        n_batches,
    )


def base_model(
    model: str,
    data: DataSplits,
    *,
    out: Path,
    device: torch.device,
    seed: int,
    epochs: int,
    lr: float,
    batch_size: int,
    meta: dict[str, Any],
    checkpoint: str | None = None,
    resume: bool = False,
) -> nn.Module:
    """The float base model on ``device``: from ``checkpoint``, ``OUT/base_model.pt`` on
    resume, or trained now (and saved there with ``meta``)."""
    torch.manual_seed(seed)
    base = build_model(model, data.num_classes)
    base_path = out / "base_model.pt"
    if checkpoint is not None:
        load_checkpoint(base, checkpoint)
        _logger.info(f"base model: loaded {checkpoint}")
    elif resume and base_path.is_file():
        load_checkpoint(base, base_path)
        _logger.info(f"base model: loaded {base_path} (resume)")
    else:
        if resume:
            raise SearchError(
                f"Cannot resume: {base_path} is missing; pass the base model with --checkpoint."
            )
        _logger.info(f"base model: training {model} for {epochs} epochs on {device}")
        result = _train.train(
            base,
            data,
            epochs=epochs,
            max_lr=lr,
            batch_size=batch_size,
            seed=seed,
            device=device,
        )
        _logger.info(
            f"base model: {result.seconds:.1f} s, last epoch loss {result.final_loss:.4f}"
        )
        save_checkpoint(base, base_path, meta=meta)
    return base.to(device)
