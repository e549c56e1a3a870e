"""Atomic writes and temporary-file hygiene, in the standard library only.

Split from :mod:`lossval.io` so that :mod:`lossval.landing` (and so ``lossval watch``) does not
import pandas. :mod:`lossval.io` re-exports every name here; import them from there.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossval.errors import InputError

__all__ = [
    "DATA_SUFFIXES",
    "data_suffix",
    "data_stem",
    "read_as_data_of",
    "is_csv_file",
    "is_gzip_csv",
    "open_csv_text",
    "atomic_write",
    "broken_link",
    "leads_to_nothing",
    "fsync_dir",
    "make_dirs",
    "check_writable_folder",
    "make_temp",
    "process_alive",
    "pid_namespace",
    "sweep_orphaned_temp_files",
    "pause_point",
    "write_json",
    "read_json",
    "json_default",
]

DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
"""File suffixes read as tables (a folder input reads every such file in it); ``.csv.gz`` is a gzip-compressed CSV."""

_CSV_SUFFIXES = (".csv", ".csv.gz")


def data_suffix(name: str | os.PathLike[str]) -> str | None:
    """The data suffix a file name ends with (case-insensitive; ``".csv.gz"``, not ``".gz"``), else None."""
    lower = os.fspath(name).lower()
    return next((s for s in sorted(DATA_SUFFIXES, key=len, reverse=True) if lower.endswith(s)), None)


def read_as_data_of(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether a folder input ``folder`` reads ``path`` as one of its data files (a data file directly in it)."""
    f, p = Path(folder), Path(path)
    return (f.is_dir() and p.is_file() and p.absolute().parent.resolve() == f.resolve()
            and data_suffix(p.name) is not None and not p.name.startswith("."))


def data_stem(name: str) -> str:
    """``name`` without its data suffix (``loans.csv.gz`` -> ``loans``); other names lose their last suffix."""
    suffix = data_suffix(name)
    return name[:-len(suffix)] if suffix else name.rsplit(".", 1)[0] if "." in name[1:] else name


def is_csv_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a CSV file, plain or gzip-compressed."""
    return data_suffix(Path(path).name) in _CSV_SUFFIXES


def is_gzip_csv(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a gzip-compressed CSV file (``.csv.gz``)."""
    return data_suffix(Path(path).name) == ".csv.gz"


def open_csv_text(path: str | os.PathLike[str]) -> Any:
    """Open a CSV file (``.csv.gz`` decompressed on the fly) as UTF-8 text, a leading BOM skipped, as ``csv`` needs."""
    if is_gzip_csv(path):
        import gzip

        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Write a file through ``write(tmp_path)`` into a temp file, then rename it into place.

    Args:
        path: Final path; its folder is created if needed.
        write: Called with the temporary path; must create the file there.

    Returns:
        The final path.
    """
    final = Path(path)
    make_dirs(final.parent)
    fd, tmp = make_temp(final)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file 0600; an output is meant for the team that reviews it, so the umask decides
        # (0644 under the usual 022), as for any file this process would create.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        pause_point(f"write:{final.name}")
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(final.parent)
    return final


def _umask() -> int:
    """This process's umask: from /proc where there is one (no race with other threads), else set and put back."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def broken_link(p: Path) -> Path | None:
    """The first symbolic link to nothing on ``p`` as written: a folder above it, or ``p`` itself; None when none."""
    for end in range(1, len(p.parts) + 1):
        part = Path(*p.parts[:end])
        if part.is_symlink() and not part.exists():
            return part
    return None


def leads_to_nothing(link: Path) -> str:
    """What a broken ``link`` (:func:`broken_link`) points at, for a refusal: `` to 'x.yaml', that is /a/x.yaml, which
    leads to nothing (...); point the link at the``, to be followed by what it should point at."""
    target = os.readlink(link)
    full = os.path.normpath(link.absolute().parent / target)  # /a/b/../c said as /a/c
    that = "" if full == target else f", that is {full}"
    return (f" to {target!r}{that}, which leads to nothing (the target was moved or deleted, or the links form a "
            "loop); point the link at the")


def check_writable_folder(folder: str | os.PathLike[str], *, what: str) -> None:
    """Refuse, before any work, a folder that cannot be created or written (``what`` names the option).

    The nearest existing ancestor decides: it must be a folder, and one this process may write
    into (and enter), so that the folder can be created and files renamed into it.

    Raises:
        InputError: naming the path that blocks it (a file in the way, or no write permission).
    """
    path = Path(folder).absolute()
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        raise InputError(f"{what}: {existing} is a symbolic link to {os.readlink(existing)}, which does not exist; "
                         "create its target or choose another path.")
    if not existing.is_dir():
        blocked = "" if existing == path else f", so {path} cannot be created"
        raise InputError(f"{what}: {existing} is a file, not a folder{blocked}; choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        if _on_read_only_mount(existing):  # access() says no for any user there: permissions would not help
            raise InputError(f"{what}: {existing} is on a file system mounted read-only; choose a folder on a "
                             "writable one.")
        raise InputError(f"{what}: no permission to write in {existing}; choose a folder you can write to, "
                         "or change its permissions.")
    try:  # access() says yes to root everywhere and knows nothing of file systems that take no new files (/proc)
        fd, probe = make_temp(existing / "write-probe")  # named as a temp file: swept if we die here
    except OSError as exc:
        raise InputError(f"{what}: cannot create files in {existing} ({exc.strerror or type(exc).__name__}); "
                         "choose another folder.") from None
    os.close(fd)
    os.unlink(probe)


def _on_read_only_mount(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (False where the system does not say)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows), or the folder cannot be asked
        return False


_TMP_OWNER = re.compile(r"~(?P<host>[A-Za-z0-9._-]{1,64})~(?P<pid>[0-9]{1,10})~[^~]*$")


def pid_namespace() -> str:
    """This process's PID namespace (its inode; "" where ``/proc`` does not say).

    A recorded PID can be checked only from the same namespace: containers that share a host
    name (``--uts=host``, ``hostNetwork`` pods) do not share PIDs.
    """
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _host_name(length: int) -> str:
    """The host name as temp-file names hold it: characters a file name keeps, at most ``length`` of them."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:length] or "host"


def _host_tag() -> str:
    """Host name and PID namespace, as temp-file names carry them: a writer checkable from here has this tag."""
    host = _host_name(48)
    ns = pid_namespace()
    return f"{host}.ns{ns}" if ns else host


def make_temp(final: Path) -> tuple[int, str]:
    """``tempfile.mkstemp`` next to ``final``, named ``.tmp-<name>~<host>.ns<pid namespace>~<pid>~<random>``.

    Returns:
        ``(fd, path)`` as ``mkstemp`` does; the caller closes ``fd``.
    """
    return tempfile.mkstemp(prefix=f".tmp-{final.name}~{_host_tag()}~{os.getpid()}~", dir=final.parent)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (``True`` when that cannot be told)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True
    return True


def sweep_orphaned_temp_files(*roots: str | os.PathLike[str], recursive: bool = True,
                              stale_after_s: float | None = None, of: str | None = None) -> list[Path]:
    """Remove the temporary files of writes whose process was killed before its rename.

    Files named by :func:`make_temp` on this host whose process is gone are removed. Other
    ``.tmp-*`` files (another host's write, an older naming with no owner in it, anything
    else) are removed only when ``stale_after_s`` is given and they were last modified longer
    ago than that; a live writer's file on this host is always left alone.

    Args:
        roots: Folders to look in (missing ones are skipped).
        recursive: Look in subfolders too.
        stale_after_s: Age in seconds after which a ``.tmp-*`` file whose owner cannot be
            checked is taken as abandoned. ``None`` (default): never; pass it only for
            folders that hold nothing but lossval's own files.
        of: Only the temporary files of writes to this file name (for a folder of the user's,
            such as ``lossval value --out``'s).

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    host = _host_tag()
    legacy = _host_name(64)  # the tag of names written before they carried the PID namespace
    now = time.time()
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        pattern = ".tmp-*" if of is None else f".tmp-{glob.escape(of)}~*"
        for path in sorted(root.rglob(pattern) if recursive else root.glob(pattern)):
            if not path.is_file():
                continue
            match = _TMP_OWNER.search(path.name)
            if match is not None and match["host"] in (host, legacy):  # legacy: named before namespaces were
                if process_alive(int(match["pid"])):
                    continue
            else:
                try:
                    age = now - path.stat().st_mtime
                except OSError:  # gone meanwhile, or not ours to read: leave it
                    continue
                if stale_after_s is None or age <= stale_after_s:
                    continue
            try:
                path.unlink()
            except OSError:  # gone meanwhile, or another user's file in a shared folder: leave it
                continue
            removed.append(path)
    return removed


def make_dirs(folder: str | os.PathLike[str]) -> Path:
    """``mkdir -p folder``, each folder it creates made durable in its parent (fsync), so a power cut cannot lose
    the folder that a file written and flushed into it lives in. Returns the folder."""
    folder = Path(folder)
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):  # outermost first
        fsync_dir(created.parent)
    return folder


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


PAUSE_ENV = "LOSSVAL_TEST_PAUSE_AT"


def pause_point(name: str) -> None:
    """Test-only hook: stop here so a fault test can kill the process at a known point.

    When the environment variable ``LOSSVAL_TEST_PAUSE_AT`` equals ``name`` (``"value"``, or
    ``"write:<file name>"`` just before a written file is renamed into place), the process
    writes its pid to the file named by ``LOSSVAL_TEST_PAUSE_MARKER`` (when set) and sleeps
    for up to ten minutes. Never set it outside tests; unset, this is one dictionary lookup.
    """
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = os.environ.get("LOSSVAL_TEST_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(600)


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write a small JSON record atomically (sorted keys, so equal records give equal bytes)."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=json_default)
            fh.write("\n")

    return atomic_write(path, _write)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON record, naming the file when it is missing or malformed."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found.", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", source=str(p)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid JSON: not UTF-8 text (byte {exc.start}); the file is damaged or not a JSON "
                         "record.", source=str(p)) from None


def json_default(obj: Any) -> Any:
    """``json.dump`` fallback for numpy scalars/arrays and paths."""
    if isinstance(obj, Path):
        return str(obj)
    np = sys.modules.get("numpy")  # a numpy object means numpy is imported; never import it here
    if np is not None:
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
