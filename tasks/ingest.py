"""Stage 1: read the landing file(s), give every row a stable id, write an immutable snapshot."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from prefect import task

from lossval.errors import InputError
from lossval.io import (assign_row_ids, atomic_write, frame_fingerprint, fsync_dir, list_data_files, make_dirs,
                        missing_or_blank, read_json, read_table, require_column, write_json, write_parquet)
from lossval.landing import dataset_lock
from tasks._log import run_logger
from tasks._paths import Workspace
from tasks.prune import RESERVED_COLUMNS

__all__ = ["ingest", "publish_snapshot", "read_history", "check_columns_and_rows", "check_target_and_ids", "MIN_ROWS"]

#: The fewest data rows a run takes (the raw-data suite's ``min_rows``).
MIN_ROWS = 20


def check_columns_and_rows(df: pd.DataFrame, *, target: str, id_column: str | None, data_path: str) -> None:
    """Reserved column names, the target's presence and the row count; raises InputError naming the file."""
    if "row_id" in df.columns and id_column != "row_id":
        raise InputError("has a column named 'row_id', which lossval reserves; rename it or set id_column: row_id.", source=data_path)
    taken = [c for c in RESERVED_COLUMNS[1:] if c in df.columns]
    if taken:
        raise InputError(f"has column(s) {taken}, which lossval adds to quarantined rows; rename them.", source=data_path)
    require_column(df.columns, target, key="target", source=data_path)  # the suite would say it in GX's words
    if len(df) < MIN_ROWS:  # said in words before the suite's own row-count check says it in GX's
        raise InputError(f"has {len(df)} data row(s); a lossval run needs at least {MIN_ROWS}, as it splits them into "
                         "training, validation and test rows (the library's LossVal and `lossval value` take fewer, "
                         "with your own validation rows).", source=data_path)


def check_target_and_ids(df: pd.DataFrame, *, target: str, id_column: str | None, data_path: str) -> pd.Series:
    """Empty targets and the id column (present, complete, unique); returns the row ids."""
    empty = missing_or_blank(df[target])  # NaN, or text of spaces only ("" from a parquet file, "  " from a CSV)
    if empty.any():
        bad = df.index[empty]
        raise InputError(f"target column {target!r} has {len(bad)} empty value(s), first at row {bad[0]}; drop or fill them.", source=data_path)
    return assign_row_ids(df, id_column=id_column, source=data_path)


@task(name="ingest")
def ingest(data_path: str, *, dataset: str, target: str, id_column: str | None, workspace: str,
           stage_dir: str | None = None, categorical: Sequence[str] = (), numeric: Sequence[str] = (),
           set_aside: Sequence[str] = ()) -> dict:
    """Snapshot ``data_path`` (file or folder) as ``snapshots/<dataset>/<content-hash>.parquet``.

    The raw-data GX suite checks the schema first (target present, not all null, enough rows).
    The input files are only read. With ``stage_dir`` (the run's unfinished folder) a snapshot
    that is not in the store yet is written there, and :func:`publish_snapshot` moves it into
    the store once the run completes, so a run that fails leaves no snapshot behind.

    The id column and the ``categorical`` columns are read from a CSV as the text they hold
    (zip code ``"02139"`` stays ``"02139"``, not the number 2139), so the snapshot, the
    quarantine and the model's input schema keep the file's codes. The ``numeric`` columns (``features.numeric``)
    read a CSV's ``NA`` words as missing values, as columns of numbers do.

    ``set_aside``: the config's validation and test folders when they lie in a data folder
    (:meth:`lossval.config.PipelineConfig.set_aside_paths`): left out of its rows, not refused.

    Returns:
        ``{"snapshot": path to read now, "store_path": its final path, "snapshot_hash", "rows",
        "columns", "source"}``.
    """
    from lossval.suites import suite_file
    from tasks.gx import validate_frame

    before = _file_states(data_path, set_aside)
    df = read_table(data_path, text_columns=[id_column, *categorical], numeric_columns=numeric, set_aside=set_aside)
    after = _file_states(data_path, set_aside)
    if after != before:  # a delivery written in place while it was read: the rows read may be part of it
        changed = sorted(set(before.items()) ^ set(after.items()))[0][0]
        raise InputError(f"{changed} changed while it was read (size or modification time differ): it is still being "
                         "written. Nothing was snapshotted; run again once it is complete (write it under a temporary "
                         "name and rename it in, or add a .done marker, so it lands whole).", source=data_path)
    check_columns_and_rows(df, target=target, id_column=id_column, data_path=data_path)
    raw = validate_frame(df, suite="raw_data", params={"target": target, "min_rows": MIN_ROWS})
    if not raw["success"]:
        raise InputError(f"fails lossval's raw-data checks ({suite_file('raw_data')}): " + "; ".join(raw["failures"])
                         + f". lossval checks every input so: the target column the config names ({target!r}) must "
                         f"exist and be mostly filled, and there must be at least {MIN_ROWS} rows; fix the data, or "
                         "the config's target if it names the wrong column.", source=data_path)
    row_ids = check_target_and_ids(df, target=target, id_column=id_column, data_path=data_path)
    snap = df.copy()
    if id_column != "row_id":
        snap.insert(0, "row_id", row_ids.to_numpy())
    digest = frame_fingerprint(snap, source=data_path)
    store_path = Workspace.at(workspace).snapshot_dir(dataset) / f"{digest}.parquet"
    path = store_path
    if store_path.exists():  # content-addressed: it should hold these rows; a run trusts no file by its name
        _set_aside_if_changed(store_path, digest)
    if not store_path.exists():
        path = Path(stage_dir) / "snapshot.parquet" if stage_dir else store_path
        write_parquet(snap, path)
    return {"snapshot": str(path), "store_path": str(store_path), "snapshot_hash": digest, "rows": len(snap),
            "columns": list(df.columns), "source": str(data_path)}


def _set_aside_if_changed(store_path: Path, digest: str) -> None:
    """Move a stored snapshot whose rows no longer hash to its name aside (``<hash>.changed-<UTC time>.parquet.aside``),
    with a warning, so that this run writes it again from the input it has just read.

    An edited or damaged snapshot was used as it was: the run trained on rows that were not the input's, pruned them
    with values computed for the original rows, and ``lossval verify`` passed (it hashes the snapshot as the run
    found it). Reading it back costs about 0.25 s at 100,000 rows x 24 columns.
    """
    try:
        found = frame_fingerprint(pd.read_parquet(store_path))
    except Exception as exc:  # not readable as parquet (truncated, another format) or rows that cannot be hashed
        found = f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if found == digest:
        return
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    aside = store_path.with_name(f"{digest}.changed-{stamp}.parquet.aside")
    os.replace(store_path, aside)
    run_logger().warning("stored snapshot %s no longer holds the rows its name says (its rows hash to %s): it was "
                         "edited or damaged after it was written. Moved to %s; this run stores the input's rows again "
                         "(`lossval verify` fails on the folder of a run that used the changed file).",
                         store_path, found, aside.name)


def _file_states(data_path: str, set_aside: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, inode) of each data file ``data_path`` stands for (a file, or a folder's files), by name;
    empty when they cannot be listed (read_table then says why)."""
    try:
        files = list_data_files(data_path, set_aside=set_aside)
        return {f.name: (st.st_size, st.st_mtime_ns, st.st_ino) for f in files for st in [f.stat()]}
    except (InputError, OSError):
        return {}


def publish_snapshot(snap: dict, *, dataset: str, workspace: str) -> str:
    """Move a staged snapshot into the store (if not there yet) and record it in ``history.json``.

    Args:
        snap: The record :func:`ingest` returned.

    Returns:
        The snapshot's store path.
    """
    staged, store = Path(snap["snapshot"]), Path(snap["store_path"])
    if staged != store:
        if store.exists():
            staged.unlink(missing_ok=True)  # another run stored the same bytes meanwhile
        else:
            make_dirs(store.parent)
            try:
                os.replace(staged, store)  # same file system: an atomic rename
                fsync_dir(store.parent)
            except OSError:  # another file system: an atomic copy
                atomic_write(store, lambda tmp: shutil.copyfile(staged, tmp))
                staged.unlink(missing_ok=True)
    ws = Workspace.at(workspace)
    history_path = ws.snapshot_dir(dataset) / "history.json"
    # Read, append, write under a lock of its own (the flow may hold the dataset's lock already), so
    # two overlapping runs of a dataset cannot lose each other's entry.
    lock = "history-" + hashlib.sha256(dataset.encode()).hexdigest()[:16]
    with dataset_lock(ws.locks_dir, lock, timeout=600.0, holder=snap["snapshot_hash"]):
        history = read_history(history_path)
        if history is None:  # damaged (a disk fault, an edit by hand): kept aside, and a new history begins
            aside = history_path.with_name(f"history.damaged-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}.json")
            os.replace(history_path, aside)
            run_logger().warning("%s was not a readable snapshot history; moved to %s and started anew (rollback and "
                                 "shrink warnings compare with the snapshots recorded from now on)", history_path, aside.name)
            history = []
        if not history or history[-1].get("snapshot_hash") != snap["snapshot_hash"]:
            history.append({"snapshot_hash": snap["snapshot_hash"], "source": snap["source"], "rows": snap["rows"],
                            "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            write_json(history, history_path)
    return str(store)


def read_history(path: Path) -> list[dict] | None:
    """A dataset's snapshot history (``history.json``), oldest first: [] when there is none, None when it is damaged
    (not JSON, or not a list of records)."""
    if not path.exists():
        return []
    try:
        history = read_json(path)
    except (InputError, OSError, UnicodeDecodeError):
        return None
    return history if isinstance(history, list) and all(isinstance(h, dict) for h in history) else None
