"""Process-wide logging settings that lossval's tasks change while a library works, put back after.

lossval's flow may run inside another process (a parent flow, a notebook): what it quiets
there, it restores.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

__all__ = ["quieted_loggers"]


@contextlib.contextmanager
def quieted_loggers(*names: str, level: int = logging.WARNING) -> Iterator[Callable[[], None]]:
    """The named loggers at ``level`` or quieter inside the block; their levels as found put back after.

    Yields a function that quiets them again, for a library whose import sets its own levels.
    """
    loggers = [logging.getLogger(name) for name in names]
    found = [lg.level for lg in loggers]

    def quiet() -> None:
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), level))

    quiet()
    try:
        yield quiet
    finally:
        for lg, was in zip(loggers, found):
            lg.setLevel(was)
