"""The OptunaHub package in optunahub_package/samplers/kmeans_tpe, loaded as OptunaHub loads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import runpy
from typing import Any

import pytest

from optuna_kmtpe import KMeansTPESampler


optunahub = pytest.importorskip("optunahub")
ROOT = Path(__file__).resolve().parents[1] / "optunahub_package"
PACKAGE = ROOT / "samplers" / "kmeans_tpe"


def _package_tests() -> Any:
    spec = importlib.util.spec_from_file_location(
        "kmeans_tpe_package_tests", PACKAGE / "tests" / "test_sampler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The package's own tests (Optuna's conformance suite), collected here.
_tests = _package_tests()
TestPackageConformance = _tests.TestKMeansTPESampler
test_package_no_repeats = _tests.test_no_configuration_repeats_on_a_discrete_space


def test_load_local_module_returns_the_sampler() -> None:
    module = optunahub.load_local_module(package="samplers/kmeans_tpe", registry_root=str(ROOT))
    assert module.KMeansTPESampler is KMeansTPESampler


def test_the_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # Offline: the example's optunahub.load_module reads this folder instead of the registry.
    def load_module(package: str, **_: Any) -> Any:
        return optunahub.load_local_module(package=package, registry_root=str(ROOT))

    monkeypatch.setattr(optunahub, "load_module", load_module)
    runpy.run_path(str(PACKAGE / "example.py"), run_name="__main__")
    assert "30 distinct of 30 trials" in capsys.readouterr().out


def test_the_readme_has_the_registry_front_matter() -> None:
    text = (PACKAGE / "README.md").read_text()
    front = text.split("---")[1]
    for key in ("author", "title", "description", "tags", "optuna_versions", "license"):
        assert f"\n{key}: " in front, key
    assert "sampler" in front.split("tags: ")[1].split("\n")[0]
    for section in ("## Abstract", "## Class or Function Names", "## Installation", "## Example"):
        assert section in text
    for path in ("LICENSE", "requirements.txt", "example.py", "benchmark.py", "__init__.py"):
        assert (PACKAGE / path).exists(), path
    assert "optuna-kmtpe" in (PACKAGE / "requirements.txt").read_text()
