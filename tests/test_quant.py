"""Fake quantisation against hand-computed values, straight-through gradients, width scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from optuna_kmtpe._compress.inherit import channel_maps
from optuna_kmtpe._compress.inherit import inherit_weights
from optuna_kmtpe._compress.inherit import shortcut_aligned_map
from optuna_kmtpe._compress.quant import activation_qparams
from optuna_kmtpe._compress.quant import fake_quantize_activation
from optuna_kmtpe._compress.quant import fake_quantize_weight
from optuna_kmtpe._compress.quant import QuantConv2d
from optuna_kmtpe._compress.quant import quantize_model
from optuna_kmtpe._compress.quant import QuantLinear
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import input_shape
from optuna_kmtpe._zoo.models import layer_names
from optuna_kmtpe._zoo.models import width_groups
from optuna_kmtpe._zoo.models import width_plan
from optuna_kmtpe._zoo.models import zoo_cost_model


torch.set_num_threads(1)


def _w(model: nn.Module, layer: str) -> torch.Tensor:
    """The weight of a Conv/Linear layer, typed."""
    weight = model.get_submodule(layer).weight
    assert isinstance(weight, torch.Tensor)
    return weight


# Two output channels. Row 0 has max |w| = 1.0, row 1 has max |w| = 0.5.
_W = [[1.0, -0.6, 0.3, -0.2], [0.0, 0.3, -0.5, 0.125]]

# Weights, symmetric narrow range: q = 2**(b-1) - 1, scale = max|w| / q,
# integer = round(w / scale) (half to even; no ties below), value = integer * scale.
#   b=2: q=1.   row 0: w/s = [1, -0.6, 0.3, -0.2]       -> [1, -1, 0, 0]
#               row 1: w/s = [0, 0.6, -1, 0.25]         -> [0, 1, -1, 0]
#   b=3: q=3.   row 0: w/s = [3, -1.8, 0.9, -0.6]       -> [3, -2, 1, -1]
#               row 1: w/s = [0, 1.8, -3, 0.75]         -> [0, 2, -3, 1]
#   b=4: q=7.   row 0: w/s = [7, -4.2, 2.1, -1.4]       -> [7, -4, 2, -1]
#               row 1: w/s = [0, 4.2, -7, 1.75]         -> [0, 4, -7, 2]
#   b=6: q=31.  row 0: w/s = [31, -18.6, 9.3, -6.2]     -> [31, -19, 9, -6]
#               row 1: w/s = [0, 18.6, -31, 7.75]       -> [0, 19, -31, 8]
#   b=8: q=127. row 0: w/s = [127, -76.2, 38.1, -25.4]  -> [127, -76, 38, -25]
#               row 1: w/s = [0, 76.2, -127, 31.75]     -> [0, 76, -127, 32]
_WEIGHT_INTS = {
    2: (1, [[1, -1, 0, 0], [0, 1, -1, 0]]),
    3: (3, [[3, -2, 1, -1], [0, 2, -3, 1]]),
    4: (7, [[7, -4, 2, -1], [0, 4, -7, 2]]),
    6: (31, [[31, -19, 9, -6], [0, 19, -31, 8]]),
    8: (127, [[127, -76, 38, -25], [0, 76, -127, 32]]),
}


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_weight_quantiser_hand_computed(bits: int) -> None:
    qmax, ints = _WEIGHT_INTS[bits]
    expected = torch.tensor(ints, dtype=torch.float32) * torch.tensor([[1.0], [0.5]]) / qmax
    got = fake_quantize_weight(torch.tensor(_W), bits)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # Same numbers for a conv-shaped weight (per output channel over C*kh*kw).
    conv_w = torch.tensor(_W).reshape(2, 1, 2, 2)
    torch.testing.assert_close(fake_quantize_weight(conv_w, bits), expected.reshape(2, 1, 2, 2))


# Unsigned activations (after ReLU): range [0, 3], levels 0 .. 2**b - 1, scale = 3 / (2**b - 1),
# zero point 0, integer = clamp(round(x / scale), 0, 2**b - 1).
# x = [-0.4, 0.0, 0.6, 1.234, 2.95, 3.5]
#   b=2: scale 1:      x/s = [-0.4, 0, 0.6, 1.234, 2.95, 3.5]          -> [0, 0, 1, 1, 3, 3]
#   b=3: scale 3/7:    x/s = [-0.93, 0, 1.4, 2.879, 6.883, 8.17]       -> [0, 0, 1, 3, 7, 7]
#   b=4: scale 0.2:    x/s = [-2, 0, 3, 6.17, 14.75, 17.5]             -> [0, 0, 3, 6, 15, 15]
#   b=6: scale 3/63:   x/s = [-8.4, 0, 12.6, 25.914, 61.95, 73.5]      -> [0, 0, 13, 26, 62, 63]
#   b=8: scale 3/255:  x/s = [-34, 0, 51, 104.89, 250.75, 297.5]       -> [0, 0, 51, 105, 251, 255]
_X = [-0.4, 0.0, 0.6, 1.234, 2.95, 3.5]
_ACT_INTS = {
    2: [0, 0, 1, 1, 3, 3],
    3: [0, 0, 1, 3, 7, 7],
    4: [0, 0, 3, 6, 15, 15],
    6: [0, 0, 13, 26, 62, 63],
    8: [0, 0, 51, 105, 251, 255],
}


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_unsigned_activation_quantiser_hand_computed(bits: int) -> None:
    scale = 3.0 / (2**bits - 1)
    assert activation_qparams(0.0, 3.0, bits) == pytest.approx((scale, 0))
    expected = torch.tensor(_ACT_INTS[bits], dtype=torch.float32) * scale
    got = fake_quantize_activation(torch.tensor(_X), 0.0, 3.0, bits)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_signed_activation_quantiser_hand_computed() -> None:
    # Range [-1, 2] at 2 bits: scale 3 / 3 = 1, zero point round(1 / 1) = 1, so the grid is
    # (q - 1) * 1 for q in 0..3 = {-1, 0, 1, 2}. x = [-1.7, -0.4, 0.6, 2.6]:
    # round(x) + 1 = [-1, 1, 2, 4] -> clamp [0, 1, 2, 3] -> values [-1, 0, 1, 2].
    assert activation_qparams(-1.0, 2.0, 2) == (1.0, 1)
    got = fake_quantize_activation(torch.tensor([-1.7, -0.4, 0.6, 2.6]), -1.0, 2.0, 2)
    torch.testing.assert_close(got, torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    # 3 bits: scale 3 / 7, zero point round(7 / 3) = 2; x = -0.4 -> round(-0.933) + 2 = 1
    # -> (1 - 2) * 3 / 7 = -3/7; x = 1.0 -> round(2.333) + 2 = 4 -> 2 * 3 / 7 = 6/7.
    scale, zp = activation_qparams(-1.0, 2.0, 3)
    assert scale == pytest.approx(3 / 7) and zp == 2
    got = fake_quantize_activation(torch.tensor([-0.4, 1.0]), -1.0, 2.0, 3)
    torch.testing.assert_close(got, torch.tensor([-3 / 7, 6 / 7]))


def test_straight_through_gradients() -> None:
    # Activations: gradient 1 inside the grid's range [0, 3], 0 where the value is clamped.
    x = torch.tensor(_X, requires_grad=True)
    fake_quantize_activation(x, 0.0, 3.0, 4).sum().backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    # Weights: the scale follows max |w|, so nothing is clamped and the gradient is identity.
    w = torch.tensor(_W, requires_grad=True)
    (fake_quantize_weight(w, 3) * torch.arange(8.0).reshape(2, 4)).sum().backward()  # type: ignore[no-untyped-call]
    assert w.grad is not None
    torch.testing.assert_close(w.grad, torch.arange(8.0).reshape(2, 4))


def test_quant_conv_gradient_is_float_gradient_at_quantised_point() -> None:
    torch.manual_seed(0)
    conv = QuantConv2d(2, 3, 3, padding=1, bits=3)
    x = torch.rand(4, 2, 5, 5) * 2.0  # non-negative, like a ReLU output
    out = conv(x)
    target = torch.randn_like(out)
    F.mse_loss(out, target).backward()  # type: ignore[no-untyped-call]
    # Reference: a float conv on the quantised input and weights.
    lo, hi = float(conv.act_range.lo), float(conv.act_range.hi)
    assert lo == pytest.approx(float(x.min())) and hi == pytest.approx(float(x.max()))
    wq = fake_quantize_weight(conv.weight.detach(), 3).requires_grad_(True)
    xq = fake_quantize_activation(x, lo, hi, 3)
    ref = F.conv2d(xq, wq, conv.bias.detach() if conv.bias is not None else None, padding=1)
    torch.testing.assert_close(out, ref)
    F.mse_loss(ref, target).backward()  # type: ignore[no-untyped-call]
    assert conv.weight.grad is not None and wq.grad is not None
    torch.testing.assert_close(conv.weight.grad, wq.grad)
    assert conv.weight.grad.abs().sum() > 0


def test_activation_range_ema_then_frozen() -> None:
    layer = QuantLinear(2, 1, bits=8)
    layer.train()
    layer(torch.tensor([[0.0, 2.0]]))  # first batch initialises: [0, 2]
    assert (float(layer.act_range.lo), float(layer.act_range.hi)) == (0.0, 2.0)
    layer(torch.tensor([[-1.0, 4.0]]))  # EMA 0.1: lo = 0 + 0.1 * (-1 - 0), hi = 2 + 0.1 * 2
    assert float(layer.act_range.lo) == pytest.approx(-0.1)
    assert float(layer.act_range.hi) == pytest.approx(2.2)
    layer.eval()
    layer(torch.tensor([[-5.0, 10.0]]))  # frozen in eval mode
    assert float(layer.act_range.hi) == pytest.approx(2.2)
    fresh = QuantLinear(2, 1, bits=8).eval()
    fresh(torch.tensor([[1.0, 3.0]]))  # never trained: calibrates on its first eval batch
    assert (float(fresh.act_range.lo), float(fresh.act_range.hi)) == (1.0, 3.0)


def test_quantize_model_applies_bits_and_keeps_original() -> None:
    torch.manual_seed(0)
    net = build_model("small_cnn", 10).eval()
    q = quantize_model(net, {"conv1": 8, "conv2": 4, "fc1": 2, "fc2": 6})
    bits = {n: m.bits for n, m in q.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))}
    assert bits == {"conv1": 8, "conv2": 4, "fc1": 2, "fc2": 6}
    assert not any(isinstance(m, (QuantConv2d, QuantLinear)) for m in net.modules())
    assert torch.equal(_w(q, "fc1"), _w(net, "fc1"))
    # At 16 bits the quantised model is (nearly) the float model; at 2 bits it is not.
    x = torch.randn(8, 1, 8, 8)
    fine = quantize_model(net, 16).eval()
    coarse = quantize_model(net, 2).eval()
    with torch.no_grad():
        err16 = float((fine(x) - net(x)).abs().max())
        err2 = float((coarse(x) - net(x)).abs().max())
    assert err16 < 1e-2 < err2
    # Re-quantising a quantised model changes its bit-widths in place of the copy.
    assert {m.bits for m in quantize_model(q, 3).modules() if isinstance(m, QuantLinear)} == {3}


def test_quantize_model_bad_inputs() -> None:
    net = build_model("small_cnn", 10)
    with pytest.raises(ValueError, match=r"3 entries but the model has 4.*0:conv1, 1:conv2"):
        quantize_model(net, [8, 8, 8])
    with pytest.raises(ValueError, match=r"missing \['fc2'\]"):
        quantize_model(net, {"conv1": 8, "conv2": 8, "fc1": 8})
    with pytest.raises(ValueError, match=r"integer in \[2, 16\], got 1 for layer 'conv2'"):
        quantize_model(net, [8, 1, 8, 8])
    with pytest.raises(ValueError, match="integer"):
        quantize_model(net, 4.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no quantisable layer"):
        quantize_model(nn.Sequential(nn.ReLU()), 8)


def test_quantised_model_learns() -> None:
    from optuna_kmtpe._zoo.data import load_dataset
    from optuna_kmtpe._zoo.train import evaluate
    from optuna_kmtpe._zoo.train import train

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    net = quantize_model(build_model("small_cnn", 10), 3)
    before = evaluate(net, data, "val")
    train(net, data, epochs=2, seed=0, batch_size=64)
    after = evaluate(net, data, "val")
    assert before < 0.3 and after > 0.8, (before, after)


@pytest.mark.parametrize("name", ["small_cnn", "resnet20", "mobilenetv1"])
def test_width_scaled_parameter_count_matches_cost_model(name: str) -> None:
    rng = np.random.default_rng(0)
    names = layer_names(name, 10)
    widths = rng.choice([0.75, 0.875, 1.0, 1.125, 1.25], size=len(names)).tolist()
    net = build_model(name, 10, widths=widths)
    cost = zoo_cost_model(name, 10)
    table = cost.evaluate(8, widths).layers
    for layer in names:
        assert _w(net, layer).numel() == int(table.loc[layer, "weights"]), layer
    total = sum(_w(net, n).numel() for n in names)
    assert total == int(table["weights"].sum())
    assert total != zoo_cost_model(name, 10).evaluate(8).layers["weights"].sum()


def test_inherit_weights_slices_replicates_and_preserves_function() -> None:
    torch.manual_seed(0)
    plan = width_plan("small_cnn", 10)
    base = build_model("small_cnn", 10).eval()
    narrow = inherit_weights(
        base, build_model("small_cnn", 10, widths=0.75), plan, narrow="first"
    ).eval()
    assert torch.equal(_w(narrow, "conv1"), _w(base, "conv1")[:12])
    assert torch.equal(_w(narrow, "conv2"), _w(base, "conv2")[:24, :12])
    # fc1 follows a flatten of 32 x 4 x 4: whole 16-feature channel blocks are kept.
    assert torch.equal(_w(narrow, "fc1"), _w(base, "fc1")[:48, : 24 * 16])
    wide = build_model("small_cnn", 10, widths=[2.0, 2.0, 2.0, 1.0])
    inherit_weights(base, wide, plan, noise=0.0).eval()
    x = torch.randn(16, *input_shape("small_cnn"))
    torch.testing.assert_close(wide(x), base(x), rtol=1e-4, atol=1e-5)
    # With noise the replicated copies differ from the originals, the originals do not.
    noisy = inherit_weights(base, build_model("small_cnn", 10, widths=2.0), plan, noise=0.05)
    assert torch.equal(_w(noisy, "conv1")[:16], _w(base, "conv1"))
    assert not torch.equal(_w(noisy, "conv1")[16:], _w(base, "conv1"))
    with pytest.raises(ValueError, match="different architectures"):
        inherit_weights(base, build_model("resnet20", 10), plan)


def test_inherit_weights_magnitude_keeps_the_largest_channels_in_order() -> None:
    torch.manual_seed(0)
    plan = width_plan("small_cnn", 10)
    base = build_model("small_cnn", 10).eval()
    norms = _w(base, "conv1").abs().flatten(1).sum(1)
    keep = torch.sort(torch.argsort(norms, descending=True)[:12]).values
    assert not torch.equal(keep, torch.arange(12))  # differs from slicing on this seed
    # magnitude is the default rule
    narrow = inherit_weights(base, build_model("small_cnn", 10, widths=0.75), plan).eval()
    assert torch.equal(_w(narrow, "conv1"), _w(base, "conv1")[keep])
    # The consumer reads the kept channels: conv2's inputs follow conv1's map.
    keep2 = torch.sort(
        torch.argsort(_w(base, "conv2").abs().flatten(1).sum(1), descending=True)[:24]
    ).values
    assert torch.equal(_w(narrow, "conv2"), _w(base, "conv2")[keep2][:, keep])
    # Widening is unaffected by the rule: the function is preserved as with slicing.
    wide = build_model("small_cnn", 10, widths=[2.0, 2.0, 2.0, 1.0])
    inherit_weights(base, wide, plan, noise=0.0, narrow="magnitude").eval()
    x = torch.randn(4, *input_shape("small_cnn"))
    torch.testing.assert_close(wide(x), base(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="`narrow` must be one of"):
        inherit_weights(base, build_model("small_cnn", 10), plan, narrow="largest")


@pytest.mark.parametrize("name", ["fmnist_resnet", "resnet20"])
def test_inherit_weights_magnitude_through_residual_blocks(name: str) -> None:
    # The stem's group (the stem and, in resnet20, every layer its identity shortcuts join)
    # keeps the channels of largest L1 norm summed over the group.
    torch.manual_seed(0)
    base = build_model(name, 10).eval()
    plan = width_plan(name, 10)
    group = [n for i, n in enumerate(plan.names) if int(plan.leader[i]) == 0]
    norms = torch.stack([_w(base, n).abs().flatten(1).sum(1).double() for n in group]).sum(0)
    narrow = build_model(name, 10, widths=0.75)
    inherit_weights(base, narrow, plan, narrow="magnitude")
    n = _w(narrow, "conv1").shape[0]
    keep = torch.sort(torch.argsort(norms, descending=True)[:n]).values
    assert not torch.equal(keep, torch.arange(n))
    assert torch.equal(_w(narrow, "conv1"), _w(base, "conv1")[keep])
    out = narrow.eval()(torch.randn(2, *input_shape(name)))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_nan_is_not_hidden_by_the_quantisers() -> None:
    # torch's fake_quantize maps NaN to the zero point; the layers must keep NaN visible so
    # that a diverged candidate is detected (and its trial fails).
    layer = QuantLinear(3, 2, bits=4)
    out = layer(torch.tensor([[1.0, float("nan"), 0.5]]))
    assert torch.isnan(out).all()
    out = layer(torch.tensor([[1.0, 2.0, 0.5]]))  # the stored range is now NaN as well
    assert torch.isnan(out).all()
    conv = QuantConv2d(1, 1, 1, bits=4)
    with torch.no_grad():
        conv.weight.fill_(float("nan"))
    assert torch.isnan(conv(torch.ones(1, 1, 2, 2))).all()


def _trained_stand_in(name: str) -> nn.Module:
    """A width-1 model in eval mode with non-trivial BatchNorm affine weights and statistics."""
    torch.manual_seed(0)
    base = build_model(name, 10)
    with torch.no_grad():
        for m in base.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        base(torch.randn(8, *input_shape(name)))
    return base.eval()


def _resnet20_stage_widths(stages: tuple[float, float, float], inner: Any) -> np.ndarray:
    """ResNet-20 widths: one multiplier per residual stream (width group), ``inner`` for the
    other layers (one value or one per layer; the stream members' entries are ignored)."""
    names = layer_names("resnet20", 10)
    widths = np.array(np.broadcast_to(inner, len(names)), dtype=float)
    for leader, w in zip(("conv1", "layer2.0.conv2", "layer3.0.conv2"), stages):
        assert leader in width_groups("resnet20", 10)
        widths[names.index(leader)] = w
    return widths


_WIDENINGS = [
    ("resnet18_cifar", 1.25),
    ("mobilenetv1", 1.25),
    ("resnet20", 1.25),
    ("resnet20", 2.0),
    # Per group: each stream and each block's inner conv at its own multiplier >= 1. At
    # 1.25 / 1.5 / 1.25 stage 3 keeps exactly 80 - 48 = 32 zero-padded channels, the minimum.
    ("resnet20", _resnet20_stage_widths((1.25, 1.5, 1.25), inner=np.linspace(1.0, 2.0, 20))),
    ("resnet20", _resnet20_stage_widths((1.125, 1.25, 1.5), inner=1.375)),
]


@pytest.mark.parametrize(("name", "widths"), _WIDENINGS)
def test_inherit_weights_through_residual_blocks(name: str, widths: Any) -> None:
    # Depthwise chains, torchvision-style blocks (identity / 1x1 downsample) and ResNet-20's
    # option-A shortcuts (subsample + zero-pad) keep the function when every group is widened.
    base = _trained_stand_in(name)
    wide = build_model(name, 10, widths=widths)
    inherit_weights(base, wide, width_plan(name, 10), noise=0.0).eval()
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in base.parameters())
    x = torch.randn(4, *input_shape(name))
    with torch.no_grad():
        torch.testing.assert_close(wide(x), base(x), rtol=1e-4, atol=1e-5)


def test_channel_map_lines_up_with_the_option_a_shortcut() -> None:
    # Stage 1 -> 2 of ResNet-20 at width 1.25: the base pads 16 -> 32 channels (8 zeros in
    # front), the widened model 20 -> 40 (10 zeros in front). Wide channels 10..29 carry
    # stage-1 channels 0..15, 0..3, which the base carries on channels 8..23, 8..11; the 20
    # zero-padded channels cycle over the base's 16 (0..7, 24..31).
    plan = width_plan("resnet20", 10)
    layer = plan.names.index("layer2.0.conv2")
    maps = channel_maps(plan, build_model("resnet20", 10, widths=1.25))
    expected = np.r_[0:8, 24:26, 8:24, 8:12, 26:32, 0:4]
    np.testing.assert_array_equal(maps[layer], expected)
    for member in ("layer2.1.conv2", "layer2.2.conv2"):  # the whole stream shares the map
        np.testing.assert_array_equal(maps[plan.names.index(member)], expected)
    # Narrowed to 0.75 (12 -> 24, 6 zeros in front): the 12 shortcut channels keep what the
    # base adds there (8..19), the 12 others take the first zero-padded channels.
    maps = channel_maps(plan, build_model("resnet20", 10, widths=0.75))
    np.testing.assert_array_equal(maps[layer], np.r_[0:6, 8:20, 6:8, 24:28])
    base = np.r_[[-1] * 2, 0:2, [-1] * 2]  # the helper on its own: 2 -> 6 and 3 -> 9
    wide = np.r_[[-1] * 3, 0:3, [-1] * 3]
    got = shortcut_aligned_map(base, wide, np.array([0, 1, 0]))
    np.testing.assert_array_equal(got, [0, 1, 4, 2, 3, 2, 5, 0, 1])


def test_inherit_noise_only_on_repeated_channels_behind_a_shortcut() -> None:
    base = _trained_stand_in("resnet20")
    plan = width_plan("resnet20", 10)
    exact = inherit_weights(base, build_model("resnet20", 10, widths=1.25), plan, noise=0.0)
    noisy = inherit_weights(base, build_model("resnet20", 10, widths=1.25), plan, noise=0.05)
    index = channel_maps(plan, exact)[plan.names.index("layer2.0.conv2")]
    first = np.zeros(len(index), dtype=bool)
    first[np.unique(index, return_index=True)[1]] = True
    w_exact, w_noisy = _w(exact, "layer2.0.conv2"), _w(noisy, "layer2.0.conv2")
    assert torch.equal(w_noisy[first], w_exact[first])
    assert not torch.isclose(w_noisy[~first], w_exact[~first]).all(dim=(1, 2, 3)).any()


@pytest.mark.parametrize(
    "widths",
    [
        0.75,
        _resnet20_stage_widths((1.0, 0.5, 1.25), inner=0.875),
        _resnet20_stage_widths((1.0, 0.25, 1.0), inner=1.0),  # the shortcut truncates
        # All >= 1, but stage 2 keeps only 12 of the 16 zero-padded channels: not exact.
        _resnet20_stage_widths((1.25, 1.0, 1.0), inner=1.0),
    ],
)
def test_inherit_weights_narrowed_resnet20_builds_and_runs(widths: Any) -> None:
    base = _trained_stand_in("resnet20")
    scaled = build_model("resnet20", 10, widths=widths)
    inherit_weights(base, scaled, width_plan("resnet20", 10)).eval()
    x = torch.randn(4, *input_shape("resnet20"))
    with torch.no_grad():
        out = scaled(x)
        assert torch.isfinite(out).all()
        assert not torch.allclose(out, base(x), rtol=1e-4, atol=1e-5)
