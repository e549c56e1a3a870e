"""Stage 1: read the landing file(s), give every row a stable id, write an immutable snapshot."""

from __future__ import annotations

import datetime as dt

from prefect import task

from lossval.errors import InputError
from lossval.io import assign_row_ids, frame_fingerprint, read_json, read_table, write_json, write_parquet
from tasks._paths import Workspace

__all__ = ["ingest"]


@task(name="ingest")
def ingest(data_path: str, *, dataset: str, target: str, id_column: str | None, workspace: str) -> dict:
    """Snapshot ``data_path`` (file or folder) into ``snapshots/<dataset>/<content-hash>.parquet``.

    The raw-data GX suite checks the schema first (target present, not all null, enough rows).
    The input files are only read. Returns ``{"snapshot", "snapshot_hash", "rows", "columns"}``.
    """
    from tasks.gx import validate_frame

    df = read_table(data_path)
    if "row_id" in df.columns and id_column != "row_id":
        raise InputError("has a column named 'row_id', which lossval reserves; rename it or set id_column: row_id.", source=data_path)
    raw = validate_frame(df, suite="raw_data", params={"target": target, "min_rows": 20})
    if not raw["success"]:
        raise InputError("raw-data checks failed: " + "; ".join(raw["failures"]), source=data_path)
    if df[target].isna().any():
        bad = df.index[df[target].isna()]
        raise InputError(f"target column {target!r} has {len(bad)} empty value(s), first at row {bad[0]}; drop or fill them.", source=data_path)
    row_ids = assign_row_ids(df, id_column=id_column, source=data_path)
    snap = df.copy()
    if id_column != "row_id":
        snap.insert(0, "row_id", row_ids.to_numpy())
    digest = frame_fingerprint(snap)
    ws = Workspace.at(workspace)
    path = ws.snapshot_dir(dataset) / f"{digest}.parquet"
    if not path.exists():  # content-addressed: an existing file already holds these bytes
        write_parquet(snap, path)
    history_path = ws.snapshot_dir(dataset) / "history.json"
    history = read_json(history_path) if history_path.exists() else []
    if not history or history[-1]["snapshot_hash"] != digest:
        history.append({"snapshot_hash": digest, "source": str(data_path), "rows": len(snap),
                        "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        write_json(history, history_path)
    return {"snapshot": str(path), "snapshot_hash": digest, "rows": len(snap), "columns": list(df.columns)}
