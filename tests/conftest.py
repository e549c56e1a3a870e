"""Test-wide settings (Prefect runs against a throwaway home, quietly, with a generous start-up
timeout) and the one Prefect test harness that the flow and reliability tests share."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator

import pytest

# A test suite started in the background by a non-interactive shell (`cmd &`, nohup, some CI
# runners) inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests would
# then watch `lossval demo` and `lossval serve` shrug the signal off, as such jobs should. They
# test lossval started from a terminal, so the suite restores the default before starting any.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Before anything imports prefect: never touch the user's ~/.prefect, no analytics.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lossval-test-prefect-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary local Prefect API server for the session (flow and reliability tests)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
