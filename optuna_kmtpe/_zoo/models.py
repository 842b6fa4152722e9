"""Model zoo: the networks of the paper, with per-layer width multipliers.

``widths`` holds one multiplier per ``Conv2d`` / ``Linear`` layer, in the order of
``model.named_modules()`` of the width-1 model (:func:`layer_names` lists it). How a
multiplier propagates (rounding, depthwise layers, residual ties, the fixed classifier) is
defined once in :mod:`optuna_kmtpe._compress.widths` and shared with the cost model;
:func:`width_groups` shows, per model, which layer's multiplier sets which layers' widths.

Models (input size in brackets):

* ``resnet20`` (3x32x32): CIFAR ResNet-20 of He et al. 2016, 3 stages of 16/32/64 channels,
  option-A shortcuts (parameter-free: stride-2 subsampling and zero-padding of channels), so
  it has exactly 20 Conv/Linear layers like the paper's Table IV lists.
* ``resnet18_cifar`` (3x32x32): torchvision ResNet-18 with a 3x3 stride-1 stem, no max-pool.
* ``mobilenetv1`` (3x32x32): MobileNetV1 for CIFAR (stride-1 stem), 13 depthwise-separable
  blocks, 28 Conv/Linear layers.
* ``mobilenetv2``, ``resnet18``, ``resnet50`` (3x224x224): torchvision's definitions.
* ``small_cnn`` (1x8x8): a 4-layer CNN for scikit-learn's digits, the offline default.
* ``mnist_cnn`` (1x28x28): a 5-layer CNN for the 5,000 MNIST digits (``mnist-5k``): four
  3x3 convs (16/32/64/64 channels, 2x2 max-pools after the first two; 144 / 4,608 / 18,432 /
  36,864 weights) and a linear classifier (640) after global average pooling.
* ``fmnist_resnet`` (1x28x28): a small residual CNN for the full Fashion-MNIST: a 3x3
  stride-2 stem (16 channels, 14x14), two ResNet-20 basic blocks with option-A shortcuts
  (32 channels at 7x7, 64 at 4x4, each starting with a stride-2 conv) and a linear
  classifier after global average pooling; 6 layers, 69,904 weights, one width group each.

Example:
    >>> net = build_model("resnet20", 10, widths=[0.75] * 20)
    >>> layer_names("resnet20", 10)[:3]
    ['conv1', 'layer1.0.conv1', 'layer1.0.conv2']
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.widths import apply_widths
from optuna_kmtpe._compress.widths import check_widths
from optuna_kmtpe._compress.widths import plan_widths
from optuna_kmtpe._compress.widths import WidthPlan
from optuna_kmtpe._zoo.catalog import MODEL_NAMES


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence


_INPUT_SHAPES = {
    "resnet20": (3, 32, 32),
    "resnet18_cifar": (3, 32, 32),
    "mobilenetv1": (3, 32, 32),
    "mobilenetv2": (3, 224, 224),
    "resnet18": (3, 224, 224),
    "resnet50": (3, 224, 224),
    "small_cnn": (1, 8, 8),
    "mnist_cnn": (1, 28, 28),
    "fmnist_resnet": (1, 28, 28),
}


def input_shape(name: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of one input image for the model ``name``."""
    _check_name(name)
    return _INPUT_SHAPES[name]


def build_model(
    name: str, num_classes: int, widths: Sequence[float] | np.ndarray | float | None = None
) -> nn.Module:
    """Build a model of the zoo, optionally with per-layer width multipliers.

    Args:
        name: One of :data:`MODEL_NAMES`.
        num_classes: Outputs of the classifier (never changed by ``widths``).
        widths: ``None`` (all 1), one multiplier for every layer, or one per Conv/Linear
            layer in :func:`layer_names` order. Layers whose width is set by another layer
            (see :func:`width_groups`) ignore their own entry.

    Returns:
        A freshly initialised ``torch.nn.Module`` in training mode.

    Raises:
        ValueError: Unknown ``name``, ``num_classes < 1``, or bad ``widths``.

    Example:
        >>> net = build_model("small_cnn", 10, widths=1.25)
        >>> net(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    _check_name(name)
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive integer, got {num_classes!r}.")
    model = _BUILDERS[name](int(num_classes))
    if widths is None:
        return model
    plan = width_plan(name, int(num_classes))
    return apply_widths(model, plan, check_widths(widths, plan.names))


def zoo_cost_model(name: str, num_classes: int, **hardware: Any) -> DSPPackingModel:
    """The :class:`~optuna_kmtpe.DSPPackingModel` of a zoo network at its native input size.

    The model is built on PyTorch's ``meta`` device (shapes only, no memory, fast);
    ``hardware`` goes to the cost model (rows, cols, clock, ...).

    Example:
        >>> zoo_cost_model("resnet18", 1000).baseline().size_mb > 23
        True
    """
    _check_name(name)
    with torch.device("meta"):
        model = _BUILDERS[name](num_classes)
    return DSPPackingModel(model, _INPUT_SHAPES[name], **hardware)


@lru_cache(maxsize=32)
def width_plan(name: str, num_classes: int) -> WidthPlan:
    """The cached :class:`~optuna_kmtpe._compress.widths.WidthPlan` of a zoo model."""
    _check_name(name)
    with torch.device("meta"):
        model = _BUILDERS[name](num_classes)
    return plan_widths(model, _INPUT_SHAPES[name][0])


def layer_names(name: str, num_classes: int) -> list[str]:
    """Conv/Linear layer names of a zoo model in ``widths`` / ``bits`` order."""
    return list(width_plan(name, num_classes).names)


def width_groups(name: str, num_classes: int) -> dict[str, list[str]]:
    """Leader layer -> layers whose output width the leader's multiplier sets.

    Example:
        >>> width_groups("resnet20", 10)["conv1"]
        ['conv1', 'layer1.0.conv2', 'layer1.1.conv2', 'layer1.2.conv2']
    """
    return width_plan(name, num_classes).width_groups()


def _check_name(name: str) -> None:
    if name not in _INPUT_SHAPES:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}.")


# ---------------------------------------------------------------------------------------------
# Definitions


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by ``stride``, then zero-pad (or, if the residual branch
    is narrower, truncate) the channels to those of ``like``. No parameters."""

    # Read by optuna_kmtpe._compress.widths: the output has as many channels as argument 1
    # (``like``).
    _kmtpe_channels_follow_arg = 1

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        missing = like.shape[1] - x.shape[1]
        if missing >= 0:
            return F.pad(x, (0, 0, 0, 0, missing // 2, missing - missing // 2))
        return x[:, : like.shape[1]]


class _BasicBlockA(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _ShortcutA(stride) if stride != 1 or in_planes != planes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.shortcut is None else self.shortcut(x, out)
        return F.relu(out + shortcut)


class _ResNet20(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for b in range(3):
                blocks.append(_BasicBlockA(in_planes, planes, stride if b == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class _DepthwiseSeparable(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(in_planes, in_planes, 3, stride, 1, groups=in_planes, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.pw = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.dw(x)))
        return F.relu(self.bn2(self.pw(x)))


class _MobileNetV1(nn.Module):
    # (output channels, stride) of the 13 depthwise-separable blocks, CIFAR variant.
    _CFG: tuple[tuple[int, int], ...] = (
        ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))
        + ((512, 1),) * 5
        + ((1024, 2), (1024, 1))
    )

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks = []
        in_planes = 32
        for planes, stride in self._CFG:
            blocks.append(_DepthwiseSeparable(in_planes, planes, stride))
            in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _SmallCNN(nn.Module):
    """Two 3x3 convs (16, 32 channels), a 2x2 max-pool and two linear layers, for 8x8 digits."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class _MnistCNN(nn.Module):
    """Four 3x3 convs (16, 32, 64, 64 channels; max-pool after the 1st and 2nd), global
    average pooling and a linear classifier, for 28x28 MNIST."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _FmnistResNet(nn.Module):
    """Stride-2 stem (16 channels) and two stride-2 basic blocks (32, 64 channels) with
    option-A shortcuts, global average pooling and a linear classifier, for 28x28 images."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = _BasicBlockA(16, 32, 2)
        self.layer2 = _BasicBlockA(32, 64, 2)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _resnet18_cifar(num_classes: int) -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()  # type: ignore[assignment]
    return model


def _torchvision(name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        import torchvision

        builder = getattr(torchvision.models, name)
        model: nn.Module = builder(weights=None, num_classes=num_classes)
        return model

    return build


_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "resnet20": _ResNet20,
    "resnet18_cifar": _resnet18_cifar,
    "mobilenetv1": _MobileNetV1,
    "mobilenetv2": _torchvision("mobilenet_v2"),
    "resnet18": _torchvision("resnet18"),
    "resnet50": _torchvision("resnet50"),
    "small_cnn": _SmallCNN,
    "mnist_cnn": _MnistCNN,
    "fmnist_resnet": _FmnistResNet,
}
