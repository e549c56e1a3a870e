"""Stage 2: the trusted validation split and the held-out test split."""

from __future__ import annotations

import warnings

import pandas as pd
from prefect import task

from lossval.config import PipelineConfig
from lossval.encoding import TabularEncoder
from lossval.errors import InputError
from lossval.io import assign_row_ids, is_text_dtype, missing_or_blank, read_table, text_columns_of, write_parquet
from lossval.splitting import (MIN_VALIDATION_ROWS, assign_splits, check_validation, first_shared_row, shared_rows,
                               shared_rows_note)
from tasks._log import run_logger
from tasks.value import config_encoder

__all__ = ["split", "split_rows", "check_encodable", "MIN_TEST_ROWS"]

MIN_TEST_ROWS = 2
"""Fewest test rows a run accepts: the before/after metrics and the gate are computed on them."""


@task(name="split")
def split(snapshot: str, *, config: PipelineConfig, task_kind: str, run_dir: str) -> dict:
    """Write ``train.parquet``, ``validation.parquet`` and ``test.parquet`` into ``run_dir``.

    Before anything is written, every row is checked the way valuation will encode it (so a
    bad value is reported with its row number in the input, not in a split), and the
    validation split must hold every training class (see :func:`lossval.splitting.check_validation`).

    Returns their paths, row counts and whether validation rows came from the data itself.
    """
    df = pd.read_parquet(snapshot)
    encoder = check_encodable(df, config, task_kind)
    v = config.validation
    parts = split_rows(df, config, task_kind)
    external = {"validation": v.path if v.strategy == "file" else None, "test": config.test_path}
    frames = {}
    for name in ("train", "validation", "test"):
        if external.get(name):
            frames[name] = _curated_rows(external[name], df, config, encoder, prefix=name[:4])
        else:
            frames[name] = df[parts == name]
    if external["validation"] and external["test"]:  # two curated files: the test rows must not be validation rows
        user = [c for c in frames["validation"].columns if c != "row_id"]
        shared = shared_rows(frames["test"][user], frames["validation"][user], ignore=(config.id_column,))
        if shared.any():
            run_logger().warning(
                "%s: %d of %d test rows also appear, identical, in the validation file (%s); the test scores them "
                "after calibration and the gate's ranges were fitted on them. Remove them from one of the two "
                "files.", external["test"], int(shared.sum()), len(shared), external["validation"])
    if external["validation"] or task_kind != "classification":  # else assign_splits checked these very rows
        check_validation(frames["train"][config.target], frames["validation"][config.target], task=task_kind,
                         target=config.target, source=config.data, validation_source=external["validation"])
    test_y = pd.to_numeric(frames["test"][config.target], errors="coerce") if task_kind == "regression" else None
    if test_y is not None and test_y.nunique() < 2:  # R^2 is 0 for every model: the gate could not tell them apart
        what = (f"{len(test_y)} test row(s)" if len(test_y) < 2
                else f"the test rows' target {config.target!r} is constant ({test_y.iloc[0]})")
        raise InputError(f"{what}; the before/after comparison needs at least 2 test rows whose target varies: "
                         "use other test rows" + (" (test_path)." if config.test_path else " or a larger test_fraction."),
                         source=config.test_path or config.data)
    if test_y is None and len(frames["test"]) < MIN_TEST_ROWS:  # classification: accuracy on 0 or 1 row means nothing
        raise InputError(f"{len(frames['test'])} test row(s); the before/after comparison needs at least "
                         f"{MIN_TEST_ROWS}: use other test rows"
                         + (" (test_path)." if config.test_path else " or a larger test_fraction."),
                         source=config.test_path or config.data)
    out = {name: str(write_parquet(rows, f"{run_dir}/{name}.parquet")) for name, rows in frames.items()}
    return {"paths": out, "rows": {name: len(rows) for name, rows in frames.items()},
            "validation_from_data": not external["validation"], "test_from_data": not external["test"]}


def split_rows(df: pd.DataFrame, config: PipelineConfig, task_kind: str) -> pd.Series:
    """Each row's part ("train", "validation", "test") as the config asks (:func:`lossval.splitting.assign_splits`).

    ``df`` holds the ``row_id`` column ingest gives the snapshot. Raises InputError when a part
    would be too small or a class would be missing from the validation rows.
    """
    v = config.validation
    return assign_splits(df, strategy=v.strategy, target=config.target, task=task_kind, seed=config.seed,
                         test_fraction=0.0 if config.test_path else config.test_fraction, valid_fraction=v.fraction,
                         column=v.column, timestamp_column=v.timestamp_column, source=config.data,
                         id_column=config.id_column)


def check_encodable(df: pd.DataFrame, config: PipelineConfig, task_kind: str) -> TabularEncoder:
    """An encoder fitted on every row: raises InputError naming the input row of a NaN, inf or text value."""
    enc = config_encoder(config, task_kind, df.columns)
    with warnings.catch_warnings():  # constant columns are reported once, by the valuation stage
        warnings.simplefilter("ignore", UserWarning)
        enc.fit(df)
    enc.to_dict()  # labels the valuation stage could not save with its encoder: refused now, not after the fit
    return enc


def _curated_rows(path: str, df: pd.DataFrame, config: PipelineConfig, encoder: TabularEncoder, *,
                  prefix: str) -> pd.DataFrame:
    """Rows of a curated validation/test file, checked against the data's schema, with prefixed row ids."""
    # As ingest reads the data; a target the data holds as text ("1", "yes") is read as text from a CSV too, and so is
    # every column of text in the data (a test file of one region, all "NA", would otherwise read it as missing).
    text_target = [config.target] if is_text_dtype(df[config.target].dtype) else []
    numeric = config.numeric_features()
    rows = read_table(path, text_columns=[config.id_column, *config.categorical, *text_target,
                                          *text_columns_of(df, skip={"row_id", *numeric})],
                      numeric_columns=numeric)
    needed = [c for c in df.columns if c != "row_id"]
    # What the stages read of these rows: the features, the target and the ids. The data's other columns (excluded
    # ones, the validation marker, a timestamp) may be absent: those rows get them empty.
    used = {*encoder.feature_columns_, config.target, *([config.id_column] if config.id_column else [])}
    missing = [c for c in needed if c not in rows.columns and c in used]
    if missing:
        raise InputError(f"lacks column(s) {missing[:5]} that the data has and the model uses (features, target, id "
                         "column); both files must share them.", source=path)
    present = [c for c in needed if c in rows.columns]
    absent = [c for c in needed if c not in rows.columns]
    if absent:
        run_logger().info("%s: no column(s) %s, which no stage reads of these rows (excluded columns, the validation "
                          "marker, a timestamp); they are left empty", path, absent[:5])
    extra = [str(c) for c in rows.columns if c not in df.columns]
    if extra:
        run_logger().warning("%s: column(s) %s are not in the data (%s) and are ignored.", path, extra[:5], config.data)
    if len(rows) < MIN_VALIDATION_ROWS:
        raise InputError(f"has {len(rows)} row{'' if len(rows) == 1 else 's'}; at least {MIN_VALIDATION_ROWS} are "
                         "needed.", source=path)
    empty = missing_or_blank(rows[config.target])
    if empty.any():
        raise InputError(f"target column {config.target!r} has {int(empty.sum())} empty value(s), first at row "
                         f"{rows.index[empty][0]}.", source=path)
    encoder.transform(rows, source=path)  # NaN, inf or text in a feature: named with the file's row
    encoder.encode_target(rows[config.target], source=path)  # a label the data does not have
    rows = rows[present].copy()
    for c in absent:
        rows[c] = pd.Series(pd.NA, index=rows.index, dtype=object)
    rows = rows[needed]
    _warn_on_shared_rows(rows[present], df[present], path=path, data_path=config.data, what="validation" if prefix == "vali" else "test",
                         id_column=config.id_column)
    rows.insert(0, "row_id", (f"{prefix}:" + assign_row_ids(rows, id_column=config.id_column, source=path)).to_numpy())
    return rows


def _warn_on_shared_rows(curated: pd.DataFrame, data: pd.DataFrame, *, path: str, data_path: str, what: str,
                         id_column: str | None) -> None:
    """Warn when rows of a curated file also appear, identical, in the data (:func:`lossval.splitting.shared_rows`)."""
    shared = shared_rows(curated, data, ignore=(id_column,))
    if shared.any():
        run_logger().warning(
            "%s: %d of %d %s rows also appear, identical, in the data (%s), first at %s %s; they leak into "
            "training. Remove them from one of the two files%s.", path, int(shared.sum()), len(curated), what,
            data_path, what, first_shared_row(curated, data, shared, ignore=(id_column,)),
            shared_rows_note(curated, data, ignore=(id_column,)))
