"""Landing folders: when a file counts as landed, which paths may be read, and one writer per dataset.

Pure standard library (no Prefect, no pandas), so ``lossval watch`` starts fast and the rules
are unit-tested without servers.

**When a file has landed.** A data file (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``) in the landing folder,
or in one subfolder of it, has landed when

* a marker ``<file name>.done`` (e.g. ``loans.csv.done``) exists next to it and is at least as
  new as the file, or is a marker other than the one the file's last report saw (so a marker
  left from an earlier delivery does not declare a file being rewritten in place as landed), or
* (unless ``require_marker``) its size and modification time were the same at two polls at least
  ``settle_seconds`` apart, and it is not empty.

Names that start with ``.`` or ``~`` and names ending in ``.tmp``, ``.part``, ``.partial``,
``.crdownload`` or ``.swp`` are never data files: write under such a name and rename the
file into place (an atomic rename on the same file system), or write in place and drop a
``.done`` marker when finished. A file written in place with no marker is picked up only
after it stops changing for ``settle_seconds``, so a writer that stalls longer than that
must rename the file in, or use a marker with ``require_marker`` (without it, the settle rule
can take the file during the stall, before any marker is written).

**Which dataset.** ``<landing>/<dataset>/<file>`` belongs to ``<dataset>``;
``<landing>/<dataset>__<anything>.<ext>`` (top level, any data file suffix) belongs to the part before ``__``,
and ``<landing>/<dataset>.<ext>`` to its stem.

**Untrusted paths.** :func:`confine` resolves a path taken from an event against the landing
folder and refuses anything outside it (``..`` components, absolute paths elsewhere, symlinks
that leave it) before any byte is read.

**One writer per dataset.** :func:`dataset_lock` holds an exclusive ``fcntl`` lock on
``<lock_dir>/<dataset>.lock`` (POSIX only) and appends each holding interval to
``<dataset>.log``, so overlapping arrivals run one after the other and the log shows it.

**Newest file wins.** Every landed file is a whole new version of its dataset, and runs waiting
for the same lock take it in no particular order. :func:`record_arrival` keeps, per dataset,
the modification time of the newest landed file a run has processed
(``<lock_dir>/<dataset>.arrival.json``); :func:`superseded_by` tells a run holding the lock that
its file is older than that one, so a file that lands earlier but gets the lock later does not
replace the newer data (nor its model). A forced run of an older file (a deliberate rollback)
makes that file the record's current one, remembering the newer file it rolled back from
(``rolled_back_from``): nightly runs then clean the rolled-back file, and files older than the
newest one ever processed are still held back, until a newer delivery lands.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lossval.config import DATASET_NAME_RE
from lossval.errors import ConfigError, InputError, LossvalError
from lossval._files import DATA_SUFFIXES, data_stem, sweep_orphaned_temp_files, write_json

__all__ = [
    "ARRIVAL_EVENT",
    "DATA_SUFFIXES",
    "DONE_SUFFIX",
    "PARTIAL_SUFFIXES",
    "UnsafePathError",
    "LockTimeout",
    "Landed",
    "LandingScanner",
    "confine",
    "newest_arrival",
    "dataset_of",
    "is_data_file_name",
    "dataset_lock",
    "read_lock_log",
    "record_arrival",
    "record_attempt",
    "clear_attempt",
    "refuses_file",
    "unfinished_attempts",
    "resource_id",
    "superseded_by",
    "same_file",
]

ARRIVAL_EVENT = "lossval.data.arrived"  # emitted by `lossval watch`, triggers the lossval-arrival deployment

DONE_SUFFIX = ".done"
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")
_STATE_VERSION = 1

log = logging.getLogger("lossval.landing")


class UnsafePathError(InputError):
    """A path (from an event or a symlink) points outside the landing folder; nothing was read."""


class LockTimeout(LossvalError):
    """Another run held the dataset's lock for longer than the caller would wait."""


def resource_id(dataset: str) -> str:
    """Prefect resource id of a dataset in arrival events: ``lossval.dataset.<dataset>``."""
    return f"lossval.dataset.{dataset}"


def _delivered_name(name: str) -> bool:
    """Whether a name is of a delivered file: not hidden, not partial, not a ``.done`` marker."""
    return bool(name) and name[0] not in ".~" and not name.lower().endswith((*PARTIAL_SUFFIXES, DONE_SUFFIX))


def is_data_file_name(name: str) -> bool:
    """Whether a file name can be a landed data file (not hidden, not partial, a data suffix)."""
    return _delivered_name(name) and name.lower().endswith(DATA_SUFFIXES)


def is_foreign_file_name(name: str) -> bool:
    """Whether a name is of a delivered file the watcher never lands, not being a data file (``rates.xlsx``,
    ``notes.txt``): said once, so a delivery in another format is noticed."""
    return _delivered_name(name) and not name.lower().endswith(DATA_SUFFIXES)


def _printable(relative: str) -> str:
    """A file name as messages show it: bytes that are not UTF-8 (Latin-1 ``caf\\xe9.csv``) as U+FFFD."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def dataset_of(relative: str | PurePosixPath) -> str:
    """The dataset a landed file belongs to, from its path relative to the landing folder.

    Args:
        relative: ``"<dataset>/<file>"`` or ``"<file>"`` (POSIX separators).

    Returns:
        The subfolder name; for a top-level file the part of its stem before ``__``.

    Raises:
        InputError: the path is deeper than one subfolder, or the name is not a valid dataset
            name (letters, digits, ``.``, ``_``, ``-``).

    >>> dataset_of("loans/2026-11-22.csv"), dataset_of("loans__2026-11-22.csv"), dataset_of("loans.parquet")
    ('loans', 'loans', 'loans')
    >>> dataset_of("loans.csv.gz")
    'loans'
    """
    parts = PurePosixPath(relative).parts
    if len(parts) == 2:
        name = parts[0]
    elif len(parts) == 1:
        name = data_stem(parts[0]).split("__", 1)[0]
    else:
        raise InputError("landed files go in the landing folder or one subfolder of it (<dataset>/<file>); "
                         "this path is deeper.", source=str(relative))
    if not DATASET_NAME_RE.fullmatch(name):
        raise InputError(f"dataset name {name!r} may only hold letters, digits, '.', '_' and '-'; rename the "
                         "file or subfolder.", source=str(relative))
    return name


def confine(landing_dir: str | os.PathLike[str], path: str) -> tuple[Path, str]:
    """Resolve an untrusted path against the landing folder, refusing anything outside it.

    Only ``os.lstat``/``realpath`` are used: the file is never opened.

    Args:
        landing_dir: The landing folder (trusted, from the deployment's parameters).
        path: Untrusted path, relative to the landing folder (an absolute path is accepted only
            when it lies inside the folder).

    Returns:
        ``(resolved absolute path, the given path relative to the landing folder in POSIX form)``;
        the dataset is taken from the second (the name as it appears in the folder).

    Raises:
        UnsafePathError: empty path, NUL byte, a ``..`` component, an absolute path elsewhere, or a
            symlink (of the file or a folder on its way) that resolves outside the landing folder.
        InputError: the landing folder or the file does not exist, or the file is not a regular
            data file.
    """
    root = Path(landing_dir)
    if not root.is_dir():
        raise InputError("landing folder not found.", source=str(root))
    root_real = Path(os.path.realpath(root))
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise UnsafePathError(f"refused path {path!r}: empty or holds a NUL byte; give a file path relative to the "
                              f"landing folder {root_real}.")
    raw = Path(path)
    if ".." in raw.parts or ".." in PurePosixPath(path.replace("\\", "/")).parts:
        raise UnsafePathError(f"refused path {path!r}: '..' is not allowed; paths must stay inside the landing "
                              f"folder {root_real}. Nothing was read.")
    if raw.is_absolute():
        # Accepted only when it names something under the landing folder (as given or resolved).
        bases = [b for b in (root_real, root.absolute()) if _inside(raw, b)]
        if not bases:
            raise UnsafePathError(f"refused path {path!r}: it is outside the landing folder {root_real}. "
                                  "Nothing was read.")
        lexical = raw.relative_to(bases[0])
    else:
        lexical = raw
    relative = PurePosixPath(*lexical.parts).as_posix() if lexical.parts else ""
    real = Path(os.path.realpath(root_real / lexical))
    if not _inside(real, root_real) or real == root_real:
        raise UnsafePathError(f"refused path {path!r}: it resolves to {real}, outside the landing folder "
                              f"{root_real} (a symlink that leaves it?). Nothing was read.")
    if not real.exists():
        raise InputError(f"landed file {path!r} not found in the landing folder {root_real}.")
    if not real.is_file():
        raise InputError(f"{path!r} is not a regular file.", source=str(real))
    if not (is_data_file_name(lexical.name) and is_data_file_name(real.name)):
        raise InputError(f"{relative!r} is not a data file ({', '.join(DATA_SUFFIXES)}), or is hidden or partial.",
                         source=str(real))
    return real, relative


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Landed:
    """A file that has landed completely.

    Attributes:
        path: Resolved absolute path.
        relative: Path relative to the landing folder, POSIX form (what events carry).
        dataset: Dataset it belongs to (see :func:`dataset_of`).
        size: Bytes. mtime_ns: modification time, ns. inode: the file's inode (a file replaced
            under the same name with the same size and mtime is another file). marker: the
            ``.done`` marker's ``(mtime_ns, inode)`` when there was one.
        reason: ``"marker"`` (a fresh ``.done`` file, see the module docstring) or ``"stable"``
            (size and mtime settled).
    """

    path: Path
    relative: str
    dataset: str
    size: int
    mtime_ns: int
    reason: str
    inode: int = 0
    marker: tuple[int, int] | None = None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    inode: int
    since: float  # clock time when this (size, mtime) was first observed
    polls: int  # consecutive polls with this (size, mtime)


def _marker_state(marker: Path) -> tuple[int, int] | None:
    """``(mtime_ns, inode)`` of a regular-file marker, else None (absent, a symlink, a folder)."""
    try:
        st = marker.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_mtime_ns, st.st_ino) if stat.S_ISREG(st.st_mode) else None


class LandingScanner:
    """Polls a landing folder and reports each file once, when it has landed completely.

    Args:
        landing_dir: Folder to watch (must exist).
        settle_seconds: A file without marker counts as landed when unchanged this long (and over
            two polls).
        require_marker: Only files with a ``.done`` marker count.
        state_path: JSON file remembering the files already reported (written atomically);
            ``None`` keeps the state in memory only.
        clock: Monotonic clock in seconds (tests pass a fake one).

    >>> scanner = LandingScanner("landing", state_path="landing.watch.json")   # doctest: +SKIP
    >>> for landed in scanner.poll():                                          # doctest: +SKIP
    ...     send(landed); scanner.mark_emitted(landed)
    """

    def __init__(self, landing_dir: str | os.PathLike[str], *, settle_seconds: float = 5.0,
                 require_marker: bool = False, state_path: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.landing_dir = Path(landing_dir)
        if not self.landing_dir.is_dir():
            raise InputError("landing folder not found; create it or check the path.", source=str(self.landing_dir))
        if settle_seconds < 0:
            raise InputError(f"settle time must be >= 0 seconds, got {settle_seconds}.")
        self.root = Path(os.path.realpath(self.landing_dir))
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker
        self.state_path = Path(state_path) if state_path is not None else None
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._warned: set[str] = set()
        self._lock_fd: int | None = None
        self._unsaved = False
        if self.state_path is not None:
            self._lock_state()
        try:
            if self.state_path is not None:  # a state write killed before its rename (ours now: we hold the lock)
                sweep_orphaned_temp_files(self.state_path.parent, recursive=False)
            self.emitted: dict[str, dict[str, Any]] = self._load_state()
        except BaseException:
            self.close()
            raise

    def _lock_state(self) -> None:
        """One scanner per state file: two would report every file twice and overwrite each other's state."""
        import fcntl

        assert self.state_path is not None
        lock = self.state_path.with_name(self.state_path.name + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create the watch lock {lock} ({exc.strerror}); choose a writable --state-file.",
                             source=str(self.state_path)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError("another `lossval watch` is using this state file (it holds the lock beside it); "
                             "run one watcher per landing folder.", source=str(self.state_path)) from None
        except OSError as exc:  # e.g. ENOLCK on a network file system
            os.close(fd)
            raise InputError(f"cannot lock the watch state ({exc.strerror}); keep --state-file on a local disk.",
                             source=str(self.state_path)) from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the state file's lock (also released when the process exits)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> LandingScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_state(self) -> dict[str, dict[str, Any]]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            emitted = state["emitted"]
            if not isinstance(emitted, dict):
                raise TypeError("'emitted' is not a mapping")
            bad = next((k for k, v in emitted.items() if not (isinstance(v, dict) and isinstance(v.get("size"), int)
                                                            and isinstance(v.get("mtime_ns"), int))), None)
            if bad is not None:
                raise TypeError(f"the entry for {bad!r} lacks an integer size and mtime_ns")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"watch state is unreadable ({exc}); delete it to start afresh (every file in the landing "
                             "folder is then reported again).", source=str(self.state_path)) from None
        return emitted

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        state = {"version": _STATE_VERSION, "landing_dir": str(self.root), "emitted": self.emitted}
        try:
            write_json(state, self.state_path)
        except OSError as exc:  # disk full, permissions: keep watching; the state is kept in memory meanwhile
            warned, self._unsaved = self._unsaved, True
            if not warned:
                log.warning("lossval watch: could not save the watch state %s (%s); retrying at every poll. Until "
                            "it is saved, a restart would report the files landed since then again.",
                            self.state_path, exc)
        else:
            if self._unsaved:
                log.warning("lossval watch: the watch state %s is saved again.", self.state_path)
            self._unsaved = False

    def _candidates(self) -> Iterator[tuple[str, Path]]:
        """(relative posix path, path) of data-file names at the top level and one folder down."""
        try:
            top = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in top:
            if entry.name[:1] in (".", "~"):
                continue
            if entry.is_dir(follow_symlinks=False):
                try:
                    inner = sorted(os.scandir(entry.path), key=lambda e: e.name)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as exc:  # no read permission, a stale handle: said once, the other folders watched
                    self._warn_once(f"{entry.name}/", f"lossval watch: skipping folder {entry.name}/ while it cannot be "
                                                      f"listed ({exc.strerror or type(exc).__name__}); the other files "
                                                      "are watched")
                    continue
                for sub in inner:
                    if is_data_file_name(sub.name) and self._utf8(f"{entry.name}/{sub.name}"):
                        yield f"{entry.name}/{sub.name}", Path(sub.path)
                    elif is_foreign_file_name(sub.name) and not sub.is_dir():  # (a folder there, e.g. archive/, is
                        self._warn_foreign(f"{entry.name}/{sub.name}")            # the user's: not looked into)
            elif is_data_file_name(entry.name) and self._utf8(entry.name):
                yield entry.name, Path(entry.path)
            elif is_foreign_file_name(entry.name) and not entry.is_dir():
                self._warn_foreign(entry.name)

    def _warn_foreign(self, relative: str) -> None:
        self._warn_once(relative, f"lossval watch: ignoring {_printable(relative)!r}: not a data file (.csv, .csv.gz, "
                                  ".parquet or .pq); save it in one of those formats to have it cleaned (said once per "
                                  "name)")

    def _utf8(self, relative: str) -> bool:
        """Whether a name can go in an event (UTF-8); one that cannot is said once and skipped, the others watched.

        A name written in another encoding (Latin-1 ``caf\\xe9.csv``) reaches Python with surrogates, which
        no event can carry; sending it failed every poll and, taken for a server outage, held back every
        file after it.
        """
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            self._warn_once(relative, f"lossval watch: skipping {_printable(relative)!r}: its name is not valid "
                                      "UTF-8, so no event can carry it; rename it (the other files are watched)")
            return False
        return True

    def _warn_once(self, relative: str, message: str) -> None:
        if relative not in self._warned:
            self._warned.add(relative)
            log.warning("%s", message)

    def poll(self) -> list[Landed]:
        """Look at the folder once; return the files that have landed and were not reported yet."""
        if self._unsaved:
            self._save_state()
        now = self._clock()
        landed: list[Landed] = []
        present: set[str] = set()
        for relative, path in self._candidates():
            present.add(relative)
            try:
                real, _ = confine(self.root, relative)
                dataset = dataset_of(relative)
                st = real.stat()
            except FileNotFoundError:  # removed between the listing and the stat
                continue
            except InputError as exc:  # symlink leaving the folder, bad dataset name, vanished file
                self._warn_once(relative, f"lossval watch: skipping {relative}: {exc}")
                continue
            except OSError as exc:  # a folder without search permission, a stale NFS handle: the others go on
                self._warn_once(relative, f"lossval watch: skipping {relative} while it cannot be looked at "
                                          f"({exc.strerror or type(exc).__name__}); the other files are watched")
                continue
            seen = self._seen.get(relative)
            if seen is None or (seen.size, seen.mtime_ns, seen.inode) != (st.st_size, st.st_mtime_ns, st.st_ino):
                seen = self._seen[relative] = _Seen(st.st_size, st.st_mtime_ns, st.st_ino, now, 1)
            else:
                seen.polls += 1
            done = self.emitted.get(relative)
            if done and (done.get("size"), done.get("mtime_ns"), done.get("inode", st.st_ino)) == (
                    st.st_size, st.st_mtime_ns, st.st_ino):
                continue  # reported before, unchanged since (state files before inodes: size and mtime)
            marker = path.with_name(path.name + DONE_SUFFIX)
            mark = _marker_state(marker)
            if st.st_size == 0:  # never lands; said once it would have (marked, or settled), not while being written
                if mark is not None or (seen.polls >= 2 and now - seen.since >= self.settle_seconds):
                    self._warn_once(f"{relative}|empty|{st.st_mtime_ns}", f"lossval watch: {relative} is empty "
                                    "(0 bytes), so it is not cleaned; deliver the file again with its rows")
                continue
            # A marker counts when it is at least as new as the file, or when the file's last report was by
            # a marker and this is another one (a writer whose clock runs ahead of ours touched a new one).
            # After a report by the settle rule, a marker older than the file is one left from that delivery
            # (touched after it settled), never a sign that an in-place rewrite is complete.
            fresh = mark is not None and (mark[0] >= st.st_mtime_ns or (
                done is not None and done.get("marker") is not None and [mark[0], mark[1]] != done["marker"]))
            if mark is not None and not fresh:
                self._warn_once(f"{relative}|{mark[0]}", f"lossval watch: {relative}: ignoring {marker.name}, which is "
                                "older than the file (left from an earlier delivery, or written by a machine whose "
                                "clock is behind); touch it again once the file is complete")
            if fresh:
                reason = "marker"
            elif not self.require_marker and seen.polls >= 2 and now - seen.since >= self.settle_seconds:
                reason = "stable"
            else:
                continue
            landed.append(Landed(path=real, relative=relative, dataset=dataset, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                 reason=reason, inode=st.st_ino, marker=mark))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return landed

    def mark_emitted(self, landed: Landed, *, event_id: str | None = None, event: dict[str, Any] | None = None) -> None:
        """Record that ``landed`` was reported (saved to the state file at once).

        With ``event`` (the event as JSON) the report stays unconfirmed, the event kept in the state,
        until :meth:`mark_confirmed`: a watcher restarted meanwhile can still check with the server
        and send it again under its id (:meth:`unconfirmed`).
        """
        self.emitted[landed.relative] = {
            "size": landed.size, "mtime_ns": landed.mtime_ns, "inode": landed.inode,
            "marker": list(landed.marker) if landed.marker else None, "dataset": landed.dataset, "event_id": event_id,
            "emitted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "confirmed": event is None, **({"event": event} if event is not None else {}),
        }
        self._save_state()

    def unconfirmed(self) -> dict[str, dict[str, Any]]:
        """Reports whose event the server has not been seen to hold: relative path -> state entry (with ``event``).

        Entries written before confirmation existed count as confirmed.
        """
        return {relative: entry for relative, entry in self.emitted.items()
                if entry.get("confirmed") is False and isinstance(entry.get("event"), dict) and entry.get("event_id")}

    def mark_confirmed(self, relative: str) -> None:
        """The server holds the event of ``relative``'s report: it is not sent again (saved at once)."""
        entry = self.emitted.get(relative)
        if entry is not None and entry.get("confirmed") is False:
            entry["confirmed"] = True
            entry.pop("event", None)
            self._save_state()

    def mark_resent(self, relative: str) -> None:
        """``relative``'s unconfirmed event was sent again now (saved at once)."""
        entry = self.emitted.get(relative)
        if entry is not None:
            entry["resent_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            self._save_state()


def check_lock_timeout(value: object, name: str = "lock_timeout_s") -> float:
    """``value`` as a lock wait in seconds; ConfigError naming ``name`` unless it is a finite number >= 0.

    NaN would make every "waited long enough?" comparison false, so the wait would never end.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}.")
    return float(value)


@contextlib.contextmanager
def dataset_lock(lock_dir: str | os.PathLike[str], dataset: str, *, timeout: float = 3600.0, poll: float = 0.5,
                 holder: str = "", on_wait: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """Hold an exclusive lock for ``dataset`` while the block runs (POSIX ``fcntl.flock``).

    The lock is released when the block exits or the process dies. Each holding interval is
    appended to ``<lock_dir>/<dataset>.log`` as one JSON line (holder, acquired, released, waited).

    Args:
        lock_dir: Folder of the lock files (created).
        dataset: Dataset name (letters, digits, ``.``, ``_``, ``-``).
        timeout: Seconds to wait for another holder before giving up.
        poll: Seconds between attempts while waiting.
        holder: Who holds it (e.g. the flow run id), for the log.
        on_wait: Called once if the lock is busy (to log that this run waits).

    Yields:
        A dict with ``acquired`` (UNIX time) and ``waited`` (seconds); ``released`` is added on exit.

    Raises:
        LockTimeout: the lock stayed busy for ``timeout`` seconds.
        ConfigError: ``timeout`` is not a finite number >= 0, or ``poll`` not one > 0 (nothing is created).
    """
    import fcntl

    check_lock_timeout(timeout, "timeout")
    if check_lock_timeout(poll, "poll") == 0:
        raise ConfigError("poll must be a number of seconds > 0, got 0.")
    if not DATASET_NAME_RE.fullmatch(dataset):
        raise InputError(f"dataset name {dataset!r} may only hold letters, digits, '.', '_' and '-'.")
    folder = Path(lock_dir)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    fd = os.open(folder / f"{dataset}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited_once = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited_once and on_wait is not None:
                    on_wait()
                waited_once = True
                if time.time() - start >= timeout:
                    raise LockTimeout(f"dataset {dataset!r} is locked by another run{_held_by(fd)} for more than "
                                      f"{timeout:g}s ({folder / (dataset + '.lock')}); is a run stuck?") from None
                time.sleep(poll)
        record: dict[str, Any] = {"holder": holder, "acquired": time.time(), "waited": time.time() - start}
        try:  # who holds it, for a waiter's timeout message (the lock file holds nothing else)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"holder": holder, "acquired": record["acquired"], "pid": os.getpid()}).encode(), 0)
        except OSError:
            pass
        try:
            yield record
        finally:
            record["released"] = time.time()
            with open(folder / f"{dataset}.log", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _held_by(fd: int) -> str:
    """`` (<holder>, pid <pid>, since <UTC time>)`` from the lock file, or "" when it says nothing readable."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
        since = dt.datetime.fromtimestamp(float(info["acquired"]), dt.timezone.utc).isoformat(timespec="seconds")
        return f" ({info.get('holder') or 'no holder name'}, pid {info.get('pid')}, since {since})"
    except (OSError, ValueError, TypeError, KeyError):
        return ""


def read_lock_log(lock_dir: str | os.PathLike[str], dataset: str) -> list[dict[str, Any]]:
    """The holding intervals recorded by :func:`dataset_lock` for ``dataset``, oldest first."""
    path = Path(lock_dir) / f"{dataset}.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_record(path: Path, *, unreadable: str = "") -> Any:
    """A JSON record's content; None when it is absent, or cannot be read (warned about, with ``unreadable`` added)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s, which cannot be read (%s)%s", path, exc, unreadable)
        return None


def _arrival_path(lock_dir: str | os.PathLike[str], dataset: str) -> Path:
    if not DATASET_NAME_RE.fullmatch(dataset):
        raise InputError(f"dataset name {dataset!r} may only hold letters, digits, '.', '_' and '-'.")
    return Path(lock_dir) / f"{dataset}.arrival.json"


def newest_arrival(lock_dir: str | os.PathLike[str], dataset: str) -> dict[str, Any] | None:
    """The record :func:`record_arrival` kept for ``dataset`` (``None`` before the first one).

    A record that cannot be read is reported (warning) and treated as absent: it only ever
    holds runs back, so losing it lets an older file through rather than stopping every run.
    """
    path = _arrival_path(lock_dir, dataset)
    record = _read_record(path, unreadable="; arrival order is not checked until the next run rewrites it")
    if record is None:
        return None
    if not (isinstance(record, dict) and isinstance(record.get("mtime_ns"), int)):
        log.warning("ignoring %s: it lacks an integer mtime_ns; the next run rewrites it", path)
        return None
    return record


def superseded_by(lock_dir: str | os.PathLike[str], dataset: str, mtime_ns: int) -> dict[str, Any] | None:
    """The newest landed file already processed for ``dataset``, if a file modified at ``mtime_ns`` is older.

    After a rollback that is the file rolled back from. Call it while holding :func:`dataset_lock`.
    Equal times are not "older": two files written in the same clock tick both run.
    """
    record = newest_arrival(lock_dir, dataset)
    newest = _newest_processed(record)
    return newest if newest is not None and mtime_ns < newest["mtime_ns"] else None


def _newest_processed(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    back = record.get("rolled_back_from")
    return back if isinstance(back, dict) and isinstance(back.get("mtime_ns"), int) else record


def same_file(record: dict[str, Any] | None, *, relative: str, mtime_ns: int, size: int, inode: int | None) -> bool:
    """Whether ``record`` (an arrival record or its ``rolled_back_from``) is this file, unchanged.

    Path, modification time and size must match, and the inode too where both are known: a file
    replaced by another of the same size and time (a rename over it) is a new delivery.
    """
    if record is None:
        return False
    same = (record.get("relative"), record.get("mtime_ns"), record.get("size")) == (relative, mtime_ns, size)
    recorded = record.get("inode")
    return same and (recorded is None or inode is None or recorded == inode)


def record_arrival(lock_dir: str | os.PathLike[str], dataset: str, *, relative: str, mtime_ns: int, size: int,
                   run_id: str | None = None, path: str | None = None, inode: int | None = None,
                   forced: bool = False) -> dict[str, Any]:
    """Record that a run processed the landed file ``relative`` (atomically).

    Call it while holding :func:`dataset_lock`, after the run used the file. ``path`` (the file's
    absolute path) is what the nightly flow cleans for the dataset from then on. A file older than
    the newest one processed leaves the record as it is, unless ``forced`` (a deliberate rollback):
    then it becomes the current file, and the record keeps the newest one as ``rolled_back_from``
    so older files are still held back and a repeated event for it does not undo the rollback.

    Returns:
        The record now on disk.
    """
    current = newest_arrival(lock_dir, dataset)
    newest = _newest_processed(current)
    record = {"relative": relative, "path": path, "mtime_ns": int(mtime_ns), "size": int(size),
              "inode": None if inode is None else int(inode), "run_id": run_id,
              "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if newest is not None and mtime_ns < newest["mtime_ns"]:
        if not forced:
            return current
        record["rolled_back_from"] = {k: newest.get(k) for k in ("relative", "path", "mtime_ns", "size", "inode",
                                                                   "run_id", "recorded_at")}
    write_json(record, _arrival_path(lock_dir, dataset))
    return record


def refuses_file(exc: BaseException, landed: str | os.PathLike[str], *,
                 other_files: tuple[str | os.PathLike[str] | None, ...] = ()) -> bool:
    """Whether ``exc`` refuses the landed file itself (its rows, columns or format): then its arrival is over.

    Any :class:`InputError` does (the data's rows, its splits, its target), except a config error and
    one whose ``source`` is another file the config names (``other_files``: a curated validation or
    test file, say on a share that is not mounted): those are not the delivery's fault, so its attempt
    stays and the next nightly run tries the file again.
    """
    if not isinstance(exc, InputError) or isinstance(exc, ConfigError):
        return False
    if exc.source:
        try:
            named = os.path.realpath(exc.source)
            if named != os.path.realpath(landed) and named in {os.path.realpath(f) for f in other_files if f}:
                return False
        except (TypeError, ValueError, OSError):
            pass
    return True


def _attempt_path(lock_dir: str | os.PathLike[str], dataset: str) -> Path:
    return _arrival_path(lock_dir, dataset).with_name(f"{dataset}.attempt.json")


@contextlib.contextmanager
def _attempts_lock(lock_dir: str | os.PathLike[str], dataset: str) -> Iterator[None]:
    """The attempt file's own short lock: arrival runs record their attempt before they wait for the dataset lock."""
    import fcntl

    folder = Path(lock_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # "+" is outside the dataset-name alphabet: no dataset's own lock file (<name>.lock) can be this one
    fd = os.open(folder / f"{dataset}+attempts.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for one read and one atomic write: milliseconds
        yield
    finally:
        os.close(fd)  # releases the lock


def record_attempt(lock_dir: str | os.PathLike[str], dataset: str, *, relative: str, path: str, mtime_ns: int,
                   size: int, inode: int | None = None, flow_run_id: str | None = None) -> None:
    """Record that an arrival run is to clean the landed file ``relative`` (atomically).

    An arrival run calls it as soon as it knows the file's dataset, before it reads the config or
    waits for :func:`dataset_lock`; :func:`clear_attempt` removes it once the run has recorded an
    outcome (:func:`record_arrival`, or a file superseded, already cleaned or refused). One still
    there when the dataset lock is next taken is a run that failed or was stopped (MLflow down,
    a config typo, the lock's timeout, killed while it waited): :func:`unfinished_attempts` tells
    the nightly run, which cleans that file instead of the older one last recorded. Every such file
    is kept, one entry per path (a newer version of a path replaces an older one): if the newest is
    refused or gone, the next newest is the one to clean.
    """
    with _attempts_lock(lock_dir, dataset):
        entries = _without(_read_attempts(lock_dir, dataset), relative=relative, mtime_ns=mtime_ns)
        if any(e.get("relative") == relative for e in entries):  # a newer version of this path is pending already
            return
        entries.append({"relative": relative, "path": path, "mtime_ns": int(mtime_ns), "size": int(size),
                        "inode": None if inode is None else int(inode), "flow_run_id": flow_run_id,
                        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        _write_attempts(lock_dir, dataset, entries)


def clear_attempt(lock_dir: str | os.PathLike[str], dataset: str, *, relative: str, mtime_ns: int) -> None:
    """Remove the attempt at ``relative`` once its outcome is recorded (none: nothing to do); a newer version of
    that path, landed since, stays pending, and so do other files'."""
    with _attempts_lock(lock_dir, dataset):
        entries = _read_attempts(lock_dir, dataset)
        kept = _without(entries, relative=relative, mtime_ns=mtime_ns)
        if len(kept) != len(entries):
            _write_attempts(lock_dir, dataset, kept)


def _without(entries: list[dict[str, Any]], *, relative: str, mtime_ns: int) -> list[dict[str, Any]]:
    """``entries`` less the attempts at ``relative`` no newer than ``mtime_ns`` (a newer version of it stays)."""
    return [e for e in entries if not (e.get("relative") == relative and e["mtime_ns"] <= mtime_ns)]


def _write_attempts(lock_dir: str | os.PathLike[str], dataset: str, entries: list[dict[str, Any]]) -> None:
    if entries:
        write_json({"attempts": sorted(entries, key=lambda e: e["mtime_ns"])}, _attempt_path(lock_dir, dataset))
    else:
        _attempt_path(lock_dir, dataset).unlink(missing_ok=True)


def _read_attempts(lock_dir: str | os.PathLike[str], dataset: str) -> list[dict[str, Any]]:
    """The entries :func:`record_attempt` wrote (none when absent; unreadable or malformed ones warned about)."""
    path = _attempt_path(lock_dir, dataset)
    record = _read_record(path)
    if record is None:
        return []
    entries = record.get("attempts") if isinstance(record, dict) else None
    if not isinstance(entries, list):
        log.warning("ignoring %s: it holds no list of attempts", path)
        return []
    good = [e for e in entries if isinstance(e, dict) and isinstance(e.get("mtime_ns"), int) and e.get("path")]
    if len(good) != len(entries):
        log.warning("ignoring %d entr(y/ies) of %s without an integer mtime_ns or a path", len(entries) - len(good), path)
    return good


def unfinished_attempts(lock_dir: str | os.PathLike[str], dataset: str) -> list[dict[str, Any]]:
    """The landed files arrival runs began to clean for ``dataset`` and did not finish, newest first, of those newer
    than the newest file processed (an older one, such as a forced rollback that failed, changes nothing).

    Call it while holding :func:`dataset_lock`: then no arrival run is cleaning them now (one may be waiting
    for the lock: if the nightly run cleans its file first, that run finds it already cleaned).
    """
    newest = _newest_processed(newest_arrival(lock_dir, dataset))

    def done_with(e: dict[str, Any]) -> bool:  # no newer than the newest file processed
        return newest is not None and (e["mtime_ns"] < newest["mtime_ns"] or same_file(
            newest, relative=e.get("relative"), mtime_ns=e["mtime_ns"], size=e.get("size"), inode=e.get("inode")))

    attempts = _read_attempts(lock_dir, dataset)
    if any(done_with(e) for e in attempts):  # nothing to do for them, ever: dropped, so that a lost or deleted
        with _attempts_lock(lock_dir, dataset):  # arrival record does not bring them back
            attempts = [e for e in _read_attempts(lock_dir, dataset) if not done_with(e)]
            _write_attempts(lock_dir, dataset, attempts)
    return sorted(attempts, key=lambda e: e["mtime_ns"], reverse=True)
