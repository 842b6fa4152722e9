from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch

from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.cost import PACKING
from optuna_kmtpe._compress.limits import HardwareLimits
from optuna_kmtpe._compress.limits import lagrangian
from optuna_kmtpe._compress.limits import pareto_directions
from optuna_kmtpe._compress.limits import pareto_values
from optuna_kmtpe._compress.limits import set_constraints
from optuna_kmtpe._zoo.catalog import MODEL_NAMES
from optuna_kmtpe._zoo.models import build_model
from optuna_kmtpe._zoo.models import input_shape
from optuna_kmtpe._zoo.models import layer_names
from optuna_kmtpe._zoo.models import zoo_cost_model
from optuna_kmtpe.cli import main


torch.set_num_threads(1)


def _tiny() -> torch.nn.Module:
    # conv 3->8 (3x3), depthwise 8->8 (3x3, groups 8), linear 8*4*4 -> 10, on a 3x4x4 input.
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10),
    )


def _tiny_cost(rows: int = 4, cols: int = 8, **kwargs: float | None) -> DSPPackingModel:
    kwargs.setdefault("dram_gbps", None)  # compute only unless a test sets a bandwidth
    return DSPPackingModel(_tiny(), (3, 4, 4), rows=rows, cols=cols, **kwargs)  # type: ignore[arg-type]


def test_hand_computed_shapes_weights_and_macs() -> None:
    layers = _tiny_cost().evaluate(16).layers
    assert list(layers.index) == ["0", "2", "4"]
    # conv: 8 * 3 * 9 = 216 weights, times 4 * 4 output pixels = 3,456 MACs.
    # depthwise: 8 * (8 / 8) * 9 = 72 weights, 72 * 16 = 1,152 MACs.
    # linear: 10 * 128 = 1,280 weights and MACs.
    assert layers["weights"].tolist() == [216, 72, 1280]
    assert layers["macs"].tolist() == [3456, 1152, 1280]
    assert layers["groups"].tolist() == [1, 8, 1]


@pytest.mark.parametrize(
    "bits, expected",
    [
        # conv: ceil(8/4) row tiles * ceil(27/8) column tiles * 16 pixels = 2 * 4 * 16 = 128.
        # depthwise: 8 groups * ceil(1/4) * ceil(9/8) * 16 = 8 * 1 * 2 * 16 = 256.
        # linear: ceil(10/4) * ceil(128/8) * 1 = 3 * 16 = 48.
        (16, [128, 256, 48]),
        (8, [64, 128, 24]),  # packing 2
        (6, [64, 128, 24]),  # packing 2
        (4, [22, 43, 8]),  # packing 6: ceil(128/6), ceil(256/6), ceil(48/6)
        (3, [22, 43, 8]),
        (2, [9, 18, 4]),  # packing 15: ceil(128/15), ceil(256/15), ceil(48/15)
    ],
)
def test_hand_computed_cycles_4x8(bits: int, expected: list[int]) -> None:
    report = _tiny_cost().evaluate(bits)
    assert report.layers["cycles"].tolist() == expected
    assert report.cycles == sum(expected)
    assert report.speedup == pytest.approx((128 + 256 + 48) / sum(expected))


def test_hand_computed_cycles_other_arrays() -> None:
    # A 1 x 1 array does one MAC per cycle at 16 bits: cycles == MACs.
    assert _tiny_cost(1, 1).evaluate(16).layers["cycles"].tolist() == [3456, 1152, 1280]
    # 16 x 32: conv 1 * ceil(27/32) * 16 = 16; depthwise 8 * 1 * 1 * 16 = 128;
    # linear 1 * ceil(128/32) = 4. At 8 bits, halved (rounded up).
    cost = _tiny_cost(16, 32)
    assert cost.evaluate(16).layers["cycles"].tolist() == [16, 128, 4]
    assert cost.evaluate(8).layers["cycles"].tolist() == [8, 64, 2]


def test_mixed_bits_and_widths_hand_computed() -> None:
    # widths: conv 0.5 (8 -> 4 channels); the depthwise entry is ignored (follows its input);
    # the linear classifier keeps 10 outputs and gets 4 * 16 = 64 inputs.
    report = _tiny_cost().evaluate([8, 4, 2], [0.5, 3.0, 0.1])
    layers = report.layers
    assert layers["out"].tolist() == [4, 4, 10]
    assert layers["in"].tolist() == [3, 4, 64]
    assert layers["weights"].tolist() == [4 * 3 * 9, 4 * 9, 10 * 64]
    # conv: ceil(4/4) * ceil(27/8) * 16 = 64 -> /2 = 32; depthwise: 4 * 1 * 2 * 16 = 128
    # -> ceil(128/6) = 22; linear: ceil(10/4) * ceil(64/8) = 24 -> ceil(24/15) = 2.
    assert layers["cycles"].tolist() == [32, 22, 2]
    # size: (108 * 8 + 36 * 4 + 640 * 2) / 8 bytes.
    assert report.size_bytes == (108 * 8 + 36 * 4 + 640 * 2) / 8
    # latency at the default 200 MHz.
    assert report.latency_s == pytest.approx(56 / 200e6)
    assert report.throughput_fps == pytest.approx(200e6 / 56)


def test_memory_bound_layers() -> None:
    # 1 byte per cycle (0.1 GB/s at 100 MHz). At 16 bits the linear layer moves
    # (1280 weights + 128 inputs + 10 outputs) * 2 bytes = 2,836 bytes -> 2,836 cycles;
    # the conv moves (216 + 3*16 + 8*16) * 2 = 784 bytes -> 784 cycles (compute: 128).
    report = _tiny_cost(clock_mhz=100.0, dram_gbps=0.1).evaluate(16)
    assert report.layers["dram_bytes"].tolist() == [784.0, (72 + 128 + 128) * 2.0, 2836.0]
    assert report.layers["cycles"].tolist() == [784, 656, 2836]
    assert report.layers["compute_cycles"].tolist() == [128, 256, 48]


def test_energy_hand_computed() -> None:
    # DSP only, 1 pJ per DSP operation: ceil(MACs / packing) operations.
    dsp = _tiny_cost(pj_per_dsp_op=1.0, pj_per_dram_byte=0.0, pj_per_bram_byte=0.0)
    assert dsp.evaluate(16).energy_j == pytest.approx((3456 + 1152 + 1280) * 1e-12)
    assert dsp.evaluate(2).energy_j == pytest.approx((231 + 77 + 86) * 1e-12)  # ceil(x / 15)
    # BRAM only: two operands of bits / 8 bytes per MAC.
    bram = _tiny_cost(pj_per_dsp_op=0.0, pj_per_dram_byte=0.0, pj_per_bram_byte=1.0)
    assert bram.evaluate(4).energy_j == pytest.approx(2 * 5888 * 0.5 * 1e-12)
    # DRAM only: the bytes of test_memory_bound_layers at 16 bits.
    dram = _tiny_cost(pj_per_dsp_op=0.0, pj_per_dram_byte=1.0, pj_per_bram_byte=0.0)
    assert dram.evaluate(16).energy_mj == pytest.approx((784 + 656 + 2836) * 1e-9)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv1", "small_cnn"])
def test_size_linear_in_bits_and_fip16_speedup_is_one(name: str) -> None:
    cost = zoo_cost_model(name, 10)
    weights = cost.evaluate(16).layers["weights"].sum()
    for bits in PACKING:
        assert cost.evaluate(bits).size_bytes == weights * bits / 8
    assert cost.baseline().speedup == 1.0
    assert cost.evaluate(16, 1.0).speedup == 1.0
    assert cost.evaluate(8, 1.0).speedup > 1.0


@pytest.mark.parametrize("name", ["resnet20", "resnet18_cifar", "mobilenetv1", "mobilenetv2"])
def test_analytic_widths_match_built_model(name: str) -> None:
    """Width multipliers applied to the traced shapes == costing the width-scaled network."""
    rng = np.random.default_rng(1)
    n = len(layer_names(name, 10))
    widths = rng.choice([0.75, 0.875, 1.0, 1.125, 1.25], n)
    bits = rng.choice(sorted(PACKING), n)
    analytic = zoo_cost_model(name, 10, dram_gbps=None).evaluate(bits, widths)
    with torch.device("meta"):
        built = build_model(name, 10, widths)
    counts = [
        built.get_submodule(nm).get_parameter("weight").numel() for nm in layer_names(name, 10)
    ]
    assert analytic.layers["weights"].tolist() == counts
    traced = DSPPackingModel(built, input_shape(name), dram_gbps=None).evaluate(bits)
    for column in ("in", "out", "groups", "macs", "cycles"):
        assert analytic.layers[column].tolist() == traced.layers[column].tolist(), column


def test_paper_baseline_sizes() -> None:
    # FiP16 = 2 bytes per weight. Table II: ResNet-20 0.54 MB, ImageNet ResNet-18 23.38 MB.
    assert zoo_cost_model("resnet20", 10).baseline().size_mb == pytest.approx(0.54, abs=0.005)
    assert zoo_cost_model("resnet18", 1000).baseline().size_mb == pytest.approx(23.38, abs=0.03)


@pytest.mark.parametrize("bits", [5, 1, 7, 32, 0, 8.5])
def test_bits_without_packing_rule(bits: float) -> None:
    with pytest.raises(ValueError, match="no packing rule; supported bit-widths: 2, 3, 4, 6, 8"):
        _tiny_cost().evaluate([8, bits, 8])  # type: ignore[list-item]


def test_bad_lengths_and_widths() -> None:
    cost = _tiny_cost()
    with pytest.raises(ValueError, match="has 2 entries but the model has 3 .* 0:0, 1:2, 2:4"):
        cost.evaluate([8, 8])
    with pytest.raises(ValueError, match="must be finite and > 0, got -1 for layer 1"):
        cost.evaluate(8, [1, -1, 1])
    with pytest.raises(ValueError, match="`rows` must be a positive integer"):
        _tiny_cost(rows=0)


def test_untraceable_model_allows_bits_but_not_widths() -> None:
    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: not fx-traceable
                return self.conv(-x)
            return self.conv(x)

    cost = DSPPackingModel(Branchy(), (1, 5, 5))
    assert cost.evaluate(4).size_bytes == 4 * 9 * 4 / 8
    assert cost.evaluate(4, 1.0).size_bytes == 4 * 9 * 4 / 8
    with pytest.raises(ValueError, match="torch.fx-traceable"):
        cost.evaluate(4, 0.5)


def test_objective_forms() -> None:
    cost = zoo_cost_model("small_cnn", 10)
    report = cost.evaluate(16)
    base = report.size_mb
    limits = HardwareLimits(size_mb=base / 2, throughput_fps=report.throughput_fps / 4)
    # size is 2x the limit -> violation 1.0; throughput 4x the floor -> 1 - 4 = -3 (met).
    assert limits.violations(report) == pytest.approx({"size_mb": 1.0, "throughput_fps": -3.0})
    assert lagrangian(0.9, report, limits) == pytest.approx(0.9 - 1000.0)
    assert lagrangian(0.9, cost.evaluate(4), limits) == 0.9  # 4 bits: a quarter of the size
    assert pareto_directions(["size_mb", "throughput_fps"]) == ["maximize", "minimize", "maximize"]
    assert pareto_values(0.5, report, ["latency_ms"]) == (0.5, report.latency_ms)
    with pytest.raises(ValueError, match="Unknown metrics"):
        pareto_values(0.5, report, ["flops"])
    with pytest.raises(ValueError, match="`latency_ms` must be a finite number > 0"):
        HardwareLimits(latency_ms=0)


def test_set_constraints_marks_infeasible_trials() -> None:
    cost = zoo_cost_model("small_cnn", 10)
    limits = HardwareLimits(size_mb=cost.evaluate(8).size_mb)

    def objective(trial: optuna.Trial) -> float:
        bits = trial.suggest_categorical("bits", [4, 16])
        set_constraints(trial, cost.evaluate(bits), limits)
        return 0.0

    study = optuna.create_study()
    study.enqueue_trial({"bits": 4})
    study.enqueue_trial({"bits": 16})
    study.optimize(objective, n_trials=2)
    assert study.trials[0].constraints == {"size_mb": pytest.approx(-0.5)}
    assert study.trials[1].constraints == {"size_mb": pytest.approx(1.0)}


def test_unattainable_limit_is_an_error() -> None:
    cost = zoo_cost_model("resnet20", 10)
    smallest = cost.evaluate(2, 0.75).size_mb
    ok = HardwareLimits(size_mb=smallest * 1.01)
    ok.check_attainable(cost, [8, 6, 4, 3, 2], [0.75, 1.0, 1.25])
    with pytest.raises(ValueError, match=r"size_mb limit .* \(best reachable: 0.0"):
        HardwareLimits(size_mb=smallest * 0.99).check_attainable(cost, [8, 2], [0.75, 1.25])
    # Per-layer choices: the pruned space gives layer 0 only {8, 6}.
    per_layer = [[8, 6]] + [[3, 2]] * 19
    with pytest.raises(ValueError, match="No configuration"):
        HardwareLimits(size_mb=smallest).check_attainable(cost, per_layer, [0.75])


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    bits = ",".join(["8"] + ["3"] * 18 + ["8"])
    assert main(["cost", "--model", "resnet20", "--num-classes", "10", "--bits", bits]) == 0
    human = capsys.readouterr().out
    assert "layer3.2.conv2" in human and "speedup" in human
    assert (
        main(["cost", "--model", "resnet20", "--num-classes", "10", "--bits", bits, "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    expected = zoo_cost_model("resnet20", 10).evaluate([8] + [3] * 18 + [8])
    assert result["size_mb"] == pytest.approx(expected.size_mb)
    assert result["speedup"] == pytest.approx(expected.speedup)
    for key in ("latency_ms", "energy_mj", "throughput_fps"):
        assert result[key] == pytest.approx(getattr(expected, key))
    assert [row["layer"] for row in result["layers"]] == layer_names("resnet20", 10)
    assert result["layers"][0]["bits"] == 8 and result["layers"][1]["bits"] == 3


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", "small_cnn", "--num-classes", "10", "--bits", "8,8"]) == 2
    err = capsys.readouterr().err
    assert "the model has 4 Conv/Linear layers" in err and "0:conv1, 1:conv2, 2:fc1, 3:fc2" in err
    assert main(["cost", "--model", "small_cnn", "--num-classes", "10", "--widths", "0"]) == 2
    assert "> 0" in capsys.readouterr().err
    assert main(["cost", "--model", "small_cnn", "--num-classes", "10", "--bits", "8,x"]) == 2
    assert "comma-separated list of ints" in capsys.readouterr().err


def test_every_zoo_model_costs() -> None:
    for name in MODEL_NAMES:
        report = zoo_cost_model(name, 10).evaluate(4, 0.75)
        assert report.size_bytes > 0 and report.speedup > 1.0


def test_ebops_hand_computed() -> None:
    # EBOPs = sum over layers of MACs x weight bits x input bits (one bit-width per layer).
    # MACs 3,456 / 1,152 / 1,280 (above) at 8 / 4 / 2 bits: 3456*64 + 1152*16 + 1280*4.
    report = _tiny_cost().evaluate([8, 4, 2])
    assert report.ebops == 3456 * 64 + 1152 * 16 + 1280 * 4 == 244_736
    assert report.layers["ebops"].tolist() == [3456 * 64, 1152 * 16, 1280 * 4]
    assert report.to_dict()["ebops"] == 244_736
    # Widths scale the MACs: conv 4 channels (1,728 MACs), depthwise 4 (576), linear 640.
    halved = _tiny_cost().evaluate([8, 4, 2], [0.5, 1.0, 1.0])
    assert halved.ebops == 1728 * 64 + 576 * 16 + 640 * 4


def test_ebops_limit_in_every_objective_form() -> None:
    report = _tiny_cost().evaluate([8, 4, 2])
    limits = HardwareLimits(ebops=report.ebops / 2)
    assert limits.violations(report) == {"ebops": 1.0}
    assert lagrangian(0.9, report, limits) == pytest.approx(0.9 - 1000.0)
    assert HardwareLimits(ebops=report.ebops).violations(report) == {"ebops": 0.0}
    assert pareto_values(0.9, report, ["ebops"]) == (0.9, 244_736.0)
    with pytest.raises(ValueError, match="ebops"):
        HardwareLimits(ebops=0)
