"""The package's rooms and the one direction of their dependencies."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "optuna_kmtpe"
SAMPLER = {"_sampler", "_split", "_kmeans1d", "_optuna_compat", "_repeats"}
# Room -> the rooms (first component under optuna_kmtpe) it may import.
ALLOWED = {
    "_compress": {"_compress", "_kmeans1d"},
    "_zoo": {"_zoo", "_compress"},
    "_export": {"_export", "_compress"},
    "_search": {
        "_search",
        "_compress",
        "_logging",
        "_budget",
        "_storage",
        "_sampler_registry",
    },
    "_runs": {
        "_runs",
        "_zoo",
        "_search",
        "_compress",
        "_logging",
        "_budget",
        "_storage",
        "_sampler_registry",
    },
}
# Rooms that must not import the command line (it sits on top of them).
BELOW_COMMANDS = ("_bench", "_runs", "_search", "_zoo", "_compress", "_export")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "optuna_kmtpe" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] in ("torch", "paper_figures"):
                found.add(parts[0])
    return found


def test_rooms_depend_one_way() -> None:
    for room, allowed in ALLOWED.items():
        for path in (PACKAGE / room).glob("*.py"):
            bad = _imports(path) - allowed - {"torch"}
            assert not bad, f"{path.name} in {room} imports {sorted(bad)}"


def test_nothing_below_the_command_line_imports_it() -> None:
    for room in BELOW_COMMANDS:
        for path in (PACKAGE / room).glob("*.py"):
            assert "_commands" not in _imports(path), f"{room}/{path.name} imports _commands"


def test_sampler_room_imports_neither_torch_nor_the_rest() -> None:
    for name in SAMPLER:
        bad = _imports(PACKAGE / f"{name}.py") - SAMPLER
        assert not bad, f"{name}.py imports {sorted(bad)}"


def test_the_package_does_not_import_paper_figures() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "figures.py" and path.parent.name == "_commands":
            continue  # NOTE: `kmtpe figures` runs the repository's figure scripts on request
        assert "paper_figures" not in _imports(path), path
