"""Smoke run of ``examples/compress_your_model.py`` with tiny settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys


ROOT = Path(__file__).resolve().parents[1]


def test_compress_your_model_example() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["--trials", "3", "--epochs", "1", "--float-epochs", "2", "--finetune-epochs", "1"]
    proc = subprocess.run(
        [sys.executable, "examples/compress_your_model.py", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["data"] == "scikit-learn digits (8x8, offline)"
    assert list(result["bits"]) == ["stem", "block_conv1", "block_conv2", "down", "fc"]
    assert result["bits"]["stem"] == result["bits"]["fc"] == 8
    assert result["size_mb"] <= result["size_limit_mb"] and result["trials"] == 3
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert 0.0 <= result["val_accuracy"] <= 1.0 and 0.0 <= result["float_val_accuracy"] <= 1.0
