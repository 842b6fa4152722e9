"""The package's public names, and the promise that the sampler does not import torch."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import optuna_kmtpe


REPO = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves() -> None:
    for name in optuna_kmtpe.__all__:
        assert getattr(optuna_kmtpe, name).__name__ == name
    assert set(optuna_kmtpe.__all__) <= set(dir(optuna_kmtpe))


def test_package_and_sampler_do_not_import_torch() -> None:
    # A fresh interpreter: this test process has imported torch long ago. The study runs
    # past the startup trials, so the k-means TPE path is exercised too.
    code = (
        "import sys\n"
        "import optuna\n"
        "import optuna_kmtpe\n"
        "assert 'torch' not in sys.modules, 'import optuna_kmtpe'\n"
        "from optuna_kmtpe import KMeansTPESampler\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "study = optuna.create_study(sampler=KMeansTPESampler(seed=0, n_startup_trials=3))\n"
        "study.optimize(lambda t: t.suggest_float('x', -1, 1) ** 2, n_trials=6)\n"
        "assert 'torch' not in sys.modules, 'KMeansTPESampler'\n"
        "for heavy in ('hyperopt', 'cocoex', 'onnx', 'qonnx', 'onnxruntime'):\n"
        "    assert heavy not in sys.modules, heavy\n"
    )
    _run_in_fresh_interpreter(code)


def test_command_line_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from optuna_kmtpe.cli import main\n"
        "for argv in (['--help'], ['search', '--help'], ['sensitivity', '--help'],\n"
        "             ['cost', '--help'], ['bench', '--help'], ['figures', '--help'],\n"
        "             ['export', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert not {'torch', 'hyperopt', 'cocoex', 'onnx', 'qonnx'} & set(sys.modules)\n"
    )
    _run_in_fresh_interpreter(code)


def _run_in_fresh_interpreter(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
