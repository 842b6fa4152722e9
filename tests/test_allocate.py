"""The baselines' allocators: ILP against brute force, greedy and uniform on hand-made cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from optuna_kmtpe._compress.allocate import greedy_allocation
from optuna_kmtpe._compress.allocate import ilp_allocation
from optuna_kmtpe._compress.allocate import perturbations
from optuna_kmtpe._compress.allocate import sensitivities
from optuna_kmtpe._compress.allocate import uniform_candidates
from optuna_kmtpe._compress.cost import DSPPackingModel
from optuna_kmtpe._compress.limits import HardwareLimits


BITS = (8, 6, 4, 3, 2)


def _net(n_layers: int) -> nn.Module:
    chans = [1, 8, 16, 12, 24, 10][: n_layers + 1]
    layers: list[nn.Module] = []
    for c_in, c_out in itertools.pairwise(chans):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


def _cost(n_layers: int, **hardware: object) -> DSPPackingModel:
    return DSPPackingModel(_net(n_layers), (1, 8, 8), **hardware)  # type: ignore[arg-type]


def _omega(cost: DSPPackingModel, seed: int) -> dict[str, dict[int, float]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in cost.layer_names:
        scale = rng.lognormal(0.0, 2.0)
        out[name] = {b: scale * 4.0 ** (-b) * rng.uniform(0.8, 1.2) for b in BITS}
    return out


def _brute_force(
    cost: DSPPackingModel, limits: HardwareLimits, omega: dict[str, dict[int, float]]
) -> float:
    best = math.inf
    names = list(omega)
    for bits in itertools.product(*(sorted(omega[n]) for n in names)):
        report = cost.evaluate(list(bits))
        if all(v <= 1e-12 for v in limits.violations(report).values()):
            best = min(best, sum(omega[n][b] for n, b in zip(names, bits)))
    return best


def _limits(cost: DSPPackingModel, kind: str, avg_bits: float) -> HardwareLimits:
    size = cost.evaluate(8).size_mb * avg_bits / 8
    latency = cost.evaluate(4).latency_ms * 1.3
    if kind == "size":
        return HardwareLimits(size_mb=size)
    if kind == "latency":
        return HardwareLimits(latency_ms=latency)
    return HardwareLimits(size_mb=size, latency_ms=latency)


@pytest.mark.parametrize("n_layers", [4, 5])
@pytest.mark.parametrize("kind", ["size", "latency", "both"])
@pytest.mark.parametrize("avg_bits", [2.5, 3.0, 4.5])
@pytest.mark.parametrize("dram", [19.2, None])
def test_ilp_equals_brute_force(
    n_layers: int, kind: str, avg_bits: float, dram: float | None
) -> None:
    cost = _cost(n_layers, dram_gbps=dram)
    omega = _omega(cost, seed=n_layers * 10 + int(avg_bits * 2))
    limits = _limits(cost, kind, avg_bits)
    expected = _brute_force(cost, limits, omega)
    found = ilp_allocation(cost, limits, omega)
    assert found.omega == pytest.approx(expected, rel=1e-9)
    assert all(v <= 1e-12 for v in limits.violations(found.report).values())
    # The greedy is feasible and never better than the optimum.
    greedy = greedy_allocation(cost, limits, omega)
    assert all(v <= 1e-12 for v in limits.violations(greedy.report).values())
    assert greedy.omega >= expected * (1 - 1e-9)


def test_ilp_respects_energy_and_throughput() -> None:
    cost = _cost(4)
    omega = _omega(cost, seed=3)
    limits = HardwareLimits(
        energy_mj=cost.evaluate(4).energy_mj, throughput_fps=cost.evaluate(6).throughput_fps
    )
    found = ilp_allocation(cost, limits, omega)
    assert found.omega == pytest.approx(_brute_force(cost, limits, omega), rel=1e-9)


def test_fixed_layers_keep_their_bits_and_count_toward_the_limits() -> None:
    cost = _cost(4)
    names = cost.layer_names
    omega = {n: {b: 4.0 ** (-b) for b in BITS} for n in names[1:]}
    limits = HardwareLimits(size_mb=cost.evaluate(4).size_mb)
    found = ilp_allocation(cost, limits, omega, fixed={names[0]: 8})
    assert found.bits[names[0]] == 8
    assert found.report.size_mb <= limits.size_mb + 1e-12  # type: ignore[operator]
    assert found.omega == pytest.approx(
        min(
            sum(omega[n][b] for n, b in zip(names[1:], bits))
            for bits in itertools.product(BITS, repeat=3)
            if cost.evaluate([8, *bits]).size_mb <= limits.size_mb  # type: ignore[operator]
        )
    )


def test_infeasible_limits_say_what_is_reachable() -> None:
    cost = _cost(4)
    omega = _omega(cost, seed=0)
    limits = HardwareLimits(size_mb=cost.evaluate(2).size_mb * 0.5)
    with pytest.raises(ValueError, match=r"no bit allocation .* size_mb .*Relax the limits"):
        ilp_allocation(cost, limits, omega)
    with pytest.raises(ValueError, match=r"greedy allocation found no bit allocation"):
        greedy_allocation(cost, limits, omega)
    with pytest.raises(ValueError, match=r"No uniform configuration"):
        uniform_candidates(cost, limits, cost.layer_names, BITS)


def test_greedy_lowers_the_least_sensitive_layer_first() -> None:
    """Two layers of equal size: the one whose omega grows less loses its bits."""
    net = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
    cost = DSPPackingModel(net, (4, 8, 8))
    omega = {"0": {8: 0.0, 4: 1.0, 2: 2.0}, "1": {8: 0.0, 4: 10.0, 2: 20.0}}
    limits = HardwareLimits(size_mb=cost.evaluate([4, 8]).size_mb)
    assert greedy_allocation(cost, limits, omega).bits == {"0": 4, "1": 8}
    limits = HardwareLimits(size_mb=cost.evaluate([2, 8]).size_mb)
    assert greedy_allocation(cost, limits, omega).bits == {"0": 2, "1": 8}
    limits = HardwareLimits(size_mb=cost.evaluate([2, 4]).size_mb)
    assert greedy_allocation(cost, limits, omega).bits == {"0": 2, "1": 4}


def test_greedy_weighs_sensitivity_against_bytes_saved() -> None:
    """A large layer saves more bytes per step: it goes first even if a bit more sensitive."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 64, 3))
    cost = DSPPackingModel(net, (1, 8, 8))
    omega = {"0": {8: 0.0, 4: 1.0}, "1": {8: 0.0, 4: 2.0}}
    limits = HardwareLimits(size_mb=cost.evaluate([8, 4]).size_mb)
    assert greedy_allocation(cost, limits, omega).bits == {"0": 8, "1": 4}


def test_uniform_candidates_are_the_undominated_feasible_ones() -> None:
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    cost = DSPPackingModel(net, (1, 8, 8))
    limits = HardwareLimits(size_mb=cost.evaluate(4).size_mb)
    names = cost.layer_names
    found = uniform_candidates(cost, limits, names, BITS, (0.75, 1.0, 1.25), width_layers=names)
    pairs = [(a.bits[names[0]], a.widths[names[0]]) for a in found]
    feasible = [
        (b, w)
        for b in BITS
        for w in (0.75, 1.0, 1.25)
        if cost.evaluate(b, w).size_mb <= limits.size_mb  # type: ignore[operator]
    ]
    for b, w in feasible:  # every feasible pair is covered by a returned one ...
        assert any(b2 >= b and w2 >= w for b2, w2 in pairs)
    for b, w in pairs:  # ... and no other feasible pair dominates a returned one
        assert (b, w) in feasible
        assert not any((b2, w2) != (b, w) and b2 >= b and w2 >= w for b2, w2 in feasible)
    assert len(pairs) >= 2 and [b for b, _ in pairs] == sorted((b for b, _ in pairs), reverse=True)
    # Without widths the answer is the largest bit-width that fits.
    only = uniform_candidates(cost, limits, names, BITS)
    assert [a.bits[names[0]] for a in only] == [4]


def test_sensitivities_follow_the_quantisation_error() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(288, 10))
    pert = perturbations(net, ["0", "2"], BITS)
    for per_bit in pert.values():
        values = [per_bit[b] for b in sorted(BITS)]  # fewer bits, larger error
        assert all(a > b for a, b in itertools.pairwise(values))
    omega = sensitivities({"0": 2.0, "2": 0.5}, pert)
    assert omega["0"][4] == pytest.approx(2.0 * pert["0"][4])
    assert omega["2"][2] == pytest.approx(0.5 * pert["2"][2])


@pytest.mark.parametrize("avg_bits", [3.0, 5.0])
def test_ilp_and_greedy_honour_an_ebops_limit(avg_bits: float) -> None:
    cost = _cost(4)
    omega = _omega(cost, seed=7)
    limits = HardwareLimits(ebops=cost.evaluate(8).ebops * (avg_bits / 8) ** 2)
    found = ilp_allocation(cost, limits, omega)
    assert found.omega == pytest.approx(_brute_force(cost, limits, omega), rel=1e-9)
    assert found.report.ebops <= limits.ebops  # type: ignore[operator]
    greedy = greedy_allocation(cost, limits, omega)
    assert greedy.report.ebops <= limits.ebops  # type: ignore[operator]
    assert greedy.omega >= found.omega * (1 - 1e-9)
