"""Prefect's temporary server for one lossval process, stopped when that process is gone.

``lossval run`` and ``lossval demo`` start Prefect's temporary API server (uvicorn) as a child
process. Launched plainly, the child shares the terminal's process group, so Ctrl-C killed the
server before lossval could stop its flow (a connection error reported as a bug, a minute
later), and a lossval process killed by SIGKILL (the OOM killer, ``kill -9``) left the server
running for good. :class:`GuardedServer` starts the same server in a session of its own, through
this module, which watches the lossval process and stops uvicorn (SIGTERM: its clean shutdown)
once that process is gone.

Run as ``python -m flows._server_guard <lossval pid> <uvicorn arguments...>``.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

__all__ = ["GuardedServer", "POLL_S"]

POLL_S = 0.5  # how often the server checks that its lossval process is still there


def _watch(owner: int) -> None:
    """Stop this process (uvicorn's clean shutdown) once ``owner`` is no longer its parent."""
    while os.getppid() == owner:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10.0)
    os._exit(1)  # uvicorn did not stop: do not outlive the owner regardless


def _main(argv: list[str]) -> None:
    owner, uvicorn_args = int(argv[0]), argv[1:]
    threading.Thread(target=_watch, args=(owner,), name="lossval-owner-watch", daemon=True).start()
    from uvicorn.main import main as uvicorn_main

    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn_main()  # exits with uvicorn's status (3: port taken, which Prefect retries on another port)


@functools.lru_cache(maxsize=None)
def _guarded_server_class() -> type:
    from prefect.server.api.server import SubprocessASGIServer

    class GuardedServer(SubprocessASGIServer):
        """Prefect's ``SubprocessASGIServer``, launched through this module in a session of its own.

        Prefect keeps one temporary server per process (``SubprocessASGIServer()`` returns it),
        so the flow run uses this one. The command is Prefect's own: it is captured from
        :meth:`SubprocessASGIServer._run_uvicorn_command` and only prefixed and re-sessioned.
        """

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            captured: dict[str, Any] = {}

            class _Capture:
                def __init__(self, args: list[str], **kwargs: Any) -> None:
                    captured.update(args=list(args), kwargs=kwargs)

            import prefect.server.api.server as prefect_server

            real = prefect_server.subprocess
            prefect_server.subprocess = _Shim(_Capture)  # this module's name only: no global patch of subprocess
            try:
                super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess = real
            args = captured["args"]
            if args[1:3] != ["-m", "uvicorn"]:  # another Prefect: launch its command unguarded, as it would
                return subprocess.Popen(args, **captured["kwargs"])
            guarded = [args[0], "-m", "flows._server_guard", str(os.getpid()), *args[3:]]
            return subprocess.Popen(guarded, start_new_session=True, **captured["kwargs"])

    return GuardedServer


class _Shim:
    """Stands in for the ``subprocess`` module inside Prefect's server module while the command is captured."""

    def __init__(self, popen: Any) -> None:
        self.Popen = popen

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


def __getattr__(name: str) -> Any:  # GuardedServer needs Prefect: built on first use
    if name == "GuardedServer":
        return _guarded_server_class()
    raise AttributeError(name)


if __name__ == "__main__":
    _main(sys.argv[1:])
