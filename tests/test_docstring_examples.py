"""The ``.. testcode::`` examples of the public classes run as written."""

from __future__ import annotations

import re
import textwrap

import pytest

from optuna_kmtpe import KMeansTPESampler


def _testcode_blocks(doc: str) -> list[str]:
    """The code under each ``.. testcode::`` directive: lines indented deeper than it."""
    blocks = []
    for match in re.finditer(r"^([ \t]*)\.\. testcode::\n", doc, flags=re.MULTILINE):
        directive_indent = len(match.group(1))
        lines = []
        for line in doc[match.end() :].splitlines():
            if line.strip() and len(line) - len(line.lstrip()) <= directive_indent:
                break
            lines.append(line)
        blocks.append(textwrap.dedent("\n".join(lines)))
    return blocks


@pytest.mark.parametrize("cls", [KMeansTPESampler])
def test_testcode_examples_run(cls: type) -> None:
    blocks = _testcode_blocks(cls.__doc__ or "")
    assert blocks, f"{cls.__name__} has no testcode example"
    for block in blocks:
        exec(compile(block, f"<{cls.__name__} docstring>", "exec"), {})
