"""Files the package writes get the umask's permissions (a shared run folder, a served report)."""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import stat

import pytest

from optuna_kmtpe._search.checkpoint import atomic_write


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077], ids=oct)
def test_written_file_mode_follows_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    path = tmp_path / "report.html"
    atomic_write(path, lambda f: f.write("<html></html>"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    atomic_write(path, lambda f: f.write(b"x"), mode="wb")  # rewriting keeps the rule
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    atomic_write(path, lambda f: f.write("old"))

    def fail(f: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
