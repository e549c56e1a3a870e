"""The examples in lossval's docstrings run as written (pytest does not collect doctests by itself)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lossval"
WITH_EXAMPLES = sorted(p.stem for p in PACKAGE.glob("*.py") if ">>> " in p.read_text())


def test_the_modules_with_examples_are_found() -> None:
    assert {"__init__", "noise", "pruning", "valuation"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module("lossval" if name == "__init__" else f"lossval.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of lossval/{name}.py failed (output above)"
