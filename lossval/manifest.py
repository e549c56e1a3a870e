"""The run manifest: every output of a run and the row counts, which must add up.

``manifest.json`` is written last, atomically, by the pipeline: a run folder without one is
incomplete (crashed or running) and its files are not to be trusted. :func:`verify_run`
re-reads the outputs and checks that every input row is in exactly one of validation, test,
kept or quarantine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lossval.io import read_json

__all__ = ["MANIFEST_NAME", "verify_run", "row_counts"]

MANIFEST_NAME = "manifest.json"
_PARTS = ("validation", "test", "kept", "quarantine")


def row_counts(paths: dict[str, str]) -> dict[str, int]:
    """Rows per output table, from the parquet metadata (no full read)."""
    import pyarrow.parquet as pq

    return {name: pq.ParquetFile(p).metadata.num_rows for name, p in paths.items()}


def _ids(path: str) -> pd.Series:
    return pd.read_parquet(path, columns=["row_id"])["row_id"]


def verify_run(run_dir: Path) -> list[str]:
    """Check a run folder; returns a list of problems (empty = consistent).

    Checks: the manifest exists and lists existing files; the snapshot's row ids are exactly
    the union of the data-derived parts (validation when it came from the data, test, kept,
    quarantine); the parts are disjoint; ``train = kept + quarantine``; counts match the
    manifest.
    """
    problems: list[str] = []
    manifest_path = run_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        return [f"{manifest_path}: no manifest; the run did not complete"]
    manifest: dict[str, Any] = read_json(manifest_path)
    outputs: dict[str, str] = manifest.get("outputs", {})
    counts: dict[str, int] = manifest.get("rows", {})
    for name, p in outputs.items():
        if not Path(p).exists():
            problems.append(f"output '{name}' is missing: {p}")
    if problems:
        return problems
    needed = ("snapshot", "train", "test", "kept", "quarantine", "validation")
    absent = [n for n in needed if n not in outputs]
    if absent:
        return [f"manifest lists no {absent}"]
    ids = {name: _ids(outputs[name]) for name in needed}
    for name, series in ids.items():
        if series.duplicated().any():
            problems.append(f"{name}: {int(series.duplicated().sum())} duplicate row ids, e.g. {series[series.duplicated()].iloc[0]!r}")
    from_data = {"validation": manifest.get("validation_from_data", True), "test": manifest.get("test_from_data", True)}
    parts = [p for p in _PARTS if from_data.get(p, True)]
    seen: dict[str, str] = {}
    for part in parts:
        for rid in ids[part]:
            if rid in seen:
                problems.append(f"row {rid!r} is in both {seen[rid]} and {part}")
                break
            seen[rid] = part
    snapshot = set(ids["snapshot"])
    union = set(seen)
    if snapshot != union:
        lost = sorted(snapshot - union)[:5]
        extra = sorted(union - snapshot)[:5]
        problems.append(f"rows not accounted for: {len(snapshot - union)} lost (e.g. {lost}), {len(union - snapshot)} unknown (e.g. {extra})")
    if set(ids["train"]) != set(ids["kept"]) | set(ids["quarantine"]):
        problems.append("train rows != kept + quarantine")
    for name in needed:
        if name in counts and counts[name] != len(ids[name]):
            problems.append(f"manifest says {counts[name]} {name} rows, file has {len(ids[name])}")
    return problems
