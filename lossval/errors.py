"""Errors that lossval raises for bad input, so callers can tell them from bugs.

The CLI maps :class:`InputError` to exit code 2 and prints only its message (no
traceback unless ``--debug``). Every message names the file, column or row at fault
and says what to do about it.
"""

from __future__ import annotations

__all__ = ["LossvalError", "InputError", "ConfigError", "GateFailed", "NumericalError", "NightlyFailed", "SetupError",
           "WorkspaceError", "UnseenLevelsWarning"]


class LossvalError(Exception):
    """Base class of every error lossval raises on purpose.

    Args:
        local_message: The message as the user's own terminal may show it, when the message withholds a value a
            check observed in the rows (``tracking.log_quarantine: false``): Prefect stores the message as the flow
            run's state message and logs it, so it must not carry what the tracking store may not. None when the
            message withholds nothing. Only ``lossval run`` and ``lossval demo`` print it.
    """

    local_message: str | None = None  # also for a subclass whose __init__ does not come here

    def __init__(self, *args: object, local_message: str | None = None) -> None:
        self.local_message = local_message
        super().__init__(*args)


class InputError(LossvalError, ValueError):
    """The input data is unusable as given (exit code 2).

    Args:
        message: What is wrong and what to do, naming the file/column/row.
        source: Optional file path (or other origin) the problem was found in;
            prefixed to the message when given.
        parts: When the message lists several problems (a datasets file's bad entries), each of them as a whole
            message, for a caller that numbers them among problems of its own (``lossval serve``); else empty.
    """

    def __init__(self, message: str, *, source: str | None = None, parts: list[str] | None = None) -> None:
        self.source = source
        self.parts = list(parts or [])
        super().__init__(f"{source}: {message}" if source else message)


class ConfigError(InputError):
    """The configuration is invalid (exit code 2)."""


class NumericalError(LossvalError):
    """A computation diverged (NaN or infinite results) for these data and settings (exit code 1).

    Nothing is written from a diverged result; the message names the settings to change.
    """


class SetupError(LossvalError):
    """The deployment around lossval is not set up for what was asked (exit code 1): no worker polls the work pool
    a valuation was sent to, a deployment is not registered, a worker sees another workspace or runs another
    release. The message says what to start, register or install; logs show it without a traceback.
    """


class WorkspaceError(LossvalError):
    """A file lossval wrote itself (a run's outputs in the workspace) could not be read back (exit code 1).

    Not the input's fault: the disk failed to read it, or something other than lossval removed it or changed its
    permissions meanwhile. The message names the file and says to check the disk and the workspace, then rerun.
    """


class GateFailed(LossvalError):
    """The quality gate refused promotion (exit code 3).

    Args:
        message: Which checks failed, and the run folder (the run itself is complete).
        summary: The run summary of :func:`flows.clean.run_cleaning` (``run_id``, ``run_dir``,
            ``rows``, ``metrics``, ``model``, ``outputs``), when the caller has it, so a command
            line can report the run it refused.
        local_message: The message as the user's own terminal may show it (:class:`LossvalError`).
    """

    def __init__(self, message: str, *, summary: dict | None = None, local_message: str | None = None) -> None:
        self.summary = summary
        super().__init__(message, local_message=local_message)


class NightlyFailed(LossvalError):
    """One or more datasets of a nightly run failed; the others were cleaned (see ``report``).

    A dataset whose run the quality gate refused is not a failure: it is listed under ``refused``.

    Args:
        message: The failed datasets and why.
        report: The nightly report ``{"started", "flow_run_id", "datasets": [...], "failed": [...],
            "refused": [...], "unchanged": [...]}``, also written to
            ``<workspace>/nightly/<UTC time>-<flow run id>.json``.
    """

    def __init__(self, message: str, *, report: dict) -> None:
        self.report = report
        super().__init__(message)


class UnseenLevelsWarning(UserWarning):
    """Most values of a categorical column in a file are levels the training rows do not have.

    Usually the column is stored differently in that file (codes as numbers, names as text);
    those values encode as no level at all. A caller that has already warned about the file
    can filter this category.
    """
