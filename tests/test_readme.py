"""The README's Python blocks run as written, top to bottom in one namespace (a later block
may use what an earlier one made, as a reader would), in a scratch folder."""

from __future__ import annotations

from pathlib import Path
import re

import pytest


README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.M | re.S)


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert len(BLOCKS) >= 3
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, block in enumerate(BLOCKS, start=1):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "model.qonnx.onnx").is_file()
