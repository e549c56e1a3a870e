"""Prefect's temporary server for one lossval process, stopped when that process is gone.

``lossval run`` and ``lossval demo`` start Prefect's temporary API server (uvicorn) as a child
process. Launched plainly, the child shares the terminal's process group, so Ctrl-C killed the
server before lossval could stop its flow (a connection error reported as a bug, a minute
later), and a lossval process killed by SIGKILL (the OOM killer, ``kill -9``) left the server
running for good. :class:`GuardedServer` starts the same server in a session of its own, through
this module, which watches the lossval process and stops uvicorn (SIGTERM: its clean shutdown)
once that process is gone.

Run as ``python -m flows._server_guard <lossval pid> <uvicorn arguments...>``.

On a first run Prefect's server needs about 10 s to come up (it creates its database), and the
flow waits for it. Getting its command from Prefect means importing Prefect's server module
(about 2 s on 2 cores), so :func:`launch_early` starts the process before that import, with the
command Prefect's ephemeral server would use; :class:`GuardedServer` then adopts that process
only if Prefect, asked for its command, gives the same one (else it stops it and launches
Prefect's).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["GuardedServer", "POLL_S", "launch_early"]

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


def _guarded_popen(args: list[str], kwargs: dict[str, Any]) -> subprocess.Popen[Any]:
    """Prefect's ``python -m uvicorn ...`` command, run through this module in a session of its own."""
    guarded = [args[0], "-m", "flows._server_guard", str(os.getpid()), *args[3:]]
    return subprocess.Popen(guarded, start_new_session=True, **kwargs)


@dataclass
class _Early:
    """A server process started by :func:`launch_early`, with the command and environment it got."""

    port: int
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[Any]


_early: _Early | None = None
_early_lock = threading.Lock()


def _prefect_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PREFECT")}


def _free_port(tries: int = 10) -> int | None:
    """A port in 8000-8999 free on 127.0.0.1 now (the range Prefect's temporary server draws from)."""
    for _ in range(tries):
        port = random.randrange(8000, 9000)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return None


def launch_early() -> int | None:
    """Start the temporary server's process now, before Prefect's server module is imported.

    Returns:
        Its port, for :class:`GuardedServer` to take (it adopts the process when Prefect's own
        command for that port is the same); None when nothing was started: one is started
        already, this process already has Prefect's server running, or no port is free.
    """
    global _early
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is not None:  # its server may already be running in this process: leave it to Prefect
        running = server_module.SubprocessASGIServer._instances.get(None)
        if running is not None and getattr(running, "running", False):
            return None
    import prefect
    from prefect.settings import get_current_settings

    with _early_lock:
        if _early is not None:
            return None
        port = _free_port()
        if port is None:
            return None
        args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "error", "--lifespan", "on"]
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
               **get_current_settings().to_environment_variables(exclude_unset=True)}
        _early = _Early(port, args, env, _guarded_popen(args, {"env": env}))
        return port


def _take_early() -> _Early | None:
    global _early
    with _early_lock:
        early, _early = _early, None
    return early


def stop_unadopted() -> None:
    """Stop a process :func:`launch_early` started that no server adopted (its run ended before the flow)."""
    early = _take_early()
    if early is not None:
        _stop(early.process)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@functools.lru_cache(maxsize=None)
def _guarded_server_class() -> type:
    from prefect.server.api.server import SubprocessASGIServer

    class GuardedServer(SubprocessASGIServer):
        """Prefect's ``SubprocessASGIServer``, launched through this module in a session of its own.

        Prefect keeps one temporary server per process (``SubprocessASGIServer()`` returns it),
        so the flow run uses this one. The command is Prefect's own: it is captured from
        :meth:`SubprocessASGIServer._run_uvicorn_command` and only prefixed and re-sessioned.
        A process :func:`launch_early` started is used instead when its port, command and
        Prefect settings are the ones captured, and stopped when they are not.
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
            args, kwargs = captured["args"], captured["kwargs"]
            early = _take_early()
            if early is not None:
                if (early.port == self.port and early.args == args and set(kwargs) == {"env"}
                        and _prefect_env(early.env) == _prefect_env(kwargs["env"]) and early.process.poll() is None):
                    return early.process  # the very command Prefect would run, started seconds ago
                _stop(early.process)  # another command (another Prefect), another port, or it exited
            if args[1:3] != ["-m", "uvicorn"]:  # another Prefect: launch its command unguarded, as it would
                return subprocess.Popen(args, **kwargs)
            return _guarded_popen(args, kwargs)

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
