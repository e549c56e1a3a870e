"""The run manifest and the run folder's life cycle: a run is complete, or it is not there.

A flow run writes its outputs into ``runs/<run_id>.partial/`` (created by :func:`begin_run`,
with an ``owner.json`` naming the process). ``manifest.json`` is written last, atomically, and
then :func:`complete_run` renames the folder to ``runs/<run_id>/`` (one ``rename``, atomic on
POSIX). So:

* a folder named ``runs/<run_id>/`` always holds a manifest and every file it lists;
* a run that fails (bad input, a bug, a gate or tracking failure before the manifest) removes
  its ``.partial`` folder (:func:`discard_run`): no outputs are left behind for it;
* a run killed outright (SIGKILL, power loss) leaves a ``.partial`` folder, which never counts
  as complete (``lossval verify`` exits 1 on it) and is removed by the next run in that
  workspace once its owner process is gone (:func:`sweep_stale_runs`).

A run whose data outputs are complete but whose MLflow tracking failed still gets a manifest
(``"mlflow": {"status": "failed", ...}``, ``"model": null``): its data is consistent and
verifiable, and a rerun with tracking back registers the model.

:func:`verify_run` re-reads the outputs and checks that every input row is in exactly one of
validation, test, kept or quarantine, and that the files its manifest lists are unchanged (their
sha256: the run folder's own, and since 2026-12-06 the shared snapshot, values and encoder; not the
input data or curated validation/test files, only their copies). Manifests written before hashes were
recorded have no ``sha256``: their rows are checked, their files' contents cannot be (:func:`content_hash_note`
says so).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd

from lossval.errors import InputError
from lossval.io import file_sha256, fsync_dir, make_dirs, pid_namespace, process_alive, read_json, write_json

__all__ = ["MANIFEST_NAME", "PARTIAL_SUFFIX", "verify_run", "content_hash_note", "begin_run",
           "complete_run", "discard_run", "sweep_stale_runs", "relocate"]

MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_OWNER_NAME = "owner.json"
_PARTS = ("validation", "test", "kept", "quarantine")
#: A ``.partial`` folder with no owner record, untouched this long, was left by a run killed as it began.
OWNERLESS_STALE_S = 24 * 3600
#: A ``.partial`` folder of another host or container (whose process cannot be looked up), untouched this long, was
#: left by a killed run: pods that share a workspace volume get a new host name each, so no later run owns it.
FOREIGN_STALE_S = 7 * 24 * 3600


def begin_run(runs_root: Path, run_id: str) -> Path:
    """Create ``runs_root/<run_id>.partial/`` for a new run and record its owner process.

    Returns:
        The partial folder the stages write into.
    """
    partial = Path(runs_root) / f"{run_id}{PARTIAL_SUFFIX}"
    make_dirs(runs_root)
    partial.mkdir(exist_ok=False)
    write_json({"pid": os.getpid(), "host": socket.gethostname(), "pid_ns": pid_namespace(),
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}, partial / _OWNER_NAME)
    return partial


def complete_run(partial: Path, final: Path) -> Path:
    """Rename a finished run's folder (holding its manifest) to its final name; returns ``final``."""
    if not (partial / MANIFEST_NAME).is_file():
        raise FileNotFoundError(f"{partial}: no {MANIFEST_NAME}; only a finished run may be completed")
    # Renamed first: a kill between the two steps leaves a stray owner.json in a finished folder,
    # where the other order left a .partial folder with no owner, which the sweep never removes.
    os.rename(partial, final)
    fsync_dir(final.parent)  # the finished name survives a power cut, not only a crash
    (final / _OWNER_NAME).unlink(missing_ok=True)
    return final


def discard_run(partial: Path) -> None:
    """Remove an unfinished run's folder (nothing in it is trusted)."""
    shutil.rmtree(partial, ignore_errors=True)


def _owner_alive(owner: dict[str, Any], partial: Path) -> bool:
    if owner.get("host") != socket.gethostname() or owner.get("pid_ns", pid_namespace()) != pid_namespace():
        # Another machine's run, or another container's on this host (its own PIDs): we cannot tell, so leave it,
        # unless nothing in it has changed for a week.
        return _untouched_for(partial) <= FOREIGN_STALE_S
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return True
    return process_alive(pid)


def sweep_stale_runs(runs_root: Path) -> list[Path]:
    """Remove ``.partial`` folders whose owner process on this host is gone (killed runs), and those of other hosts
    or containers untouched for :data:`FOREIGN_STALE_S`.

    Returns:
        The folders removed.
    """
    removed = []
    root = Path(runs_root)
    if not root.is_dir():
        return removed
    for partial in sorted(root.glob(f"*{PARTIAL_SUFFIX}")):
        try:
            owner = read_json(partial / _OWNER_NAME)
        except InputError:
            # No readable owner: a run starting right now (it writes one at once), or one killed before it could.
            if _untouched_for(partial) > OWNERLESS_STALE_S:
                discard_run(partial)
                if not partial.exists():  # rmtree ignores errors: report only what went
                    removed.append(partial)
            continue
        if not _owner_alive(owner, partial):
            discard_run(partial)
            if not partial.exists():
                removed.append(partial)
    return removed


def _untouched_for(folder: Path) -> float:
    """Seconds since anything in ``folder`` (or the folder itself) last changed; 0 when that cannot be read."""
    try:
        newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.iterdir())])
    except OSError:
        return 0.0
    return time.time() - newest


def relocate(paths: dict[str, Any], src: Path, dst: Path) -> dict[str, Any]:
    """``paths`` with every path under ``src`` rewritten to lie under ``dst`` (other values unchanged)."""
    src_text = str(src)
    out: dict[str, Any] = {}
    for key, value in paths.items():
        if isinstance(value, str) and (value == src_text or value.startswith(src_text + os.sep)):
            value = str(dst) + value[len(src_text):]
        out[key] = value
    return out


def _ids(path: str) -> pd.Series:
    return pd.read_parquet(path, columns=["row_id"])["row_id"]


def _located(outputs: dict[str, str], run_dir: Path) -> dict[str, str]:
    """The manifest's paths, read from the folder being verified when the run folder was moved or copied.

    Paths inside the recorded run folder always map to ``run_dir`` (a copy is checked, not its
    original). Paths elsewhere in the recorded workspace (snapshot, values) map to the same place
    in the workspace around ``run_dir`` when that file exists there, and stay as recorded otherwise.
    """
    if "kept" not in outputs:
        return outputs
    recorded = Path(outputs["kept"]).parent
    here = Path(os.path.realpath(run_dir))
    if recorded == here:
        return outputs
    out = {}
    for name, p in outputs.items():
        path = Path(p)
        for src, dst, always in ((recorded, here, True), (recorded.parent.parent, here.parent.parent, False)):
            try:
                candidate = dst / path.relative_to(src)
            except ValueError:
                continue
            if always or candidate.exists():
                path = candidate
            break
        out[name] = str(path)
    return out


def _check_decisions(path: str, *, train: pd.Series, quarantine: pd.Series) -> list[str]:
    """``decisions.parquet`` lists each training row once, and says "quarantined" of exactly the quarantined ones."""
    try:
        decided = pd.read_parquet(path, columns=["row_id", "outcome"])
    except Exception as exc:  # noqa: BLE001 (a truncated or foreign file: report it, do not crash)
        return [f"output 'decisions' is unreadable ({type(exc).__name__}): {path}"]
    listed, rows = set(decided["row_id"]), set(train)
    if listed != rows:
        unlisted, foreign = sorted(rows - listed, key=str), sorted(listed - rows, key=str)
        return ["decisions: " + "; ".join(text for text in (
            f"train rows not listed: {len(unlisted)} (e.g. {unlisted[0]!r})" if unlisted else "",
            f"listed ids that are no train row: {len(foreign)} (e.g. {foreign[0]!r})" if foreign else "") if text)]
    if decided["row_id"].duplicated().any():
        again = decided.loc[decided["row_id"].duplicated(), "row_id"]
        return [f"decisions: train rows listed more than once: {len(again)} (e.g. {again.iloc[0]!r})"]
    if set(decided.loc[decided["outcome"] == "quarantined", "row_id"]) != set(quarantine):
        return ["decisions: its quarantined rows are not quarantine's"]
    return []


_VALUES_NOTE = (" (shared by the runs of the same snapshot and settings: a later run that valued again, after the file "
                "was unreadable or on another GPU, rewrites it; this run's figures came from the earlier file)")
_SHARED_NOTE = {"values": _VALUES_NOTE, "encoder": _VALUES_NOTE,
                "snapshot": " (the stored copy of the input, shared by its runs: nothing rewrites it; was it edited?)"}
"""Said of a changed file outside the run folder (manifests since 2026-12-06 hash them too)."""
_SHARED_MISSING = ("the files above are shared in the workspace (its snapshots/ and values/ folders), outside the run "
                   "folder, and verify needs them too: keep the run folder together with its workspace, or copy those "
                   "files to where the manifest names them")


def unfinished(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a run's ``.partial`` folder, however it is named (``.``, a symlink to it)."""
    return Path(os.path.realpath(run_dir)).name.endswith(PARTIAL_SUFFIX)


def verify_run(run_dir: Path) -> list[str]:
    """Check a run folder; returns a list of problems (empty = consistent).

    Checks: the folder is a completed run (not ``.partial``, manifest present and readable);
    the manifest lists existing, readable files, unchanged since the run wrote them (sha256, when
    the manifest records it; the shared snapshot, values and encoder too since 2026-12-06), read from ``run_dir`` when the folder was moved or copied; the snapshot's row ids are exactly the
    union of the data-derived parts (validation when it came from the data, test, kept,
    quarantine); the parts are disjoint; ``train = kept + quarantine``; ``decisions`` (when listed)
    holds each train row once and marks exactly the quarantined ones; counts match the manifest. A manifest without ``sha256`` passes on its rows alone; tell the reader so with
    :func:`content_hash_note`. One that hashes some outputs but not others is refused (manifests of 2026-12-02 to
    12-06 hashed all but the shared snapshot, values and encoder: that is accepted). When only shared files are
    missing (a run folder kept without its workspace), the run folder's own files are still checked and reported.
    """
    run_dir = Path(run_dir)
    if unfinished(run_dir):
        return [f"{run_dir}: an unfinished run (still running, or killed); its files are not to be trusted"]
    if run_dir.is_file():
        return [f"{run_dir}: a file, not a run folder; pass the folder that holds {MANIFEST_NAME}"]
    if not run_dir.is_dir():
        return [f"{run_dir}: no such run folder"]
    manifest_path = run_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        if run_dir.parent.name == "runs" or any((run_dir / f).exists() for f in ("train.parquet", "kept.parquet")):
            return [f"{manifest_path}: no {MANIFEST_NAME}: the run did not complete, or its manifest was deleted"]
        return [f"{run_dir}: not a run folder (no {MANIFEST_NAME}); pass a folder under the workspace's runs/"]
    try:
        manifest: dict[str, Any] = read_json(manifest_path)
    except InputError as exc:
        return [str(exc)]
    if not isinstance(manifest, dict):
        return [f"{manifest_path}: not a run manifest (a JSON object is expected)"]
    problems: list[str] = []
    outputs = manifest.get("outputs", {})
    counts = manifest.get("rows", {})
    hashes = manifest.get("sha256", {})  # absent in manifests written before 2026-12-02
    if not (isinstance(outputs, dict) and all(isinstance(p, str) for p in outputs.values())
            and isinstance(counts, dict) and isinstance(hashes, dict)):
        return [f"{manifest_path}: not a run manifest ('outputs', 'rows' and 'sha256' must be objects of paths, "
                "counts and hashes)"]
    outputs = _located(outputs, run_dir)
    run_dir_real = Path(os.path.realpath(run_dir))
    shared = {name for name, p in outputs.items() if Path(p).parent != run_dir_real}  # snapshots/, values/
    shared_missing = []
    for name, p in outputs.items():
        if name in shared and not Path(p).exists():
            shared_missing.append(f"output '{name}' is missing: {p} (shared in the workspace, outside the run folder)")
        elif not Path(p).exists():
            problems.append(f"output '{name}' is missing: {p}")
    if shared_missing:
        shared_missing.append(_SHARED_MISSING)
    changed, unreadable = [], set()
    for name, digest in hashes.items():
        if name not in outputs or not Path(outputs[name]).exists():  # a missing one is reported above
            continue
        try:
            if file_sha256(outputs[name]) != digest:
                changed.append(f"output '{name}' changed after the run wrote it (sha256 differs): {outputs[name]}"
                               + _SHARED_NOTE.get(name, "") * (name in shared))
        except InputError as exc:  # file_sha256's: the system's refusal (an OSError) is its cause
            refusal = exc.__cause__
            unreadable.add(name)
            said = getattr(refusal, "strerror", None) or type(refusal).__name__
            changed.append(f"output '{name}' is unreadable ({said}): {outputs[name]}")
    unhashed = []
    if hashes:  # lossval hashes every output (manifests of 2026-12-02 to 12-06: all but the shared ones)
        names = [n for n in outputs if n not in hashes and not (n in shared and not shared & set(hashes))]
        if names:
            unhashed.append(f"{manifest_path}: records no sha256 for {', '.join(map(repr, names))} but does for the "
                            "other outputs (lossval hashes every output it writes), so their contents cannot be "
                            "checked; was the manifest edited? Take the run folder from a trusted copy, or rerun")
    if problems:  # some of the run folder's own files are gone: the rows cannot be checked, the others' contents can
        return problems + shared_missing + unhashed + changed
    needed = ("snapshot", "train", "test", "kept", "quarantine", "validation")
    absent = [n for n in needed if n not in outputs]
    if absent:
        return [f"manifest lists no {absent}"]
    ids = {}
    for name in needed:
        if name in unreadable or not Path(outputs[name]).exists():  # reported above
            continue
        try:
            ids[name] = _ids(outputs[name])
        except Exception as exc:  # a truncated or foreign file: report it, do not crash
            problems.append(f"output '{name}' is unreadable ({type(exc).__name__}): {outputs[name]}")
    if problems or unreadable & set(needed):
        return problems + shared_missing + unhashed + changed
    for name, series in ids.items():
        if series.duplicated().any():
            problems.append(f"{name}: {int(series.duplicated().sum())} duplicate row ids, e.g. {series[series.duplicated()].iloc[0]!r}")
    from_data = {"validation": manifest.get("validation_from_data", True), "test": manifest.get("test_from_data", True)}
    parts = [p for p in _PARTS if from_data.get(p, True)]
    seen: dict[str, str] = {}
    for part in parts:
        for rid in ids[part]:
            if rid in seen and seen[rid] != part:  # a duplicate within one part is reported above
                problems.append(f"row {rid!r} is in both {seen[rid]} and {part}")
                break
            seen[rid] = part
    snapshot = set(ids.get("snapshot", seen))  # a missing snapshot is reported above
    union = set(seen)
    if snapshot != union:
        lost = sorted(snapshot - union)[:5]
        extra = sorted(union - snapshot)[:5]
        counted = [f"{len(snapshot - union)} lost (e.g. {lost})" if lost else "",
                   f"{len(union - snapshot)} not in the snapshot (e.g. {extra})" if extra else ""]
        problems.append("rows not accounted for: " + ", ".join(c for c in counted if c))
    if set(ids["train"]) != set(ids["kept"]) | set(ids["quarantine"]):
        problems.append("train rows != kept + quarantine")
    if "decisions" in outputs and "decisions" not in unreadable:  # runs since 2026-12-06: each train row's outcome
        problems += _check_decisions(outputs["decisions"], train=ids["train"], quarantine=ids["quarantine"])
    for name in needed:
        if name in counts and name in ids and counts[name] != len(ids[name]):
            problems.append(f"manifest says {counts[name]} {name} rows, file has {len(ids[name])}")
    if shared_missing and not (problems or unhashed or changed):  # what could be checked is sound: say so
        own = len([n for n in hashes if n in outputs and n not in shared])
        shared_missing.append(
            "the run folder's own files check out: "
            + (f"{own} file{'s' if own != 1 else ''} unchanged (sha256), " if own else "contents not checked (the "
               "manifest records no sha256), ")
            + "no row in two parts, train = kept + quarantine"
            + (", every snapshot row in one part" if "snapshot" in ids else "; the snapshot's rows not compared"))
    return problems + shared_missing + unhashed + changed


def checked_counts(manifest: dict[str, Any]) -> str:
    """What a passing :func:`verify_run` checked, in one clause; ``""`` when the manifest lacks the counts.

    ``341 snapshot rows = 341 train (300 kept + 41 quarantined); 113 validation rows from their own
    file; 115 test rows from their own file; 9 files unchanged (sha256)``: validation and test rows
    from files of their own (``validation_from_data`` / ``test_from_data`` false) are not part of
    the snapshot, and only hashes of listed outputs are checked, so only those are counted.
    """
    rows, outputs = manifest.get("rows") or {}, manifest.get("outputs") or {}
    from_data = {p: manifest.get(f"{p}_from_data", True) for p in ("validation", "test")}
    try:
        parts = [f"{rows['train']} train ({rows['kept']} kept + {rows['quarantine']} quarantined)"]
        parts += [f"{rows[p]} {p}" for p in ("validation", "test") if from_data[p]]
        text = f"{rows['snapshot']} snapshot rows = " + " + ".join(parts)
        text += "".join(f"; {rows[p]} {p} rows from their own file" for p in ("validation", "test") if not from_data[p])
    except (KeyError, TypeError):
        return ""
    checked = len([n for n in manifest.get("sha256") or {} if n in outputs])
    return text + (f"; {checked} file{'s' if checked != 1 else ''} unchanged (sha256)" if checked else "")


def content_hash_note(manifest: dict[str, Any]) -> str | None:
    """What to tell the reader of a passing :func:`verify_run` when ``manifest`` records no content hashes.

    Such a manifest (written before hashes were recorded) is accepted on its row accounting alone:
    a file whose contents changed with its row ids intact (a flipped label, an edited value) passes.

    Returns:
        One line saying so, or ``None`` when the manifest records hashes.
    """
    if manifest.get("sha256"):
        return None
    return "the manifest predates content hashes (it records no 'sha256'), so file contents were not checked, only rows"
