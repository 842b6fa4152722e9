from __future__ import annotations

import numpy as np
import pytest
import torch

from optuna_kmtpe._compress.widths import plan_widths
from optuna_kmtpe._compress.widths import scaled_channels
from optuna_kmtpe._zoo.catalog import MODEL_NAMES
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import input_shape
from optuna_kmtpe._zoo.models import layer_names
from optuna_kmtpe._zoo.models import width_groups
from optuna_kmtpe._zoo.models import width_plan


torch.set_num_threads(1)

# Conv/Linear layers per model (ResNet-20 with option-A shortcuts has exactly 20).
EXPECTED_LAYERS = {
    "resnet20": 20,
    "resnet18_cifar": 21,
    "mobilenetv1": 28,
    "mobilenetv2": 53,
    "resnet18": 21,
    "resnet50": 54,
    "small_cnn": 4,
    "mnist_cnn": 5,
    "fmnist_resnet": 6,
}
# Parameter counts of the width-1 models with 10 classes.
# ResNet-20 (option A): stem 3*16*9, stage 1 six 16*16*9 convs, stage 2 32*16*9 + five
# 32*32*9, stage 3 64*32*9 + five 64*64*9, fc 64*10 + 10, BatchNorm 2 * (7*16 + 6*32 + 6*64).
# torchvision ResNet-18 has 11,689,512 parameters for 1000 classes; 10 classes remove 990 * 513.
EXPECTED_PARAMS = {
    "resnet20": 3 * 16 * 9
    + 6 * 16 * 16 * 9
    + (32 * 16 * 9 + 5 * 32 * 32 * 9)
    + (64 * 32 * 9 + 5 * 64 * 64 * 9)
    + (64 * 10 + 10)
    + 2 * (7 * 16 + 6 * 32 + 6 * 64),
    "resnet18": 11_689_512 - 513 * 990,
    # Stem 1*16*9, blocks 32*16*9 + 32*32*9 and 64*32*9 + 64*64*9, fc 64*10 + 10,
    # BatchNorm 2 * (16 + 2*32 + 2*64).
    "fmnist_resnet": 144 + 4608 + 9216 + 18432 + 36864 + 650 + 2 * (16 + 2 * 32 + 2 * 64),
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_layer_count_and_order(name: str) -> None:
    names = layer_names(name, 10)
    assert len(names) == EXPECTED_LAYERS[name]
    with torch.device("meta"):
        model = build_model(name, 10)
    expected = [
        n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    assert names == expected


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "fmnist_resnet"])
def test_param_counts(name: str) -> None:
    with torch.device("meta"):
        model = build_model(name, 10)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_random_widths_give_valid_models(name: str) -> None:
    plan = width_plan(name, 7)
    rng = np.random.default_rng(len(name))
    widths = rng.choice([0.5, 0.75, 0.875, 1.0, 1.125, 1.25, 2.0], plan.num_layers)
    model = build_model(name, 7, widths).eval()
    c, h, w = input_shape(name)
    size = min(h, 64)  # ImageNet models run on 64x64 here (adaptive pooling) to stay fast.
    with torch.no_grad():
        assert model(torch.zeros(2, c, size, size)).shape == (2, 7)
    out, in_, groups = plan.channels(widths)
    modules = dict(model.named_modules())
    for i, layer in enumerate(plan.names):
        weight = modules[layer].weight  # type: ignore[union-attr]
        assert weight.shape[0] == out[i]
        assert weight.shape[1] * groups[i] == in_[i]


def test_resnet20_width_rules() -> None:
    # Stage 1's residual stream includes the stem; stage 2/3 start at their first block's
    # conv2 because the option-A shortcut pads channels.
    groups = width_groups("resnet20", 10)
    assert groups["conv1"] == ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]
    assert groups["layer2.0.conv2"] == ["layer2.0.conv2", "layer2.1.conv2", "layer2.2.conv2"]
    assert groups["layer1.0.conv1"] == ["layer1.0.conv1"]
    names = layer_names("resnet20", 10)
    widths = np.ones(20)
    widths[names.index("conv1")] = 1.25  # 16 -> 20 channels for the whole stage-1 stream
    widths[names.index("layer1.1.conv2")] = 0.5  # ignored: tied to conv1
    widths[names.index("layer1.0.conv1")] = 0.875  # 16 -> 14
    widths[names.index("fc")] = 0.75  # ignored: classifier outputs never change
    model = build_model("resnet20", 10, widths)
    assert model.get_submodule("conv1").weight.shape == (20, 3, 3, 3)
    assert model.get_submodule("layer1.0.conv1").weight.shape == (14, 20, 3, 3)
    assert model.get_submodule("layer1.1.conv2").weight.shape == (20, 16, 3, 3)
    assert model.get_submodule("layer2.0.conv1").weight.shape == (32, 20, 3, 3)
    assert model.get_submodule("fc").weight.shape == (10, 64)


def test_depthwise_follows_input() -> None:
    names = layer_names("mobilenetv1", 100)
    widths = np.ones(28)
    widths[names.index("conv1")] = 1.25  # 32 -> 40
    widths[names.index("blocks.0.dw")] = 0.5  # ignored: depthwise follows its input
    model = build_model("mobilenetv1", 100, widths)
    dw = model.get_submodule("blocks.0.dw")
    assert isinstance(dw, torch.nn.Conv2d)
    assert (dw.in_channels, dw.out_channels, dw.groups) == (40, 40, 40)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv1", "mobilenetv2"])
def test_effective_widths_give_the_built_channels(name: str) -> None:
    plan = width_plan(name, 10)
    widths = np.random.default_rng(0).choice([0.75, 0.875, 1.125, 1.25], plan.num_layers)
    eff = plan.effective_widths(widths)
    out, _, _ = plan.channels(widths)
    assert not plan.fixed[:-1].all() and eff[-1] == 1.0  # the classifier keeps width 1
    normal = ~plan.depthwise
    assert (scaled_channels(plan.out_base, eff)[normal] == out[normal]).all()
    assert (eff[normal] == np.where(plan.fixed, 1.0, widths[plan.leader])[normal]).all()
    for i in np.flatnonzero(plan.depthwise):  # a depthwise conv follows its producer
        assert eff[i] == eff[plan.producer[i]] if plan.producer[i] >= 0 else eff[i] == 1.0


def test_linear_after_flatten_keeps_spatial_factor() -> None:
    model = build_model("small_cnn", 10, [1, 0.75, 1, 1])
    assert model.get_submodule("fc1").weight.shape == (64, 24 * 16)


def test_rounding_is_half_up() -> None:
    base = np.array([16, 5, 20, 1])
    widths = np.array([0.875, 0.5, 0.625, 0.1])
    # 14.0 -> 14; 2.5 -> 3 and 12.5 -> 13 (half up, not to even); 0.1 -> 1 (at least one).
    assert scaled_channels(base, widths).tolist() == [14, 3, 13, 1]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="known models: resnet20"):
        build_model("vgg16", 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet20", 0)
    with pytest.raises(ValueError, match="has 3 entries but the model has 20"):
        build_model("resnet20", 10, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="> 0, got 0 for layer 0 \\(conv1\\)"):
        build_model("resnet20", 10, 0.0)


def test_concat_is_rejected() -> None:
    class Cat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 1)
            self.b = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.a(x), self.b(x)], 1)

    with pytest.raises(NotImplementedError, match="concatenat"):
        plan_widths(Cat(), 3)
