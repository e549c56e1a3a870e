"""``lossval watch LANDING_DIR``: emit a Prefect event for every file that lands completely.

A file counts as landed when a fresh ``<name>.done`` marker sits next to it (at least as new as the
file, or not the marker seen at its last report; see :mod:`lossval.landing`), or when its size and
modification time stay the same for ``--settle`` seconds over two polls (files renamed into the
folder atomically settle at once). Names starting with ``.``/``~`` or ending in ``.tmp``, ``.part``,
``.partial``, ``.crdownload``, ``.swp`` are ignored: write under such a name, then rename.
The rules live in :mod:`lossval.landing`.

Each landed file gives one event ``lossval.data.arrived`` with resource
``lossval.dataset.<dataset>`` and payload ``{"path": <relative to LANDING_DIR>, "dataset": ...,
"size": ..., "reason": "marker"|"stable"}``; the ``lossval-arrival/on-arrival`` deployment
(``lossval serve``) is triggered by it. Files already reported are remembered in a JSON state file
(default: ``.<landing folder name>.lossval-watch.json`` beside the landing folder), written atomically,
so a restarted watcher does not report them again.

This module imports nothing heavy at import time: the CLI builds its parser from :func:`add_arguments`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "default_state_path"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossval watch`` (the ``landing_dir`` positional is defined by the CLI)."""
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the folder (default 2)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="a file without .done marker counts as landed once unchanged this many seconds (default 5)")
    parser.add_argument("--require-marker", action="store_true",
                        help="only files with a <name>.done marker count as landed")
    parser.add_argument("--state-file", default=None,
                        help="JSON file of already-reported files (default: .<landing name>.lossval-watch.json beside it)")


def default_state_path(landing_dir: Path) -> Path:
    """``<parent>/.<landing name>.lossval-watch.json``: beside the landing folder, not in it."""
    real = Path(os.path.realpath(landing_dir))
    return real.parent / f".{real.name}.lossval-watch.json"


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def run(args: argparse.Namespace) -> int:
    """Watch until interrupted. Returns 2 for a bad folder or a missing PREFECT_API_URL."""
    from lossval.errors import InputError
    from lossval.landing import LandingScanner

    if args.interval <= 0:
        raise InputError(f"--interval must be > 0 seconds, got {args.interval}.")
    landing = Path(args.landing_dir)
    state_path = Path(args.state_file) if args.state_file else default_state_path(landing) if landing.is_dir() else None
    import logging

    warnings = logging.getLogger("lossval.landing")  # skipped files (symlinks leaving the folder, bad names)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    warnings.addHandler(handler)
    warnings.propagate = False
    scanner = LandingScanner(landing, settle_seconds=args.settle, require_marker=args.require_marker,
                             state_path=state_path)
    api = _api_url()
    if not api:
        raise InputError("PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) and "
                         "export PREFECT_API_URL=http://127.0.0.1:4200/api, so events reach the deployments.")
    rule = ("a <name>.done marker" if args.require_marker
            else f"a <name>.done marker or {args.settle:g}s without change")
    print(f"lossval watch: watching {scanner.root} every {args.interval:g}s (landed = {rule}); "
          f"events to {api}; state in {state_path}", flush=True)
    import asyncio

    asyncio.run(_watch(scanner, interval=args.interval))
    return 0


async def _watch(scanner, *, interval: float) -> None:  # noqa: ANN001 (LandingScanner, imported lazily)
    import asyncio
    import time

    from prefect.events import Event, get_events_client

    from lossval.landing import ARRIVAL_EVENT, resource_id

    # One event per landed file, kept until it is sent: Prefect's events client buffers what it
    # could not send and resends it on reconnecting, so a new event (a new id) per retry would
    # reach the server once per retry, each a run. Under one id the server keeps and acts on one.
    unsent: dict[tuple, Event] = {}
    async with get_events_client(reconnection_attempts=3) as client:
        while True:
            for landed in scanner.poll():
                key = (landed.relative, landed.size, landed.mtime_ns, landed.inode, landed.marker)
                event = unsent.setdefault(key, Event(
                    event=ARRIVAL_EVENT,
                    resource={"prefect.resource.id": resource_id(landed.dataset), "prefect.resource.name": landed.dataset},
                    payload={"path": landed.relative, "dataset": landed.dataset, "size": landed.size,
                             "reason": landed.reason}))
                try:
                    await client.emit(event)
                except Exception as exc:  # server down: keep the file unreported and try again next poll
                    print(f"lossval watch: could not send the event for {landed.relative} "
                          f"({type(exc).__name__}: {exc}); retrying", file=sys.stderr, flush=True)
                    break
                unsent.pop(key, None)
                scanner.mark_emitted(landed, event_id=str(event.id))
                print(f"lossval watch: {time.strftime('%H:%M:%S')} {landed.relative} landed ({landed.reason}, "
                      f"{landed.size} bytes) -> {ARRIVAL_EVENT} for dataset {landed.dataset} (event {event.id})",
                      flush=True)
            await asyncio.sleep(interval)
