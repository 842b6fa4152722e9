"""Every subcommand reports bad input as ``kmtpe <command>: error: ...`` and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from optuna_kmtpe.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--trials", "0"],
        ["sensitivity", "--checkpoint", "{tmp}/none.pt"],
        ["cost", "--model", "small_cnn", "--num-classes", "10", "--bits", "8,x"],
        ["bench", "--out", "{tmp}/b", "--seeds", "0"],
        ["bench", "--out", "{tmp}/b", "--tasks", "mnist"],
        ["figures", "--results", "{tmp}/none", "--out", "{tmp}/f"],
        ["export", "{tmp}/none", "--format", "qonnx", "--out", "{tmp}/x.onnx"],
    ],
)
def test_errors_name_the_command_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "search":
        argv += ["--out", str(tmp_path / "s")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kmtpe {argv[0]}: error: "), err
