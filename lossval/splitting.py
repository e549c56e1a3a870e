"""Choosing the trusted validation split and the held-out test split.

Neither split ever enters valuation training or pruning: the pipeline values and prunes the
train rows only, and scores "before" and "after" models on the same test rows.
"""

from __future__ import annotations

import hashlib
import re
import warnings

import numpy as np
import pandas as pd

from lossval._checks import too_many_classes
from lossval.errors import InputError
from lossval.io import missing_or_blank, row_hashes, value_text

__all__ = ["MIN_VALIDATION_ROWS", "MIN_TRAIN_ROWS", "SPLIT_VERSION", "assign_splits", "check_validation", "shared_rows",
           "shared_rows_note", "first_shared_row"]

MIN_VALIDATION_ROWS = 10
MIN_TRAIN_ROWS = 10


# Version of how rows are drawn into the random splits; valuation caches key on it (tasks.value).
# 2: by a seeded hash of each row's id instead of a permutation of the positions, so rows that
#    arrive later do not move the rows already there to another split.
# 3: copies of one row (derived ids h, h#2...) are drawn as one, so they share a split; rows whose numbers
#    changed dtype (int to float, bool) keep their derived ids (lossval.io.row_hashes); "latest" breaks ties
#    at its cut by the draw, not by the rows' order in the file.
SPLIT_VERSION = 3


def _draw_order(keys: np.ndarray, seed: int, part: str) -> np.ndarray:
    """A seeded pseudo-random number per row from its id alone (uint64), for the ``part`` drawn.

    A row's number does not depend on the other rows, so the rows drawn first stay drawn first
    when rows are appended or the file is reordered.
    """
    return np.fromiter((int.from_bytes(hashlib.blake2b(f"{seed}\x00{part}\x00{k}".encode(), digest_size=8).digest(),
                                       "big") for k in keys), dtype=np.uint64, count=len(keys))


_COPY = re.compile(r"^([0-9a-f]{16})#\d+$")
"""A derived id of a row's second, third... copy: its content hash, then ``#n`` (:func:`lossval.io.assign_row_ids`)."""


def _draw_keys(df: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """What each row's draw number is hashed from: its id, with a derived id's ``#n`` dropped.

    Copies of one row then draw the same number and go to the same split. Without a ``row_id``
    column, the rows' positions.
    """
    if "row_id" not in df.columns:
        return np.arange(len(df)).astype(str)
    ids = df["row_id"].astype(str)
    if id_column is not None:
        return ids.to_numpy()
    return ids.str.replace(_COPY, r"\1", regex=True).to_numpy()


def _random_part(order: np.ndarray, labels: np.ndarray | None, fraction: float, *,
                 both_sides: bool = False) -> np.ndarray:
    """Positions of the ``fraction`` of rows first in ``order``, per class of ``labels`` when given.

    Rows with the same ``order`` (copies of one row, see :func:`_draw_keys`) go in or out
    together, so the part holds a copy's whole group or none of it (:func:`_whole_groups`); a
    class never loses all its rows to the part, nor gives it none, because of a group.

    ``both_sides``: a class of two rows or more keeps at least one row in the part and one out of
    it (the validation draw: every class needs both, and a rare class's rounded share would be 0).
    When the class is copies of one row, that takes splitting them.
    """
    groups = [np.arange(len(order))] if labels is None else [
        np.flatnonzero(labels == cls) for cls in sorted(pd.unique(labels), key=str)]

    def size(n: int) -> int:
        k = int(round(fraction * n))
        return min(max(k, 1), n - 1) if both_sides and labels is not None and n >= 2 else k

    chosen = []
    for pos in groups:
        ranked = pos[np.argsort(order[pos], kind="stable")]
        chosen.append(ranked[:_whole_groups(order[ranked], size(len(pos)))])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def _whole_groups(ranked_keys: np.ndarray, k: int) -> int:
    """How many of the rows ranked by ``ranked_keys`` to take, near ``k``, without parting equal keys.

    Equal keys are adjacent in a ranking by them. When the ``k``-th and the next row share a key,
    the cut moves to the end of that run (never fewer rows than asked: a validation split keeps
    its minimum), or, when that would take every row and ``k`` did not, to its start; when that
    would take none and ``k`` did not, the run is parted at ``k`` (a class made of copies of one
    row still gives rows to both sides).
    """
    n = len(ranked_keys)
    if k <= 0 or k >= n or ranked_keys[k - 1] != ranked_keys[k]:
        return k
    end = int(np.searchsorted(ranked_keys, ranked_keys[k], side="right"))
    if end < n:
        return end
    start = int(np.searchsorted(ranked_keys, ranked_keys[k], side="left"))
    return start if start > 0 else k


def _as_bool(series: pd.Series, column: str, source: str | None) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy()
    mapping = {True: True, False: False, 1: True, 0: False, "true": True, "false": False, "yes": True,
               "no": False, "1": True, "0": False}
    lowered = series.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
    bad = ~lowered.isin(list(mapping))
    if bad.any():
        first = series.index[bad.to_numpy()][0]
        value = series[bad.to_numpy()].iloc[0]
        empty = value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))
        shown = "an empty value" if empty else repr(value.item() if isinstance(value, np.generic) else value)
        raise InputError(
            f"trusted column {column!r} (config key 'validation.column') must be boolean (true/false, 1/0); at row "
            f"{first} it has {shown}"
            + (" (mark every row true or false)" if empty else "") + ".",
            source=source,
        )
    return lowered.map(mapping).astype(bool).to_numpy()


def assign_splits(
    df: pd.DataFrame,
    *,
    strategy: str,
    target: str,
    task: str,
    seed: int,
    test_fraction: float,
    valid_fraction: float = 0.2,
    column: str | None = None,
    timestamp_column: str | None = None,
    source: str | None = None,
    id_column: str | None = None,
) -> pd.Series:
    """Assign each row of the data to ``train``, ``validation`` or ``test``.

    Args:
        df: The snapshot rows.
        strategy: ``file`` (validation comes from another file: rows here are train/test),
            ``column`` (rows where boolean ``column`` is true are validation), ``stratified``
            (random ``valid_fraction``, stratified by class for classification), ``latest``
            (the most recent ``valid_fraction`` of rows by ``timestamp_column``).
        target: Target column (stratification).
        task: ``classification`` or ``regression``.
        seed: Seed of the random parts. They are drawn by a seeded hash of each row's
            ``row_id`` (its position when there is no such column), so appending rows or
            reordering the file leaves the other rows where they were, apart from the few
            needed to keep each part's fraction.
        test_fraction: Fraction of the non-validation rows held out for testing (stratified
            for classification); 0 when the test rows come from a separate file.
        valid_fraction: Validation fraction for ``stratified`` and ``latest``. Stratified, a class
            of two rows or more gets at least one validation row and keeps at least one.
        column: Trusted column for ``column``.
        timestamp_column: Time column for ``latest``.
        source: File name for error messages.
        id_column: The data's id column, when ``row_id`` holds its values; None when the ids
            were derived from the rows' content (:func:`lossval.io.assign_row_ids`). Then copies
            of one row (ids ``h``, ``h#2``...) are drawn as one: they land in the same split, so
            a test row is never also trained on. Rows under distinct ids of yours are drawn
            apart, identical or not.

    Returns:
        ``pd.Series`` of split names aligned with ``df``.

    Raises:
        ValueError: a fraction out of range.
        InputError: a missing or malformed column, an unparseable timestamp, or a split that
            leaves fewer than 10 validation or 10 training rows, or a class without training or
            validation rows (see :func:`check_validation`).
    """
    if strategy in ("stratified", "latest") and not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must lie in (0, 1), got {valid_fraction!r}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction!r}")
    n = len(df)
    keys = _draw_keys(df, id_column)
    labels = df[target].astype(str).to_numpy() if task == "classification" else None
    split = np.full(n, "train", dtype=object)
    if strategy == "column":
        if column not in df.columns:
            raise InputError(f"trusted column {column!r} not found; columns are {list(df.columns)[:10]}.", source=source)
        split[_as_bool(df[column], column, source)] = "validation"
    elif strategy == "stratified":
        split[_random_part(_draw_order(keys, seed, "validation"), labels, valid_fraction, both_sides=True)] = "validation"
    elif strategy == "latest":
        if timestamp_column not in df.columns:
            raise InputError(f"timestamp column {timestamp_column!r} not found; columns are {list(df.columns)[:10]}.", source=source)
        k = int(round(valid_fraction * n))
        split[_latest_rows(df, timestamp_column, k, source, _draw_order(keys, seed, "latest"))] = "validation"
    elif strategy != "file":
        raise InputError(f"unknown validation strategy {strategy!r}.", source=source)

    n_valid = int((split == "validation").sum())
    if strategy != "file" and n_valid < MIN_VALIDATION_ROWS:
        fix = (f"mark more rows true in column {column!r}" if strategy == "column"
               else "raise validation.fraction, or add rows")
        raise InputError(
            f"the '{strategy}' validation split has {n_valid} row{'' if n_valid == 1 else 's'}; at least "
            f"{MIN_VALIDATION_ROWS} are needed "
            f"({fix}).",
            source=source,
        )
    rest = np.flatnonzero(split == "train")
    if test_fraction > 0:
        test_pos = _random_part(_draw_order(keys[rest], seed, "test"), None if labels is None else labels[rest],
                                test_fraction)
        split[rest[test_pos]] = "test"
    n_train = int((split == "train").sum())
    if n_train < MIN_TRAIN_ROWS:
        raise InputError(
            f"only {n_train} training rows are left after the validation and test splits; "
            f"at least {MIN_TRAIN_ROWS} are needed.",
            source=source,
        )
    if labels is not None and strategy != "file":
        check_validation(df[target][split == "train"], df[target][split == "validation"], task=task, target=target,
                         source=source)
    return pd.Series(split, index=df.index, name="split")


def _latest(times: np.ndarray, k: int, draw: np.ndarray) -> np.ndarray:
    """Positions of the ``k`` latest ``times``; rows at the same time are taken in ``draw`` order.

    A tie at the cut is thus broken by the rows' ids, not by where they sit in the file, and
    copies of one row (same time, same draw) go in or out together (:func:`_whole_groups`).
    """
    _, when = np.unique(times, return_inverse=True)
    ranked = np.lexsort((draw, -when.ravel()))  # latest first; equal times by draw
    w, d = when.ravel()[ranked], draw[ranked]
    runs = np.concatenate([[0], np.cumsum((w[1:] != w[:-1]) | (d[1:] != d[:-1]))])
    return np.sort(ranked[:_whole_groups(runs, k)])


def _latest_rows(df: pd.DataFrame, column: str, k: int, source: str | None, draw: np.ndarray) -> np.ndarray:
    """Positions of the ``k`` rows with the latest time in ``column``.

    One reading for the whole column, never one per value: ISO 8601 first, else one inferred
    format. A pandas "mixed" parse would read ``01/02/2024`` month-first and ``13/02/2024``
    day-first in the same column and silently pick the wrong rows. Where month-first and
    day-first readings both parse every value and would pick different rows, the dates are
    ambiguous and refused.
    """
    raw = df[column]
    missing = missing_or_blank(raw)
    if missing.any():  # said as what it is, not as a date that "does not parse in one format"
        first = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"timestamp column {column!r} has {int(missing.sum())} missing value(s), first at row {df.index[first]}; "
            "the 'latest' split needs every row's time. Fill them in, drop those rows, or use another validation "
            "strategy.",
            source=source,
        )
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        times = (pd.to_datetime(raw, utc=True).dt.tz_localize(None) if pd.api.types.is_datetime64_any_dtype(raw)
                 else raw.astype("float64"))
        return _latest(times.to_numpy(), k, draw)  # stored as times or numbers, none missing: nothing to parse
    _refuse_mixed_offsets(raw, column, df.index, source)
    readings, parsed = {}, {}
    for name, kw in (("ISO 8601", {"format": "ISO8601"}), ("month first", {}), ("day first", {"dayfirst": True})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns when it falls back to dateutil per value
            times = pd.to_datetime(raw, errors="coerce", utc=True, **kw)
        readings[name], parsed[name] = times.isna().to_numpy(), times.dt.tz_localize(None).to_numpy()
        if name == "ISO 8601" and not readings[name].any():
            break
    full = [name for name, bad in readings.items() if not bad.any()]
    if full == ["month first", "day first"]:
        picks = {name: _latest(parsed[name], k, draw) for name in full}
        if not np.array_equal(picks["month first"], picks["day first"]):
            differ = (parsed["month first"] != parsed["day first"]).nonzero()[0][0]
            raise InputError(
                f"timestamp column {column!r} is ambiguous: its dates read as both month/day and day/month "
                f"(at row {df.index[differ]}: {raw.iloc[differ]!r}), and the two readings pick different latest "
                "rows. Write the dates as YYYY-MM-DD (ISO 8601).",
                source=source,
            )
    if not full:
        bad = min(readings.values(), key=lambda b: int(b.sum()))  # the reading closest to working
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"timestamp column {column!r} has {int(bad.sum())} value(s) that do not parse as dates in one format, "
            f"first at row {df.index[first]}: {raw.iloc[first]!r}. Use one date format for the whole column "
            "(YYYY-MM-DD is safest), fix or drop those rows, or use another validation strategy.",
            source=source,
        )
    return _latest(parsed[full[0]], k, draw)


# A time of day written with its UTC offset right after it (an AM/PM may come between): ...Z, ...+02:00,
# ...-0500, ...+02, ... UTC, ...UTC+2, ...1:30 PM -05:00. One pattern, so that a '-' joining a date to its time
# (2026-01-01-12:30, which parsers read as 12:30 without an offset) is not taken for an offset of -12:30.
_OFFSET = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*(?:[ap]\.m\.|[ap]m(?![a-z])))?\s*"
                     r"(?:(?:Z|UTC|GMT)(?:\s*[+-]\d{1,2}(?::?\d{2})?)?|[+-]\d{1,2}(?::?\d{2})?)$",
                     re.IGNORECASE)  # each \s* stands before a letter or sign: no quadratic backtracking on spaces
# GMT+2 / UTC-5 with a bare hour: dateutil reads the sign the POSIX way (GMT+2 is two hours *behind* UTC).
_NAMED_SIGNED = re.compile(r"(?:UTC|GMT)\s*[+-]\d{1,2}$", re.IGNORECASE)
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}")


def _refuse_mixed_offsets(raw: pd.Series, column: str, index: pd.Index, source: str | None) -> None:
    """Refuse a text timestamp column in which some times of day carry a UTC offset and others do not.

    The ones without would be read as UTC, hours off from the others in most places, and the
    "latest" rows picked from that order. Dates without a time of day mix with either.
    """
    text = [str(v).strip() for v in raw.to_numpy(dtype=object)]
    present = ~raw.isna().to_numpy()
    signed = np.array([bool(_NAMED_SIGNED.search(v)) for v in text], dtype=bool) & present
    if signed.any():
        a = int(np.flatnonzero(signed)[0])
        raise InputError(
            f"timestamp column {column!r} writes its UTC offsets as {raw.iloc[a]!r} (at row {index[a]}); date parsers "
            "read 'GMT+2' as two hours behind UTC (the POSIX convention), most people mean ahead. Write the offset "
            "as +02:00 (ISO 8601).",
            source=source,
        )
    offset = np.array([bool(_OFFSET.search(v)) for v in text], dtype=bool) & present
    plain = np.array([bool(_TIME_OF_DAY.search(v)) for v in text], dtype=bool) & present & ~offset  # dates alone: midnight
    if offset.any() and plain.any():
        a, b = int(np.flatnonzero(offset)[0]), int(np.flatnonzero(plain)[0])
        raise InputError(
            f"timestamp column {column!r} mixes times with a UTC offset ({int(offset.sum())}, e.g. at row {index[a]}: "
            f"{raw.iloc[a]!r}) and without one ({int(plain.sum())}, e.g. at row {index[b]}: {raw.iloc[b]!r}); those "
            "would be read as UTC. Write every time with its offset, or none.",
            source=source,
        )


def _classes(y: pd.Series) -> dict[str, int]:
    """Class label (as text) -> row count."""
    return pd.Series([value_text(v) for v in y.dropna().to_numpy(dtype=object)], dtype=object).value_counts(
        sort=False).to_dict()


def check_validation(y_train: pd.Series, y_validation: pd.Series, *, task: str, target: str,
                     source: str | None = None, validation_source: str | None = None) -> None:
    """Check that a validation split can value these training rows.

    LossVal compares each training row with the validation rows of its class: a class with
    no validation rows would be valued against nothing, and a validation class with no
    training rows cannot be learned. Both are input errors, as is a validation split of fewer
    than :data:`MIN_VALIDATION_ROWS` rows.

    Args:
        y_train: Target values of the training rows, shape ``(n_train,)``.
        y_validation: Target values of the validation rows, shape ``(n_validation,)``.
        task: ``classification`` or ``regression`` (class checks only for classification).
        target: Target column name, for messages.
        source: Where the training rows came from, for messages.
        validation_source: Where the validation rows came from (default ``source``).

    Raises:
        InputError: too few validation rows, or a class missing from one side (names the
            classes, their row counts and the file).
    """
    where = validation_source or source
    if len(y_validation) < MIN_VALIDATION_ROWS:
        raise InputError(
            f"the validation split has {len(y_validation)} row{'' if len(y_validation) == 1 else 's'}; at least "
            f"{MIN_VALIDATION_ROWS} are needed "
            "(add trusted rows to it).",
            source=where,
        )
    if task != "classification":
        return
    train, valid = _classes(y_train), _classes(y_validation)
    if too_many_classes(len(train), len(y_train)):
        raise InputError(
            f"target {target!r} has {len(train)} distinct values in {len(y_train)} training rows, too many to be "
            "classes: is it an id, a name or a measurement? Point target at the column to predict, or set "
            "task: regression (`lossval value`: --task regression) if it holds numbers.",
            source=source,
        )
    no_valid = sorted(set(train) - set(valid))
    no_train = sorted(set(valid) - set(train))
    if no_valid:
        shown = ", ".join(f"{c!r} ({train[c]} training row{'' if train[c] == 1 else 's'})" for c in no_valid[:5])
        # Validation labels the training rows lack are the likelier cause (another labelling, or another column):
        # without them named, a validation file of 153 rows read as having none of these classes.
        unmatched = _spelling_hint(no_valid, set(valid), "validation") or (
            "; the validation rows hold " + ", ".join(f"{c!r} ({valid[c]} row{'' if valid[c] == 1 else 's'})"
                                                      for c in no_train[:5])
            + (f" and {len(no_train) - 5} more" if len(no_train) > 5 else "")
            + ", which no training row has (are both labelled the same way?)" if no_train else "")
        raise InputError(
            f"class(es) {shown} of target {target!r} have no validation rows; LossVal values each row against "
            "validation rows of its class: add trusted rows of these classes, or drop them from the data"
            + unmatched + ".",
            source=where,
        )
    _warn_on_label_variants(set(train) | set(valid), target=target, source=source)
    _warn_on_class_shares(train, valid, target=target, source=where)
    if no_train:
        shown = ", ".join(f"{c!r} ({valid[c]} validation row{'' if valid[c] == 1 else 's'})" for c in no_train[:5])
        raise InputError(
            f"class(es) {shown} of target {target!r} have no training rows; a class seen only in validation "
            "cannot be learned: add training rows of these classes, or drop them from the validation data (with "
            "test rows drawn from the data, a lower test_fraction may leave them some)"
            + _spelling_hint(no_train, set(train), "training") + ".",
            source=where,
        )


def _spelling_hint(missing: list[str], present: set[str], where: str) -> str:
    """``" ('Bird' is spelt 'bird' in the validation rows: the same class?)"`` for labels differing in case or spaces."""
    spelt = {label.strip().casefold(): label for label in present}
    pairs = [(m, spelt[m.strip().casefold()]) for m in missing if m.strip().casefold() in spelt]
    if not pairs:
        return ""
    return " (" + "; ".join(f"{m!r} is spelt {p!r} in the {where} rows" for m, p in pairs[:5]) + ": the same class?)"


def _warn_on_label_variants(labels: set[str], *, target: str, source: str | None) -> None:
    """Warn about class labels that differ only in case or surrounding spaces ("yes", "Yes ", " yes")."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.strip().casefold(), []).append(label)
    variants = [sorted(g) for g in groups.values() if len(g) > 1]
    if variants:
        shown = "; ".join(", ".join(repr(v) for v in g) for g in sorted(variants)[:5])
        warnings.warn(f"{source + ': ' if source else ''}target {target!r} has labels that differ only in case or "
                      f"spaces ({shown}); each is a class of its own, and the rows of the rarer spellings look "
                      "least valuable. Clean the labels if they mean the same class", UserWarning, stacklevel=3)


def _warn_on_class_shares(train: dict[str, int], valid: dict[str, int], *, target: str, source: str | None) -> None:
    """Warn about a class whose share of validation rows is under a third of its share of training rows.

    LossVal values each row against the validation rows of its class: an audit's class that was
    50% of training rows and 5% of validation rows had 96.5% of its clean rows flagged.
    """
    n_train, n_valid = sum(train.values()), sum(valid.values())
    low = [(c, train[c] / n_train, valid.get(c, 0) / n_valid) for c in train
           if train[c] / n_train >= 0.05 and 0 < valid.get(c, 0) / n_valid < train[c] / n_train / 3]
    if low:
        shown = ", ".join(f"{c!r} {t:.0%} of training rows, {v:.0%} of validation rows" for c, t, v in low[:5])
        warnings.warn(f"{source + ': ' if source else ''}class(es) of target {target!r} much rarer in validation than "
                      f"in training ({shown}); their rows are valued against few validation rows and tend to be "
                      "flagged. Use a validation split with the data's class balance (validation.strategy: "
                      "stratified)", UserWarning, stacklevel=3)


def shared_rows(rows: pd.DataFrame, data: pd.DataFrame, *, ignore: tuple[str | None, ...] = ()) -> np.ndarray:
    """Which of ``rows`` also appear in ``data``, identical in every column both have (``ignore`` aside).

    A training copy of a validation row looks valuable for no good reason, and a test row that
    is also trained on flatters the "after" metrics. Callers warn rather than refuse: identical
    rows can be genuine (few, coarse columns). Pass the id column in ``ignore``: a copy with
    another id is still the same example. Numbers match whether stored as int, float or bool
    (:func:`lossval.io.row_hashes`); text and numbers do not.

    Returns:
        bool array, one per row of ``rows`` (all False when no column is compared or a cell
        cannot be hashed).
    """
    columns = _compared_columns(rows, data, ignore)
    if not columns:
        return np.zeros(len(rows), dtype=bool)
    try:
        ours = row_hashes(rows[columns])
        theirs = row_hashes(data[columns])
    except (TypeError, InputError):  # unhashable cells (refused elsewhere): nothing to compare
        return np.zeros(len(rows), dtype=bool)
    return np.isin(ours, theirs)


def first_shared_row(rows: pd.DataFrame, data: pd.DataFrame, shared: np.ndarray, *,
                     ignore: tuple[str | None, ...] = ()) -> str:
    """Where the first row of ``rows`` that :func:`shared_rows` found in ``data`` (its mask ``shared``, same
    ``ignore``) is, in both: "row 3 (data row 500)".

    Rows are numbered from 0 in the order the files are read; "" when no row is shared.
    """
    found = np.flatnonzero(shared)
    if not found.size:
        return ""
    columns = _compared_columns(rows, data, ignore)
    first = row_hashes(rows[columns])[found[0]]
    there = np.flatnonzero(row_hashes(data[columns]) == first)
    return f"row {int(found[0])} (data row {int(there[0])})"


def _compared_columns(rows: pd.DataFrame, data: pd.DataFrame, ignore: tuple[str | None, ...]) -> list:
    return [c for c in data.columns if c in rows.columns and c not in ignore and c != "row_id"]


def shared_rows_note(rows: pd.DataFrame, data: pd.DataFrame, *, ignore: tuple[str | None, ...] = ()) -> str:
    """A clause for the shared-rows warning when ``data`` itself repeats many of its rows, else "".

    With few, coarse columns rows coincide by chance: if 5% or more of the data's rows are
    identical to another of its rows (in the columns :func:`shared_rows` compares), shared rows
    say little about a copied file, and the warning should say so.
    """
    columns = _compared_columns(rows, data, ignore)
    if not columns or data.empty:
        return ""
    try:
        share = float(data[columns].duplicated(keep=False).mean())
    except TypeError:
        return ""
    return (f" (the data repeats {share:.0%} of its own rows in these columns, so identical rows may be genuine "
            "here: check before removing)") if share >= 0.05 else ""
