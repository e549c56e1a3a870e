"""Stage 2: the trusted validation split and the held-out test split."""

from __future__ import annotations

import pandas as pd
from prefect import task

from lossval.config import PipelineConfig
from lossval.errors import InputError
from lossval.io import assign_row_ids, read_table, write_parquet
from lossval.splitting import MIN_VALIDATION_ROWS, assign_splits

__all__ = ["split"]


@task(name="split")
def split(snapshot: str, *, config: PipelineConfig, task_kind: str, run_dir: str) -> dict:
    """Write ``train.parquet``, ``validation.parquet`` and ``test.parquet`` into ``run_dir``.

    Returns their paths, row counts and whether validation rows came from the data itself.
    """
    df = pd.read_parquet(snapshot)
    v = config.validation
    parts = assign_splits(df, strategy=v.strategy, target=config.target, task=task_kind, seed=config.seed,
                          test_fraction=0.0 if config.test_path else config.test_fraction, valid_fraction=v.fraction,
                          column=v.column, timestamp_column=v.timestamp_column, source=config.data)
    external = {"validation": v.path if v.strategy == "file" else None, "test": config.test_path}
    out, counts = {}, {}
    for name in ("train", "validation", "test"):
        if external.get(name):
            rows = _curated_rows(external[name], df, config, prefix=name[:4])
        else:
            rows = df[parts == name]
        out[name] = str(write_parquet(rows, f"{run_dir}/{name}.parquet"))
        counts[name] = len(rows)
    return {"paths": out, "rows": counts, "validation_from_data": not external["validation"],
            "test_from_data": not external["test"]}


def _curated_rows(path: str, df: pd.DataFrame, config: PipelineConfig, *, prefix: str) -> pd.DataFrame:
    """Rows of a curated validation/test file, checked against the data's schema, with prefixed row ids."""
    rows = read_table(path)
    needed = [c for c in df.columns if c != "row_id"]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise InputError(f"lacks column(s) {missing[:5]} that the data has; both files must share the schema.", source=path)
    if len(rows) < MIN_VALIDATION_ROWS:
        raise InputError(f"has {len(rows)} rows; at least {MIN_VALIDATION_ROWS} are needed.", source=path)
    if rows[config.target].isna().any():
        raise InputError(f"target column {config.target!r} has {int(rows[config.target].isna().sum())} empty value(s).", source=path)
    rows = rows[needed].copy()
    rows.insert(0, "row_id", (f"{prefix}:" + assign_row_ids(rows, id_column=config.id_column, source=path)).to_numpy())
    return rows
