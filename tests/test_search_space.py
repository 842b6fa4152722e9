from __future__ import annotations

from collections.abc import Callable
import subprocess
import sys

import numpy as np
import optuna
import pytest

from optuna_kmtpe import KMeansTPESampler
from optuna_kmtpe import MixedPrecisionSpace
from optuna_kmtpe import prune_search_space
from optuna_kmtpe import TraceEstimate
from optuna_kmtpe._compress.search_space import bit_subsets
from optuna_kmtpe._compress.search_space import Configuration


PAPER = [(8, 6), (6, 4, 3), (4, 3, 2), (3, 2)]


def _four_groups() -> dict[str, float]:
    # 4 groups, decades apart, with spread inside each group; shuffled layer order.
    rng = np.random.default_rng(0)
    centres = {0: 1e-1, 1: 1e-2, 2: 1e-3, 3: 1e-4}
    layers = {}
    for i in rng.permutation(20):
        group = int(i) % 4
        layers[f"layer{i}"] = centres[group] * float(rng.uniform(0.7, 1.4))
    return layers


def test_bit_subsets_rule() -> None:
    assert bit_subsets((8, 6, 4, 3, 2), 4) == PAPER
    assert bit_subsets((2, 3, 4, 6, 8), 4) == PAPER  # order of B does not matter
    assert bit_subsets((8, 6, 4, 3, 2), 1) == [(8, 6, 4, 3, 2)]
    assert bit_subsets((8, 6, 4, 3, 2), 2) == [(8, 6), (3, 2)]
    assert bit_subsets((8, 6, 4, 3, 2), 3) == [(8, 6), (6, 4, 3), (3, 2)]
    assert bit_subsets((8, 6, 4, 3, 2), 5) == [(8, 6), (8, 6, 4), (6, 4, 3), (4, 3, 2), (3, 2)]
    assert bit_subsets((8, 4), 3) == [(8, 4), (8, 4), (8, 4)]
    with pytest.raises(ValueError, match="n_clusters"):
        bit_subsets((8, 4), 0)
    with pytest.raises(ValueError, match="distinct positive ints"):
        bit_subsets((8, 8, 4), 2)


def test_paper_subsets_for_k4() -> None:
    traces = _four_groups()
    space = prune_search_space(traces)
    for layer, value in traces.items():
        group = int(round(-np.log10(value))) - 1  # 0 for ~1e-1 ... 3 for ~1e-4
        assert space.clusters[layer] == group
        assert space.bits[layer] == PAPER[group]
        assert space.widths[layer] == (0.75, 0.875, 1.0, 1.125, 1.25)
    assert space.layers == tuple(traces)


def test_log_and_linear_scales_differ() -> None:
    traces = {"a": 1.0, "b": 0.9, "c": 1e-2, "d": 1e-3, "e": 1e-4, "f": 1e-5}
    log = prune_search_space(traces, n_clusters=3)
    lin = prune_search_space(traces, n_clusters=3, scale="linear")
    assert [log.clusters[la] for la in traces] == [0, 0, 1, 1, 2, 2]
    # On the literal scale everything below 0.9 is one lump next to 0.
    assert lin.clusters["c"] == lin.clusters["f"] == 2


def test_accepts_trace_estimates() -> None:
    traces = {
        "conv": TraceEstimate(trace=30.0, stderr=1.0, numel=300, n_samples=10),
        "fc": TraceEstimate(trace=0.5, stderr=0.05, numel=500, n_samples=10),
    }
    space = prune_search_space(traces, n_clusters=2)
    assert space.normalized_traces == {"conv": 0.1, "fc": 0.001}
    assert space.bits == {"conv": (8, 6), "fc": (3, 2)}


def test_ties_share_a_cluster() -> None:
    traces = {"a": 1e-2, "b": 1e-2, "c": 1e-2, "d": 1e-4, "e": 1e-4, "f": 1e-6, "g": 1e-8}
    space = prune_search_space(traces)
    assert space.clusters["a"] == space.clusters["b"] == space.clusters["c"] == 0
    assert space.clusters["d"] == space.clusters["e"]
    with pytest.warns(UserWarning, match="only 1 distinct"):
        flat = prune_search_space({"a": 0.5, "b": 0.5, "c": 0.5})
    assert set(flat.bits.values()) == {(8, 6, 4, 3, 2)}


def test_fewer_layers_than_clusters() -> None:
    with pytest.warns(UserWarning, match="using 2 clusters"):
        space = prune_search_space({"conv": 1e-2, "fc": 1e-3}, n_clusters=4)
    assert space.bits == {"conv": (8, 6), "fc": (3, 2)}
    with pytest.warns(UserWarning, match="using 1 clusters"):
        one = prune_search_space({"only": 3.0})
    assert one.bits == {"only": (8, 6, 4, 3, 2)}


def test_non_positive_traces_on_log_scale() -> None:
    with pytest.warns(UserWarning, match="non-positive"):
        space = prune_search_space({"a": 1.0, "b": 1e-2, "c": 1e-4, "d": -1e-3}, n_clusters=3)
    assert space.clusters["d"] == 2
    with pytest.raises(ValueError, match="scale='linear'"):
        prune_search_space({"a": -1.0, "b": 0.0})
    linear = prune_search_space({"a": -1.0, "b": 0.0}, scale="linear", n_clusters=2)
    assert linear.bits == {"a": (3, 2), "b": (8, 6)}


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"layers \['b'\] have NaN"):
        prune_search_space({"a": 1.0, "b": float("nan")})
    with pytest.raises(ValueError, match="empty"):
        prune_search_space({})
    with pytest.raises(ValueError, match="scale"):
        prune_search_space({"a": 1.0}, scale="sqrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="width_choices"):
        prune_search_space({"a": 1.0}, width_choices=(1.0, -0.5))
    with pytest.raises(ValueError, match="width_layers"):
        prune_search_space({"a": 1.0}, width_layers=["b"])
    with pytest.raises(ValueError, match="subsets has 2 entries"):
        prune_search_space({"a": 1.0, "b": 2.0}, subsets=[(8,), (4,)])
    with pytest.raises(ValueError, match="TraceEstimate or a number"):
        prune_search_space({"a": "high"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="subset of bit_choices"):
        MixedPrecisionSpace(layers=("a",), bits={"a": (16,)}, widths={})
    with pytest.raises(ValueError, match="missing"):
        MixedPrecisionSpace(layers=("a", "b"), bits={"a": (8,)}, widths={})


def test_explicit_subsets() -> None:
    space = prune_search_space(
        {"a": 1.0, "b": 1e-3}, n_clusters=2, subsets=[(8, 6, 4), (4, 2)], width_layers=[]
    )
    assert space.bits == {"a": (8, 6, 4), "b": (4, 2)}
    assert space.widths == {}


def test_json_round_trip_and_size() -> None:
    space = prune_search_space(_four_groups(), width_layers=["layer0", "layer1"])
    text = space.to_json(indent=2)
    again = MixedPrecisionSpace.from_json(text)
    assert again == space
    assert again.to_json(indent=2) == text
    n_bits = sum(np.log10(len(b)) for b in space.bits.values())
    assert space.log10_size() == pytest.approx(n_bits + 2 * np.log10(5))
    assert space.log10_size(pruned=False) == pytest.approx(20 * np.log10(5) + 2 * np.log10(5))
    assert space.log10_size() < space.log10_size(pruned=False)
    with pytest.raises(ValueError, match="Not a serialised MixedPrecisionSpace"):
        MixedPrecisionSpace.from_json('{"layers": []}')


@pytest.mark.parametrize(
    "make_sampler",
    [
        lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        lambda: optuna.samplers.RandomSampler(seed=0),
        lambda: KMeansTPESampler(seed=0, n_startup_trials=5),
    ],
    ids=["tpe", "random", "kmeans_tpe"],
)
def test_space_is_searchable_by_samplers(
    make_sampler: Callable[[], optuna.samplers.BaseSampler],
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = prune_search_space(_four_groups(), width_layers=["layer0", "layer3"])
    configs: list[Configuration] = []

    def objective(trial: optuna.Trial) -> float:
        config = space.suggest(trial)
        configs.append(config)
        # A smooth stand-in objective: fewer bits and narrower layers score higher.
        return float(sum(config.bits_list()) + 4 * sum(config.widths_list()))

    study = optuna.create_study(sampler=make_sampler())
    good = Configuration(
        bits={la: b[-1] for la, b in space.bits.items()},
        widths={la: (0.75 if la in space.widths else 1.0) for la in space.layers},
    )
    study.enqueue_trial(space.params(good))
    study.optimize(objective, n_trials=25)
    assert configs[0] == good
    for config in configs:
        assert list(config.bits) == list(space.layers)
        for layer in space.layers:
            assert config.bits[layer] in space.bits[layer]
            assert config.widths[layer] in space.widths.get(layer, (1.0,))
    assert set(study.best_params) == {f"bits/{la}" for la in space.layers} | {
        "width/layer0",
        "width/layer3",
    }
    assert space.configuration(study.best_params) == configs[study.best_trial.number]


def test_search_space_module_does_not_import_torch() -> None:
    code = "import sys, optuna_kmtpe._compress.search_space; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
