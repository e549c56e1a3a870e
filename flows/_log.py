"""Prefect's run logs for failures lossval expected: one line each, no traceback, no repeats."""

from __future__ import annotations

import logging

from lossval.errors import GateFailed, InputError, NightlyFailed, SetupError, WorkspaceError

__all__ = ["quiet_expected_errors"]

# Logged by a deployed run's engine after the flow's own "Encountered exception" record, with the
# same exception: for an expected error it only repeats that record, and calls it unexpected.
_ENGINE_REPEAT = "Engine execution exited with unexpected exception"


class _ExpectedErrorsInOneLine(logging.Filter):
    """Drops the traceback from Prefect's records of a run that failed on bad input or a gate refusal.

    Prefect logs every exception that ends a task or flow run with its traceback. For
    :class:`~lossval.errors.InputError` (the message names the file, column or row),
    :class:`~lossval.errors.GateFailed` (the message names the failed checks) and
    :class:`~lossval.errors.SetupError` (e.g. no worker on the valuation's work pool: the message says what to
    start) and :class:`~lossval.errors.WorkspaceError` (a run's own file unreadable: the message names it) that is
    dozens of lines of lossval and Prefect internals per dataset; :class:`~lossval.errors.NightlyFailed` only
    repeats what was logged per dataset. Their records keep their one-line message, and the
    engine's closing repeat of the same exception is dropped; any other exception (a bug) keeps
    its traceback and every record.
    """

    EXPECTED = (InputError, GateFailed, NightlyFailed, SetupError, WorkspaceError)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.EXPECTED):
            if record.getMessage().startswith(_ENGINE_REPEAT):
                return False
            record.exc_info = record.exc_text = None
        return True


_ONE_LINE = _ExpectedErrorsInOneLine()


def quiet_expected_errors() -> None:
    """Install :class:`_ExpectedErrorsInOneLine` on Prefect's run loggers, once per process.

    Called at the start of the nightly and new-data flows. It stays installed after the flow
    returns: a deployed run's engine logs the flow's own exception after that. It reaches every
    handler of those loggers, the console and Prefect's API (the UI) alike.
    """
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if _ONE_LINE not in logger.filters:
            logger.addFilter(_ONE_LINE)
