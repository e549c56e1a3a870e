"""``lossval watch LANDING_DIR``: emit a Prefect event for every file that lands completely.

A file counts as landed when a fresh ``<name>.done`` marker sits next to it (at least as new as the
file, or not the marker seen at its last report; see :mod:`lossval.landing`), or when its size and
modification time stay the same for ``--settle`` seconds over two polls (a file renamed into the
folder atomically is complete when it appears, and lands ``--settle`` seconds after it is first seen). Names starting with ``.``/``~`` or ending in ``.tmp``, ``.part``,
``.partial``, ``.crdownload``, ``.swp`` are ignored: write under such a name, then rename.
The rules live in :mod:`lossval.landing`.

Each landed file gives one event ``lossval.data.arrived`` with resource
``lossval.dataset.<dataset>`` and payload ``{"path": <relative to LANDING_DIR>, "dataset": ...,
"landing": ..., "size": ..., "mtime_ns": ..., "reason": "marker"|"stable"}`` (``dataset`` is the datasets
file's name for the landing folder with ``--datasets``, else the folder's name); the ``lossval-arrival/on-arrival`` deployment
(``lossval serve``) is triggered by it. Files already reported are remembered in a JSON state file
(default: ``.<landing folder name>.lossval-watch.json`` beside the landing folder), written atomically,
so a restarted watcher does not report them again.

This module imports nothing heavy at import time: the CLI builds its parser from :func:`add_arguments`.
"""

from __future__ import annotations

import argparse
import math
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
    parser.add_argument("--datasets", default=None, metavar="FILE",
                        help="the datasets file `lossval serve` uses: files landing in a folder no dataset lands in "
                             "are reported on the console instead of sent")
    parser.add_argument("--state-file", default=None,
                        help="JSON file of already-reported files (default: .<landing name>.lossval-watch.json beside it)")


def default_state_path(landing_dir: Path) -> Path:
    """``<parent>/.<landing name>.lossval-watch.json``: beside the landing folder, not in it."""
    real = Path(os.path.realpath(landing_dir))
    return real.parent / f".{real.name}.lossval-watch.json"


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def check_api_url(api: str) -> None:
    """Refuse a PREFECT_API_URL without the ``/api`` of a Prefect server's API (``http://127.0.0.1:4200``).

    Without it every request reaches the server's UI routes and fails (HTTP 404 for ``lossval serve``,
    a refused WebSocket for ``lossval watch``), which the CLI could only report as a bug. A plain text
    check on the URL's path, before connecting: it must end in ``/api`` (a trailing ``/`` aside), or
    contain ``/api/accounts/`` as Prefect Cloud's ``.../api/accounts/<id>/workspaces/<id>`` does.

    Raises:
        InputError: naming the URL and the one to export instead.
    """
    from urllib.parse import urlsplit

    from lossval.errors import InputError

    path = urlsplit(api.strip()).path.rstrip("/")
    if path.endswith("/api") or "/api/accounts/" in path:
        return
    base = api.strip().rstrip("/")
    raise InputError(f"PREFECT_API_URL={api} is not the API of a Prefect server: its path must end in /api, e.g. "
                     f"export PREFECT_API_URL={base}/api (for Prefect Cloud: "
                     "https://api.prefect.cloud/api/accounts/<account id>/workspaces/<workspace id>).")


def check_api_key(api: str) -> None:
    """Refuse a Prefect Cloud PREFECT_API_URL without PREFECT_API_KEY (the client fails with a bare ValueError).

    Raises:
        InputError: saying how to set the key.
    """
    from urllib.parse import urlsplit

    from prefect.settings import PREFECT_API_KEY

    from lossval.errors import InputError

    if "/api/accounts/" in urlsplit(api.strip()).path and not PREFECT_API_KEY.value():
        raise InputError(f"PREFECT_API_URL={api} is a Prefect Cloud workspace, but PREFECT_API_KEY is not set: "
                         "run `prefect cloud login`, or export PREFECT_API_KEY=<an API key of that workspace>.")


def run(args: argparse.Namespace) -> int:
    """Watch until interrupted. Returns 2 for a bad option or folder, or a missing or malformed PREFECT_API_URL.

    Options, the state file's kind and the URL's form are checked before anything is written
    (the scanner creates the state file's lock).
    """
    from lossval.errors import InputError
    from lossval.landing import LandingScanner

    # NaN passes every comparison: `nan <= 0` is False. Infinity would never poll again / never settle.
    if not math.isfinite(args.interval) or args.interval <= 0:
        raise InputError(f"--interval must be a finite number of seconds > 0, got {args.interval}; "
                         "e.g. --interval 2 (the default).")
    if not math.isfinite(args.settle) or args.settle < 0:
        raise InputError(f"--settle must be a finite number of seconds >= 0, got {args.settle}; e.g. --settle 5 "
                         "(the default), or --require-marker to land files by their .done marker only.")
    landing = Path(args.landing_dir)
    state_path = Path(args.state_file) if args.state_file else default_state_path(landing) if landing.is_dir() else None
    if state_path is not None and state_path.is_dir():
        # else the scanner created <folder>.lock beside it and only then failed reading the folder as JSON
        example = state_path / default_state_path(landing).name
        raise InputError(f"the watch state file is a folder; give --state-file the path of a JSON file, e.g. "
                         f"--state-file {example}.", source=str(state_path))
    api = _api_url()
    if api:
        check_api_url(api)
        check_api_key(api)
    not_set = InputError("PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) and "
                         "export PREFECT_API_URL=http://127.0.0.1:4200/api, so events reach the deployments.")
    if not api and landing.is_dir():  # (a missing folder: the scanner's error names it first)
        raise not_set  # before the scanner creates the state file's lock
    landings = None
    if args.datasets:  # a bad datasets file, too, before anything is written
        landings = _usable_landings(args.datasets)
    import logging

    warnings = logging.getLogger("lossval.landing")  # skipped files (symlinks leaving the folder, bad names)
    if not any(getattr(h, "lossval_watch", False) for h in warnings.handlers):  # once per process
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.lossval_watch = True
        warnings.addHandler(handler)
    warnings.propagate = False
    scanner = LandingScanner(landing, settle_seconds=args.settle, require_marker=args.require_marker,
                             state_path=state_path)
    if not api:  # the landing folder appeared after the first look
        raise not_set
    rule = ("a <name>.done marker" if args.require_marker
            else f"a <name>.done marker or {args.settle:g}s without change")
    print(f"lossval watch: watching {scanner.root} every {args.interval:g}s (landed = {rule}); "
          f"events to {api}; state in {state_path}", flush=True)
    import asyncio

    asyncio.run(_watch(scanner, interval=args.interval, landings=landings))
    return 0


def _usable_landings(datasets_file: str) -> dict[str, str]:
    """Landing folder -> dataset name of the datasets file's usable entries; each one that is not is said on
    stderr and its folder is left out (files landing there are reported, not sent), as the nightly and arrival
    flows let a bad entry fail alone. Raises a ConfigError naming every problem when no entry is usable."""
    from lossval.catalog import read_catalog, unusable_entries_error

    entries, problems = read_catalog(datasets_file)
    if not entries:  # all of them at once, not one fix per restart
        raise unusable_entries_error(datasets_file, [(problem.where, problem.error) for problem in problems])
    for problem in problems:
        print(f"lossval watch: warning: {problem.where}: {problem.error}; files landing in "
              f"{problem.landing or 'its folder'!r} are not sent until that entry is fixed and the watcher restarted",
              file=sys.stderr, flush=True)
    return {entry.landing: entry.name for entry in entries}


def _not_unable_to_connect(record: "logging.LogRecord") -> bool:
    """False for the events client's connection complaints, which the watcher's own lines replace."""
    return not record.getMessage().startswith(("Unable to connect", "keepalive ping failed"))


# How often the watcher asks the server whether the events it sent are there, and how long after sending (or
# sending again) an event the server still lacks is sent again under its id.
CONFIRM_EVERY_S = 15.0
RESEND_AFTER_S = 60.0


def _age_s(entry: dict, now: "dt.datetime") -> float:
    """Seconds since a state entry's event was last sent."""
    import datetime as dt

    sent = entry.get("resent_at") or entry.get("emitted_at")
    try:
        return (now - dt.datetime.fromisoformat(sent)).total_seconds()
    except (TypeError, ValueError):
        return math.inf


async def _confirm_sent(scanner, client, *, resend_after_s: float = RESEND_AFTER_S) -> None:  # noqa: ANN001
    """Check that the server holds the events this watcher sent; send again, under the same id, one it lacks.

    ``emit`` returns once the event is written to the websocket: a server that dies right then loses
    it, and Prefect's events client sends it again only when it reconnects in the same process. A
    watcher stopped meanwhile (a reboot) had marked the file reported, so it was never cleaned. The
    state file keeps each event until the server is seen to hold it (at startup too); one it still
    lacks ``resend_after_s`` after it was sent is sent again (the server acts once on an id). When
    the server does not answer, nothing is decided.
    """
    import datetime as dt
    import time
    import uuid

    from prefect import get_client
    from prefect.events import Event
    from prefect.events.filters import EventFilter, EventIDFilter, EventOccurredFilter

    pending = scanner.unconfirmed()
    if not pending:
        return
    events = {relative: Event.model_validate(entry["event"]) for relative, entry in pending.items()}
    now = dt.datetime.now(dt.timezone.utc)
    found: set[str] = set()
    relatives = list(pending)
    try:
        async with get_client() as api:
            for start in range(0, len(relatives), 50):
                part = [events[r] for r in relatives[start:start + 50]]
                when = EventOccurredFilter(since=min(e.occurred for e in part) - dt.timedelta(hours=1),
                                           until=max(now, *(e.occurred for e in part)) + dt.timedelta(hours=1))
                page = await api.read_events(filter=EventFilter(id=EventIDFilter(id=[uuid.UUID(str(e.id)) for e in part]),
                                                                occurred=when), limit=len(part))
                found.update(str(e.id) for e in page.events)
    except Exception:  # noqa: BLE001 (the server is down or refuses the query: try again at the next check)
        return
    for relative, entry in pending.items():
        if str(events[relative].id) in found:
            scanner.mark_confirmed(relative)
        elif _age_s(entry, now) >= resend_after_s:
            last = entry.get("resent_at") or entry.get("emitted_at")
            try:
                await client.emit(events[relative])
            except Exception:  # noqa: BLE001 (the send path says when the server is down)
                return
            scanner.mark_resent(relative)
            print(f"lossval watch: {time.strftime('%H:%M:%S')} {relative}: the server does not hold its event "
                  f"{events[relative].id} (sent {last}); sent it again "
                  "under the same id", file=sys.stderr, flush=True)


async def _watch(scanner, *, interval: float, landings: dict[str, str] | None = None) -> None:  # noqa: ANN001
    """Poll ``scanner`` (a LandingScanner, imported lazily) and send one event per landed file.

    ``landings``: the landing folders of the datasets file and their datasets' names, when given
    (the event names the dataset; without it, the landing folder, which the arrival flow maps); a
    file landing elsewhere
    is reported once on the console and not sent (its run could only fail), nor remembered, so
    it is sent once the datasets file names its folder and the watcher is restarted.
    """
    import asyncio
    import time

    from prefect.events import Event, get_events_client

    from lossval.landing import ARRIVAL_EVENT, resource_id

    # One event per landed file, kept until it is sent: Prefect's events client buffers what it
    # could not send and resends it on reconnecting, so a new event (a new id) per retry would
    # reach the server once per retry, each a run. Under one id the server keeps and acts on one.
    unsent: dict[tuple, Event] = {}
    # While the server is down: one line when it stops answering, one when it answers again (not
    # two every poll). Prefect's own "Unable to connect ... event data may be lost" is dropped: the
    # watcher keeps the file unreported and its event, and sends it once the server answers.
    import logging

    for name in ("prefect.events.clients", "websockets.client"):  # and the websocket's traceback when it drops
        client_log = logging.getLogger(name)
        if _not_unable_to_connect not in client_log.filters:
            client_log.addFilter(_not_unable_to_connect)
    down_since: float | None = None
    unknown: set[str] = set()
    failed: set[tuple] = set()
    checked = -math.inf  # when the server was last asked for the events sent (at once: a restart's leftovers)
    async with get_events_client(reconnection_attempts=3) as client:
        while True:
            if down_since is None and time.monotonic() - checked >= CONFIRM_EVERY_S:
                checked = time.monotonic()
                await _confirm_sent(scanner, client)
            for landed in scanner.poll():
                if landings is not None and landed.dataset not in landings:
                    if landed.relative not in unknown:
                        unknown.add(landed.relative)
                        print(f"lossval watch: {landed.relative} landed in {landed.dataset!r}, where no dataset of "
                              f"the datasets file lands ({', '.join(sorted(landings))}); not sent. Add an entry with "
                              f"landing: {landed.dataset} and restart the watcher, or move the file.",
                              file=sys.stderr, flush=True)
                    continue
                key = (landed.relative, landed.size, landed.mtime_ns, landed.inode, landed.marker)
                name = landed.dataset if landings is None else landings[landed.dataset]
                event = unsent.setdefault(key, Event(
                    event=ARRIVAL_EVENT,
                    resource={"prefect.resource.id": resource_id(name), "prefect.resource.name": name},
                    payload={"path": landed.relative, "dataset": name, "landing": landed.dataset,
                             "size": landed.size, "mtime_ns": landed.mtime_ns, "reason": landed.reason}))
                try:
                    await client.emit(event)
                except (ValueError, TypeError) as exc:  # this event cannot be built or sent (not the server's fault)
                    if key not in failed:
                        failed.add(key)
                        print(f"lossval watch: cannot send the event for {landed.relative} ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); skipping that file, the others are watched", file=sys.stderr,
                              flush=True)
                    unsent.pop(key, None)
                    continue
                except Exception as exc:  # server down: keep the file unreported and try again next poll
                    if down_since is None:
                        down_since = time.monotonic()
                        print(f"lossval watch: {time.strftime('%H:%M:%S')} could not send the event for "
                              f"{landed.relative} ({type(exc).__name__}: {str(exc)[:200]}); is the Prefect server "
                              f"down? Retrying every {interval:g}s; files that land meanwhile are reported once it "
                              "answers.", file=sys.stderr, flush=True)
                    break
                if down_since is not None:
                    print(f"lossval watch: {time.strftime('%H:%M:%S')} the Prefect server answers again (after "
                          f"{time.monotonic() - down_since:.0f}s); sending the waiting events", file=sys.stderr,
                          flush=True)
                    down_since = None
                unsent.pop(key, None)
                scanner.mark_emitted(landed, event_id=str(event.id), event=event.model_dump(mode="json"))
                print(f"lossval watch: {time.strftime('%H:%M:%S')} {landed.relative} landed ({landed.reason}, "
                      f"{landed.size} bytes) -> {ARRIVAL_EVENT} for dataset {name} (event {event.id})",
                      flush=True)
            await asyncio.sleep(interval)
