"""Reliability tests' fixtures (Prefect's console output) and the corpus tally.

Every test marked ``corpus`` is one bad input; the terminal summary reports how many were
tried and how many were handled as the reliability issue asks (exit 2, one clear line on
stderr naming the file/column/row, no outputs left, inputs and registry unchanged).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

_TRIED: set[str] = set()
_HANDLED: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "corpus: one case of the bad-input corpus (counted in the summary line)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "corpus" not in report.keywords:
        return
    _TRIED.add(report.nodeid)
    if report.when == "call" and report.passed:
        _HANDLED.add(report.nodeid)
    elif report.failed:
        _HANDLED.discard(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001 (pytest's hook)
    if _TRIED:
        terminalreporter.write_line(f"bad-input corpus: {len(_TRIED)} tried, {len(_HANDLED & _TRIED)} handled")


@pytest.fixture
def prefect_console() -> Iterator[io.StringIO]:
    """What Prefect's console handler prints during a test (it holds the stderr of import time)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    buffer = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    saved = [h.console.file for h in handlers]
    for h in handlers:
        h.console.file = buffer
        # Drop output that earlier tests left pending: when the handler's stream was a capture
        # stream pytest has since closed, rich keeps the failed segments and would print them
        # into this buffer with the next line (seen as 13 foreign lines after tests/flows).
        h.console.begin_capture()
        h.console.end_capture()
    try:
        yield buffer
    finally:
        for h, f in zip(handlers, saved):
            h.console.file = f
