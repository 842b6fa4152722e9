"""Every subcommand reports bad input as ``kmtpe <command>: error: ...`` and exits 2."""

from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys

import pytest

from optuna_kmtpe.cli import build_parser
from optuna_kmtpe.cli import main


REPO = Path(__file__).resolve().parents[1]


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


def test_command_line_names_match_their_sources() -> None:
    from optuna_kmtpe._commands import _names
    from optuna_kmtpe._compress.inherit import NARROW_RULES
    from optuna_kmtpe._compress.limits import OBJECTIVES
    from optuna_kmtpe._compress.search_space import SPACE_RULES
    from optuna_kmtpe._sampler_registry import SEARCH_SAMPLERS
    from optuna_kmtpe._search import pruning
    from optuna_kmtpe._search.choice_rule import CHOICE_RULES
    from optuna_kmtpe._search.repair import INFEASIBLE_MODES

    assert _names.SAMPLERS == SEARCH_SAMPLERS
    assert _names.SPACE_RULES == tuple(r for r in SPACE_RULES if r != "given")
    assert _names.INFEASIBLE_MODES == INFEASIBLE_MODES
    assert _names.CHOICE_RULES == CHOICE_RULES
    assert _names.NARROW_RULES == NARROW_RULES
    assert _names.OBJECTIVES == OBJECTIVES
    assert _names.PRUNERS == pruning.PRUNERS
    assert _names.DEFAULT_PRUNER == pruning.DEFAULT_PRUNER


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--trials", "x"],
        ["search", "--sampler", "nope"],
        ["compare", "--threads", "0"],
        ["sensitivity", "--bogus"],
        ["--version"],
    ],
)
def test_usage_errors_and_version_load_neither_torch_nor_optuna_nor_numpy(
    argv: list[str],
) -> None:
    # What makes them answer at once; the wall time is measured in docs/first_run.md.
    code = (
        "import sys\n"
        "from optuna_kmtpe.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, 2), e.code\n"
        "print(sorted(m for m in ('torch', 'optuna', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from optuna_kmtpe import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kmtpe {__version__}"


def test_every_search_option_has_help_text() -> None:
    parser = build_parser(only="search")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    search = sub.choices["search"]
    missing = [a.option_strings for a in search._actions if a.option_strings and not a.help]
    assert not missing
