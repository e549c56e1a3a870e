"""Prefect's run log as an operator reads it, for the flow tests."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def kept_run_log(level: int) -> Iterator[list[str]]:
    """Prefect's flow and task run log records at ``level`` and above, as a console handler would write them.

    Read from Prefect's loggers, not from captured stdout/stderr: whether Prefect's console handler writes to the
    stream pytest captures depends on which test configured Prefect's logging first.
    """
    import flows.nightly  # noqa: F401  (Prefect configures its logging on first use, replacing the loggers' handlers)

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]  # the tests run Prefect at WARNING (conftest)
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(min(level, logger.getEffectiveLevel()))
    try:
        yield lines
    finally:
        for logger, was in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(was)
