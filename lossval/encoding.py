"""Encode a tabular DataFrame as a float32 matrix, the same way every time.

:class:`TabularEncoder` is fitted on the training rows only; validation rows, test rows
and later runs are encoded with the saved statistics (``save``/``load`` as JSON), so a
row always maps to the same vector.

Encoding:

* **Numeric** columns are standardised, ``(x - mean) / std``, with the mean and the
  population standard deviation (``ddof=0``) of the training rows, computed in float64;
  the output is float32. The two statistics are taken after clipping the column to its
  0.5-99.5% range widened by half on each side (``lossval._robust``), so that one typo
  does not set the scale: a single 1000 among 2000 values near 1 would otherwise shrink
  every other value 22-fold, and a model retrained without the typo row lost 1.4-2.8 points
  of accuracy (3 seeds, synthetic). The values themselves are not clipped, and with fewer
  than 20 training rows the statistics are the plain ones.
* **Categorical** columns are one-hot encoded, one output column per level, levels in
  sorted order (numbers by value, then strings). A column is categorical when it is
  listed in ``categorical=``, or its dtype is bool, category, object or string (object
  and string columns that hold numbers are the exception, see below), and it is not
  listed in ``numeric=``. A missing value (None/NaN/NA) in a categorical column is a
  level of its own, ``"__missing__"``.
  Levels are compared by their text, so ``1``, ``1.0`` and ``"1"`` are one level (a file
  read as CSV and as parquet encodes the same way).
* A categorical with more than ``max_categories`` levels keeps its ``max_categories``
  most frequent levels (ties by sort order) that occur more than once; the other levels,
  those seen once included, share one column, ``"__other__"``.
* **Unseen levels**: a level not seen in the training rows encodes as all zeros in that
  column's block, never an error. In a column that has an ``"__other__"`` column an
  unseen level goes to ``"__other__"`` (it is, like the levels folded there, rare).
* **Constant** columns (one distinct value in the training rows) carry no information:
  they are dropped from the features with a :class:`UserWarning` naming them. If no
  feature column is left, :class:`~lossval.errors.InputError`.

Missing and infinite values -- the policy is **reject**: NaN, None or +-inf in a numeric
feature column raises :class:`~lossval.errors.InputError` naming the column, how many
values and the first offending row (the DataFrame index label); drop or impute those
rows before valuation. A missing target value is rejected the same way. (Missing values
in categorical columns are not rejected: they are the ``"__missing__"`` level.)

Numbers stored as text: an object/string column of which at least 90% of the non-missing
values parse as numbers is taken to be a numeric column with typos, and the values that
do not parse are reported (``non-numeric value 'abc' in numeric column 'x' at row 17``);
blank text (``""``, only spaces) is reported as a missing value instead, as a NaN is.
If every value parses, the column is numeric. Below 90% it is categorical, with a
:class:`UserWarning` when at least half of its values are numbers (``years_employed`` with
15% ``"unknown"``). Pass ``categorical=[...]`` for code-like columns (zip codes, ids) that
must stay categorical, and ``numeric=[...]`` for columns that must be numbers whatever
their share of text: every value of those that does not parse is reported.

Datetime/timedelta columns (and text columns holding ISO dates) are refused: exclude them
with ``exclude=[...]`` or turn them into numeric features first.

Target: with ``task="auto"`` the task is classification when the target dtype is
object/string/bool/category, or integer with at most 20 distinct values; regression
otherwise (so a float target is regression: pass ``task="classification"`` to override).
Class labels keep their type (ints stay ints, strings stay strings) and are sorted.

>>> import pandas as pd
>>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"],
...                    "y": ["a", "b", "a"]})
>>> enc = TabularEncoder(target="y")
>>> X = enc.fit_transform(df)
>>> enc.encoded_names_
['x', 'colour=blue', 'colour=red']
>>> enc.encode_target(df["y"]).tolist()
[0, 1, 0]
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossval._robust import central_range_bounds, mean_and_std
from lossval.errors import ConfigError, InputError, UnseenLevelsWarning
from lossval.io import (closest_name, is_text_dtype as _is_text_dtype, missing_or_blank, nested_column, shell_name,
                        yaml_name)

__all__ = ["TabularEncoder", "MISSING_LEVEL", "OTHER_LEVEL", "ENCODER_VERSION"]

MISSING_LEVEL = "__missing__"
"""The level a missing value takes in a categorical column."""
OTHER_LEVEL = "__other__"
"""The shared level of the rare levels of a categorical with too many levels."""

_RESERVED_LEVELS = {MISSING_LEVEL: "missing values", OTHER_LEVEL: "the rare levels of a wide column"}
_FORMAT = "lossval.TabularEncoder"
_VERSION = 1
ENCODER_VERSION = _VERSION  # format of a saved encoder; part of the valuation cache key
_TASKS = ("auto", "classification", "regression")
# Share of non-missing values that must parse as numbers for a text column to count as
# a numeric column with bad entries rather than a categorical one.
_NUMERIC_SHARE = 0.9
# Share of number values from which a text column read as categorical is warned about (declare it numeric).
_NUMBER_HINT_SHARE = 0.5
# A number with comma thousands separators: 1,234 or -12,345,678.90. A decimal comma with three
# decimals (3,750) fits too; the caller looks at the column's other values before deciding.
_DECIMAL_COMMA = r"[+-]?\d+,\d+"  # 0,5 / -12,75: a number written with a decimal comma
_THOUSANDS = r"\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*"
_MAX_AUTO_CLASSES = 20
_SHOW = 5  # how many offending values / columns an error message lists
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# lossval's own entry points: a warning raised for them is attributed there, and the CLI prints it as lossval's.
_ENTRY_POINTS = frozenset(_PACKAGE + name for name in ("cli.py", "demo.py"))


def _user_level() -> int:
    """The ``stacklevel`` of the first frame outside the lossval library (its entry points, the CLI and
    the demo, count as outside), for the function that warns.

    Fixed levels point one frame off when the same check is reached by another path
    (``fit_transform`` -> ``fit``; a task -> ``fit``), and then at a line the user did not write, or into
    Prefect, whose file the CLI does not format as lossval's.
    """
    import sys

    frame, level = sys._getframe(1), 1  # level 1: the function that calls warnings.warn
    while frame is not None and (name := os.path.abspath(frame.f_code.co_filename)).startswith(_PACKAGE) \
            and name not in _ENTRY_POINTS:
        frame, level = frame.f_back, level + 1
    return level
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
)


class TabularEncoder:
    """DataFrame -> float32 matrix encoder, fitted on training rows.

    The constructor only stores options; :meth:`fit` learns the columns, levels and
    statistics and sets the trailing-underscore attributes.

    Args:
        target: Name of the target column, or None for a features-only encoder.
        task: ``"classification"``, ``"regression"`` or ``"auto"`` (see the module
            docstring for the rule).
        features: Columns to use as features (in this order). Default: every column
            except the target and ``exclude``.
        exclude: Columns never used as features (ids, timestamps). Wins over
            ``features``.
        categorical: Columns to encode as categorical whatever their dtype.
        numeric: Columns to encode as numbers whatever their share of text: a value that
            does not parse as a number is an error, never a category. Not also in
            ``categorical``.
        max_categories: Most one-hot columns per categorical before the rarest levels
            are folded into ``"__other__"``; at least 1. In such a wide column a level
            seen once never gets a column of its own, so fewer may be kept.
        source: File name (or other origin) prefixed to error messages.

    Attributes:
        feature_columns_: Input columns used, in output order (constant columns
            dropped).
        numeric_columns_: The numeric ones among them.
        categorical_columns_: The categorical ones among them.
        categories_: Column -> its levels, in output order (level text).
        dropped_columns_: Columns dropped at fit: constant ones, and id-like ones (more distinct values
            than ``max_categories``, each once).
        encoded_names_: One name per output column: ``"x"`` for a numeric column,
            ``"colour=red"`` for a level.
        means_: float64 array (n_numeric,), training means of ``numeric_columns_`` (of the
            column clipped to its widened central range; see the module docstring).
        scales_: float64 array (n_numeric,), training standard deviations (ddof=0), likewise.
        task_: ``"classification"``, ``"regression"``, or None without a target.
        classes_: Sorted class labels (classification only, else None).
    """

    def __init__(
        self,
        *,
        target: str | None = None,
        task: str = "auto",
        features: list[str] | None = None,
        exclude: list[str] | None = None,
        categorical: list[str] | None = None,
        numeric: list[str] | None = None,
        max_categories: int = 50,
        source: str | None = None,
    ) -> None:
        self.target = target
        self.task = task
        self.features = features
        self.exclude = exclude
        self.categorical = categorical
        self.numeric = numeric
        self.max_categories = max_categories
        self.source = source

    # ------------------------------------------------------------------ fit

    def fit(self, df: pd.DataFrame) -> TabularEncoder:
        """Learn columns, category levels, scaling statistics and classes.

        Args:
            df: Training rows, (n_rows, n_columns), with the target column if
                ``target`` is set.

        Returns:
            self, fitted.

        Raises:
            InputError: No rows; missing target/feature/categorical/numeric columns;
                NaN/inf in a numeric feature or in the target; text in a numeric
                column (any share of it in a ``numeric`` one); a datetime feature; no
                usable feature left; fewer than 2 classes; a constant regression target.
            ConfigError: Invalid options (unknown task, max_categories < 1, target
                listed as a feature, a column in both ``categorical`` and ``numeric``).
        """
        self._check_options()
        self._check_frame(df, what="training frame", source=self.source)
        if self.target is not None:
            self._require_columns(df, [self.target], what="target column", source=self.source)

        exclude = _names_list(self.exclude)
        missing_excluded = [c for c in exclude if c not in df.columns]
        if missing_excluded and self.features is None:  # a misspelt exclude would silently keep that column
            self._require_columns(df, missing_excluded, what="excluded column", source=self.source)
        declared: dict[Any, str] = {}
        for kind, names in (("categorical", self.categorical), ("numeric", self.numeric)):
            names = _names_list(names)
            missing_declared = [c for c in names if c not in df.columns]
            if missing_declared:  # a misspelt name would leave that column to the automatic rule, silently
                self._require_columns(df, missing_declared, what=f"{kind} column", source=self.source)
            declared.update((c, kind) for c in names)
        if self.features is not None:
            if self.target is not None and self.target in self.features:
                raise ConfigError(
                    f"target column {self.target!r} is also listed in features; "
                    "remove it from features",
                    source=self.source,
                )
            self._require_columns(df, list(self.features), what="feature column", source=self.source)
            candidates = [c for c in self.features if c not in exclude]
        else:
            candidates = [c for c in df.columns if c != self.target and c not in exclude]

        columns: list[dict[str, Any]] = []
        dropped: list[Any] = []
        left_out: list[Any] = []  # id-like columns, warned about where found
        for col in candidates:
            spec = self._fit_column(df[col], col, declared=declared.get(col))
            if spec is _LEFT_OUT:
                left_out.append(col)
            elif spec is None:
                dropped.append(col)
            else:
                columns.append(spec)
        if dropped:
            warnings.warn(
                f"constant or empty column(s) {_show_list(dropped)} (one distinct value, or none, in the "
                "training rows) dropped from the features",
                UserWarning,
                stacklevel=_user_level(),
            )
        if not columns:
            detail = (f"; constant columns dropped: {_show_list(dropped)}" if dropped else "") + (
                f"; id-like columns left out: {_show_list(left_out)}" if left_out else "")
            raise InputError(
                f"no usable feature column left (candidates: {_show_list(candidates)}"
                f"{detail}); add informative feature columns or change features/exclude",
                source=self.source,
            )

        self._set_columns(columns, dropped + left_out)  # both recorded as dropped (the saved format has one list)
        if self.target is not None:
            self._fit_target(df[self.target])
        else:
            self.task_ = None
            self.classes_ = None
        return self

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        """Fit on ``df`` and encode it.

        Args:
            df: Training rows, (n_rows, n_columns).

        Returns:
            float32 array (n_rows, len(encoded_names_)).

        Raises:
            InputError: As :meth:`fit`.
        """
        return self.fit(df).transform(df)

    def _check_options(self) -> None:
        if self.task not in _TASKS:
            raise ConfigError(
                f"task must be one of {', '.join(_TASKS)}, got {self.task!r}",
                source=self.source,
            )
        if (
            isinstance(self.max_categories, bool)
            or not isinstance(self.max_categories, (int, np.integer))
            or self.max_categories < 1
        ):
            raise ConfigError(
                f"max_categories must be an integer >= 1, got {self.max_categories!r}",
                source=self.source,
            )
        for option in ("features", "exclude", "categorical", "numeric"):
            names = getattr(self, option)
            # One name as a string was read letter by letter: exclude="id" left out columns 'i' and 'd', kept 'id'.
            if isinstance(names, (str, bytes)):
                raise ConfigError(
                    f"{option} must be a list of column names, got the string {names!r}: pass [{names!r}]",
                    source=self.source,
                )
        categorical = set(_names_list(self.categorical))
        both = [c for c in _names_list(self.numeric) if c in categorical]
        if both:
            raise ConfigError(
                f"column(s) {_show_list(both)} declared both numeric and categorical; a column is encoded one "
                "way: remove it from one of the two lists",
                source=self.source,
            )

    def _fit_column(self, series: pd.Series, col: Any, *, declared: str | None) -> dict[str, Any] | None:
        """Return the column's encoding spec, None when it is constant (all-missing included), or
        ``_LEFT_OUT`` when it is id-like (too many levels, none twice; warned here).

        ``declared`` is ``"categorical"`` or ``"numeric"`` for a column listed in those options,
        None to infer the kind from the values.
        """
        if series.isna().all():  # no value at all: constant, as an all-empty text column is
            return None
        if declared == "numeric":
            self._refuse_dates_and_complex(series.dtype, col, declared_numeric=True)  # text is checked below
        kind = declared or self._infer_kind(series, col)
        if kind == "numeric":
            values = self._numeric_values(series, col, source=self.source)
            if np.unique(values).size < 2:
                if series.nunique(dropna=True) < 2:
                    return None
                # Distinct integers beyond 2**53 that float64 rounds to one number (hashes, 64-bit ids): not constant,
                # but nothing a model can read either.
                warnings.warn(
                    f"{self.source + ': ' if self.source else ''}numeric column {col!r} has "
                    f"{series.nunique(dropna=True)} distinct values that are one number in float64 (integers near "
                    f"{float(values[0]):.3g}, beyond float64's 2**53 exact integers), like an id or a hash: it is "
                    f"left out of the features (exclude it to say so: {_declare_excluded(col)}; or, if it names the "
                    f"rows, make it the id column: pipeline config id_column: {yaml_name(col)}; `lossval value`: --id-column {shell_name(col)})",
                    UserWarning,
                    stacklevel=_user_level(),
                )
                return _LEFT_OUT
            # Statistics of the values clipped to their widened central range: one typo (a 1000
            # among values near 1) would otherwise set the scale and squeeze every other row.
            low, high = central_range_bounds(values[:, None])[:, 0]
            clipped = np.clip(values, low, high)
            mean, scale = (float(v) for v in mean_and_std(clipped))  # a column of magnitude 1e-160 is not constant
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                farthest = float(np.max(np.abs(values - mean)) / scale) if scale > 0 else 0.0
            if not farthest < 1e30:  # beyond float32 once encoded: the plain statistics, and a warning
                first = int(np.argmax(np.abs(values - mean)))
                warnings.warn(
                    f"{self.source + ': ' if self.source else ''}numeric column {col!r} has a value "
                    f"{float(values[first])!r} at row {_row(series.index[first])}, more than 1e30 standard deviations "
                    "from the rest: the column is scaled by its plain mean and standard deviation, which squeezes "
                    "its other values; check that value for a typo", UserWarning, stacklevel=_user_level())
                with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
                    mean, scale = float(np.mean(values)), float(np.std(values))
            if not (math.isfinite(mean) and math.isfinite(scale)):
                # The largest value is the one to look at (the warning above, which names it, is not always shown).
                largest = int(np.argmax(np.abs(values)))
                raise InputError(
                    f"numeric column {col!r} overflows float64 when standardised: its largest value by size is "
                    f"{float(values[largest])!r} at row {_row(series.index[largest])}; fix it if it is a typo, or "
                    "rescale the column (other units, or a log scale) before valuation",
                    source=self.source,
                )
            if scale == 0.0:
                return None
            if declared is None and _looks_like_row_number(values, col):
                warnings.warn(
                    f"{self.source + ': ' if self.source else ''}numeric column {col!r} holds {values.size} distinct "
                    "integers, one per row, like a row id or a saved index: it is used as a feature, so the network "
                    f"can tell rows apart by it. If it names the rows, make it the id column (pipeline config "
                    f"id_column: {yaml_name(col)}; `lossval value`: --id-column {shell_name(col)}); else exclude it "
                    f"({_declare_excluded(col)}); if it is a real measurement, declare it numeric to say so ({_declare_numeric(col)})",
                    UserWarning, stacklevel=_user_level())
            return {"name": col, "kind": "numeric", "mean": mean, "scale": scale}

        keys = _level_keys(series)
        self._refuse_reserved(keys, series, col, source=self.source)
        counts = pd.Series(keys).value_counts(sort=False)
        if len(counts) < 2:
            return None
        where = f"{self.source + ': ' if self.source else ''}categorical column {col!r} has {len(counts)} distinct values"
        if len(counts) > self.max_categories and int(counts.max()) == 1:
            # More levels than get columns and none seen twice: no level gets a column (below), so none is used.
            warnings.warn(
                f"{where} in {len(series)} rows, each once, like an id: it is left out of the features (exclude it "
                f"to say so: {_declare_excluded(col)}; or, if it names the rows, make it the id column: pipeline "
                f"config id_column: {yaml_name(col)}; `lossval value`: --id-column {shell_name(col)})",
                UserWarning,
                stacklevel=_user_level(),
            )
            return _LEFT_OUT
        if len(counts) >= max(20, 0.5 * int(series.notna().sum())):
            warnings.warn(
                f"{where} in {len(series)} rows, like an id or free text: exclude it ({_declare_excluded(col)}) if it "
                "identifies rows rather than describing them",
                UserWarning,
                stacklevel=_user_level(),
            )
        levels = sorted(counts.index, key=_level_sort_key)
        other = len(levels) > self.max_categories
        if other:
            # Most frequent first; ties by level sort order, so the choice is deterministic. A level seen once
            # never gets a column of its own: that column would single out one row (an id-like column's first
            # max_categories ids in sort order), which valuation and the model then read as a feature.
            by_freq = sorted(levels, key=lambda k: (-int(counts[k]), _level_sort_key(k)))
            levels = sorted([k for k in by_freq[: self.max_categories] if counts[k] > 1], key=_level_sort_key)
        return {"name": col, "kind": "categorical", "levels": levels, "other": other}

    @staticmethod
    def _refuse_reserved(keys: np.ndarray, series: pd.Series, col: Any, *, source: str | None) -> None:
        """A real value spelled like one of lossval's own level names would be merged into that level."""
        reserved = np.isin(keys, list(_RESERVED_LEVELS)) & ~missing_or_blank(series)
        if reserved.any():
            first = int(np.flatnonzero(reserved)[0])
            raise InputError(
                f"categorical column {col!r} holds the value {keys[first]!r} (first at row "
                f"{_row(series.index[first])}), a name lossval keeps for {_RESERVED_LEVELS[keys[first]]}; "
                "rename that value",
                source=source,
            )

    def _refuse_dates_and_complex(self, dtype: Any, col: Any, *, declared_numeric: bool = False) -> None:
        """Refuse the dtypes lossval cannot encode at all: dates and times, complex numbers.

        ``declared_numeric``: the column is in ``numeric=`` (said so in the message).
        """
        how = "is declared numeric but " if declared_numeric else ""
        if _is_datetime_like(dtype):
            raise InputError(
                f"column {col!r} {how}is a datetime/timedelta column ({dtype}); lossval does "
                f"not encode dates: exclude it ({_declare_excluded(col)}) or derive numeric features from it",
                source=self.source,
            )
        if pd.api.types.is_complex_dtype(dtype):
            raise InputError(
                f"column {col!r} {how}holds complex numbers; lossval cannot encode them: "
                f"exclude it ({_declare_excluded(col)}) or split it into real columns",
                source=self.source,
            )

    def _infer_kind(self, series: pd.Series, col: Any) -> str:
        dtype = series.dtype
        self._refuse_dates_and_complex(dtype, col)
        if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            return "categorical"
        if pd.api.types.is_numeric_dtype(dtype):
            return "numeric"
        if not _is_text_dtype(dtype):
            raise InputError(
                f"column {col!r} has unsupported dtype {dtype}; exclude it ({_declare_excluded(col)}) "
                "or convert it to numbers or strings",
                source=self.source,
            )
        found = nested_column(series.to_frame())
        if found is not None:
            raise InputError(
                f"column {col!r} holds nested values (lists, arrays or structs), first at row "
                f"{_row(series.index[found[1]])}; flatten it into columns or exclude it ({_declare_excluded(col)})",
                source=self.source,
            )

        present = series[series.notna()]
        if len(present) == 0:
            return "categorical"
        inferred = pd.api.types.infer_dtype(present, skipna=True)
        if inferred in ("datetime", "datetime64", "date", "time", "timedelta", "timedelta64") or (
            inferred == "string" and present.astype(str).str.fullmatch(_ISO_DATE).all()
        ):
            raise InputError(
                f"column {col!r} holds dates/times; lossval does not encode dates: exclude it "
                f"({_declare_excluded(col)}) or derive numeric features from it",
                source=self.source,
            )
        if inferred == "boolean":
            return "categorical"
        parsed = _to_numeric(present)
        if parsed is None:
            return "categorical"
        share = float(parsed.notna().mean())
        if share == 1.0:
            return "numeric"
        if share >= _NUMERIC_SHARE:
            blank = missing_or_blank(present)  # "" from a parquet file: a missing number, not text that does not parse
            if blank.any() and not (parsed.isna().to_numpy() & ~blank).any():
                infinite = np.isinf(parsed.to_numpy())  # "inf" parses: said beside the blanks, as in any numeric column
                unusable = missing_or_blank(series) | series.index.isin(present.index[infinite])
                raise InputError(_missing_numbers_message(col, series.index[np.flatnonzero(unusable)[0]],
                                                          n_nan=int(series.isna().sum()), n_blank=int(blank.sum()),
                                                          n_inf=int(infinite.sum())),
                                 source=self.source)
            bad = present[parsed.isna().to_numpy() & ~blank]
            raise InputError(
                _non_numeric_message(bad, col, len(present) - int(blank.sum()))
                + f"; fix or drop these rows, or, if {col!r} is really categorical, declare it so "
                f"({_declare_categorical(col)})",
                source=self.source,
            )
        text = present.astype(str)
        grouped = text.str.fullmatch(_THOUSANDS)
        # Refused only when every value with a comma is a grouped number: one like 0,5 means
        # decimal commas (or lists), whose reading we cannot guess.
        if grouped.any() and not (text.str.contains(",", regex=False) & ~grouped).any():
            plain = _to_numeric(text.str.replace(",", "", regex=False))
            if plain is not None and float(plain.notna().mean()) >= _NUMERIC_SHARE:
                first = int(np.flatnonzero(grouped.to_numpy())[0])
                raise InputError(
                    f"column {col!r} holds numbers written with thousands separators ({int(grouped.sum())} of "
                    f"{len(present)} values, e.g. {present.iloc[first]!r} at row {_row(present.index[first])}), "
                    "which would be read as text and encoded as categories; write the numbers without "
                    f"separators (e.g. export the file without number formatting), or, if {col!r} is really "
                    f"categorical (codes separated by commas; or decimal commas, which lossval does not read as "
                    f"numbers), declare it so ({_declare_categorical(col)})",
                    source=self.source,
                )
        decimal = text.str.fullmatch(_DECIMAL_COMMA)
        if float(decimal.mean()) >= _NUMERIC_SHARE:  # "0,5", "1,25": a European export's numbers, one level each
            first = int(np.flatnonzero(decimal.to_numpy())[0])
            warnings.warn(
                f"{self.source + ': ' if self.source else ''}column {col!r} was read as categorical: "
                f"{int(decimal.sum())} of {len(present)} values look like numbers with a decimal comma (e.g. "
                f"{present.iloc[first]!r} at row {_row(present.index[first])}), which lossval does not read as "
                "numbers. If they are numbers, write them with decimal points (e.g. export the file with '.' as the "
                f"decimal mark); if {col!r} is really categorical, declare it so ({_declare_categorical(col)}) to "
                "silence this warning",
                UserWarning,
                stacklevel=_user_level(),
            )
        elif share >= _NUMBER_HINT_SHARE:
            # Below _NUMERIC_SHARE a column of numbers with much junk text becomes categories without an
            # error: say so, once, so that a numeric column is not one-hot encoded unnoticed.
            bad = present[parsed.isna()]
            warnings.warn(
                f"{self.source + ': ' if self.source else ''}column {col!r} was read as categorical: "
                f"{len(present) - len(bad)} of {len(present)} non-missing values are numbers, the others are not "
                f"({_show_values(bad, limit=3)}). If it is numeric, declare it so ({_declare_numeric(col)}) and fix "
                "or drop those rows; if it is categorical, declare that instead (features.categorical, "
                "--categorical, categorical=[...]) to silence this warning",
                UserWarning,
                stacklevel=_user_level(),
            )
        return "categorical"

    def _fit_target(self, y: pd.Series) -> None:
        col = self.target
        missing = missing_or_blank(y)
        if missing.any():
            raise InputError(
                f"target column {col!r} has {int(missing.sum())} missing (NaN/None) or blank value(s), "
                f"first at row {_row(y.index[np.flatnonzero(missing)[0]])}; "
                "drop these rows before valuation",
                source=self.source,
            )
        task = self.task
        if task == "auto":
            task = _auto_task(y, col=col, source=self.source)
        if task == "classification":
            classes = [_py_scalar(v) for v in pd.unique(y.to_numpy(dtype=object))]
            try:
                classes = sorted(classes)
            except TypeError:
                types = sorted({type(v).__name__ for v in classes})
                raise InputError(
                    f"target column {col!r} mixes label types ({', '.join(types)}); "
                    "convert the labels to one type",
                    source=self.source,
                ) from None
            if len(classes) < 2:
                raise InputError(
                    f"target column {col!r} has {len(classes)} class(es) "
                    f"({_show_list(classes)}) in the training rows; classification "
                    "needs at least 2: check that the target is the right column and that the export holds "
                    "every class (a filter upstream?)",
                    source=self.source,
                )
            self.classes_ = classes
        else:
            values = self._target_floats(y, source=self.source)
            if np.unique(values).size < 2:
                raise InputError(
                    f"regression target column {col!r} is constant ({float(values[0])!r}) in "
                    "the training rows; there is nothing to learn",
                    source=self.source,
                )
            # LossVal standardises the target clipped to its widened central range, as features are: refused
            # here, where the file and the column are known, what would overflow there.
            low, high = central_range_bounds(values[:, None])[:, 0]
            with np.errstate(over="ignore", invalid="ignore"):
                clipped = np.clip(values, low, high)
                finite = math.isfinite(float(np.mean(clipped))) and math.isfinite(float(np.std(clipped)))
            if not finite:
                raise InputError(
                    f"regression target column {col!r} overflows float64 when standardised (largest |value| "
                    f"{float(np.max(np.abs(values))):.3g}); rescale it (other units, or a log scale) before valuation",
                    source=self.source,
                )
            self.classes_ = None
        self.task_ = task

    def _set_columns(self, columns: list[dict[str, Any]], dropped: list[Any]) -> None:
        self._columns = columns
        self.dropped_columns_ = list(dropped)
        self.feature_columns_ = [c["name"] for c in columns]
        numeric = [c for c in columns if c["kind"] == "numeric"]
        self.numeric_columns_ = [c["name"] for c in numeric]
        self.categorical_columns_ = [c["name"] for c in columns if c["kind"] == "categorical"]
        self.means_ = np.array([c["mean"] for c in numeric], dtype=np.float64)
        self.scales_ = np.array([c["scale"] for c in numeric], dtype=np.float64)
        self.categories_ = {}
        names: list[str] = []
        for c in columns:
            if c["kind"] == "numeric":
                names.append(str(c["name"]))
            else:
                levels = list(c["levels"]) + ([OTHER_LEVEL] if c["other"] else [])
                self.categories_[c["name"]] = levels
                names.extend(f"{c['name']}={level}" for level in levels)
        self.encoded_names_ = names

    def one_hot_positions(self) -> list[int]:
        """Positions, in :meth:`transform`'s output, of the one-hot (0/1) columns of categorical levels."""
        self._check_fitted()
        out: list[int] = []
        pos = 0
        for c in self._columns:
            width = 1 if c["kind"] == "numeric" else len(c["levels"]) + (1 if c["other"] else 0)
            if c["kind"] != "numeric":
                out.extend(range(pos, pos + width))
            pos += width
        return out

    # ------------------------------------------------------------ transform

    def transform(self, df: pd.DataFrame, *, source: str | None = None, serving: bool = False) -> np.ndarray:
        """Encode rows with the fitted columns and statistics.

        The target column, if present, is ignored; extra columns are ignored.

        Args:
            df: Rows to encode, (n_rows, n_columns), holding every column of
                ``feature_columns_``.
            source: File name for error messages (default: the encoder's ``source``).
            serving: Rows sent to a served model, a few at a time: no rows encode as an
                empty array (batch scoring sends empty partitions), and any unseen level of a
                column without ``"__other__"`` is warned about, not only most values unseen.

        Returns:
            float32 C-contiguous array (n_rows, len(encoded_names_)).

        Raises:
            InputError: No rows (unless ``serving``); missing feature columns; NaN/inf or
                text in a numeric column.
        """
        self._check_fitted()
        source = source if source is not None else self.source
        self._check_frame(df, what="frame to transform", source=source, empty_ok=serving)
        self._require_columns(df, self.feature_columns_, what="feature column", source=source)

        out = np.zeros((len(df), len(self.encoded_names_)), dtype=np.float32)
        if len(df) == 0:
            return out
        pos = 0
        for c in self._columns:
            series = df[c["name"]]
            if c["kind"] == "numeric":
                values = self._numeric_values(series, c["name"], source=source)
                with np.errstate(over="ignore"):
                    out[:, pos] = ((values - c["mean"]) / c["scale"]).astype(np.float32)
                huge = ~np.isfinite(out[:, pos])
                if huge.any():
                    first = int(np.flatnonzero(huge)[0])
                    raise InputError(
                        f"numeric column {c['name']!r} has {int(huge.sum())} value(s) too far outside its training "
                        f"range to encode (e.g. {float(values[first])!r} at row {_row(series.index[first])}, training mean "
                        f"{c['mean']:.4g}, std {c['scale']:.4g}, both taken on its central range); fix or drop these rows",
                        source=source,
                    )
                pos += 1
            else:
                levels = list(c["levels"]) + ([OTHER_LEVEL] if c["other"] else [])
                keys = _level_keys(series, c["levels"])
                self._refuse_reserved(keys, series, c["name"], source=source)
                index = pd.Index(levels, dtype=object).get_indexer(pd.Index(keys, dtype=object))
                _warn_on_unseen_levels(keys, index, c, source=source, any_unseen=serving)
                if c["other"]:
                    index[index < 0] = len(levels) - 1
                rows = np.flatnonzero(index >= 0)  # unseen levels stay all-zero
                out[rows, pos + index[rows]] = 1.0
                pos += len(levels)
        return out

    def _numeric_values(self, series: pd.Series, col: Any, *, source: str | None) -> np.ndarray:
        """float64 values of a numeric column; rejects text, NaN and inf.

        A numeric column may arrive as text (one bad CSV cell turns a column into
        strings): every value that does not parse is then reported, whatever its share.
        """
        dtype = series.dtype
        if _is_datetime_like(dtype):
            raise InputError(
                f"numeric column {col!r} arrived as {dtype}; it was numeric in the "
                "training rows",
                source=source,
            )
        n_blank = 0
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            objects = series.astype(object)
            parsed = _to_numeric(objects)
            if parsed is None:
                raise InputError(
                    f"numeric column {col!r} holds values that are not numbers; fix "
                    "or drop these rows",
                    source=source,
                )
            blank = missing_or_blank(objects) & objects.notna().to_numpy()  # "": missing, reported as such below
            bad = objects.notna() & parsed.isna() & ~blank
            if bad.any():
                raise InputError(
                    _non_numeric_message(objects[bad], col, int(objects.notna().sum()) - int(blank.sum()))
                    + "; fix or drop these rows",
                    source=source,
                )
            values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
            n_blank = int(blank.sum())
        finite = np.isfinite(values)
        if not finite.all():
            n_nan = int(np.isnan(values).sum()) - n_blank
            n_inf = int((~finite).sum()) - n_nan - n_blank
            first = series.index[np.flatnonzero(~finite)[0]]
            raise InputError(_missing_numbers_message(col, first, n_nan=n_nan, n_blank=n_blank, n_inf=n_inf),
                             source=source)
        return values

    # --------------------------------------------------------------- target

    def encode_target(self, y: Any, *, source: str | None = None) -> np.ndarray:
        """Encode target values.

        Args:
            y: 1-D labels (Series, array or list), n_rows long.
            source: File name for error messages (default: the encoder's ``source``).

        Returns:
            Classification: int64 array (n_rows,) of class indices into ``classes_``.
            Regression: float32 array (n_rows,).

        Raises:
            InputError: No target was fitted; missing values; a label not among
                ``classes_``; non-numeric or infinite regression values.
        """
        series, source = self._target_series(y, source=source)
        if self.task_ == "regression":
            return self._target_floats(series, source=source).astype(np.float32)
        return self._class_index(series, source=source)

    def valuation_target(self, y: Any, *, source: str | None = None) -> np.ndarray:
        """The target as :meth:`lossval.LossVal.fit` takes it, checked as :meth:`encode_target` checks it.

        Numbers stored as text are numbers to the encoder, in the target as in feature columns, but
        ``LossVal.fit`` refuses text: for regression they are converted here.

        Args:
            y: 1-D target values (Series, array or list), n_rows long.
            source: File name for error messages (default: the encoder's ``source``).

        Returns:
            Regression: float64 array (n_rows,). Classification: the labels as given, (n_rows,).

        Raises:
            InputError: As :meth:`encode_target`.
        """
        series, source = self._target_series(y, source=source)
        if self.task_ == "regression":  # float64: the numbers as read (encode_target's are float32)
            return self._target_floats(series, source=source)
        self._class_index(series, source=source)  # labels it knows
        return series.to_numpy()

    def _class_index(self, series: pd.Series, *, source: str | None) -> np.ndarray:
        """Each label's index into ``classes_``; a label training did not see is an InputError naming it."""
        values = series.to_numpy(dtype=object)
        index = pd.Index(self.classes_, dtype=object).get_indexer(pd.Index(values, dtype=object))
        unknown = index < 0
        if unknown.any():
            labels = [_py_scalar(v) for v in pd.unique(values[unknown])]
            spelled = {str(c): c for c in self.classes_}
            if all(str(v) in spelled for v in labels):  # 1 here, "1" in training (a CSV next to a parquet file)
                here = sorted({type(v).__name__ for v in labels})
                there = sorted({type(spelled[str(v)]).__name__ for v in labels})
                raise InputError(
                    f"target {self.target!r} holds the labels {_show_list(labels)} as {'/'.join(here)}, but the "
                    f"training rows hold them as {'/'.join(there)} ({_show_list([spelled[str(v)] for v in labels])}), "
                    f"first at row {_row(series.index[np.flatnonzero(unknown)[0]])}; give the target column one "
                    "type in both files (convert it in one of them)",
                    source=source,
                )
            # Labels that are classes written as text ("1" for 1: the whole column became text because of one odd
            # value) are not the problem: name only the others, and where the first of them is.
            odd = np.array([str(_py_scalar(v)) not in spelled for v in values]) & unknown
            if not odd.any():
                odd = unknown
            named = [_py_scalar(v) for v in pd.unique(values[odd])]
            raise InputError(
                f"target {self.target!r} has {int(odd.sum())} value(s) with label(s) "
                f"{_show_list(named)} not among the classes seen in training "
                f"({_show_list(self.classes_)}), first at row {_row(series.index[np.flatnonzero(odd)[0]])}; drop "
                "these rows, or give the training data rows of those labels",
                source=source,
            )
        return index.astype(np.int64)

    def _target_series(self, y: Any, *, source: str | None) -> tuple[pd.Series, str | None]:
        """``y`` as a Series with no missing or blank value, and the file name for messages; the checks both
        :meth:`encode_target` and :meth:`valuation_target` make first."""
        self._check_fitted()
        source = source if source is not None else self.source
        if self.task_ is None:
            raise InputError(
                "this encoder was fitted without a target; pass target=... to fit",
                source=source,
            )
        series = _as_series(y, name=self.target)
        missing = missing_or_blank(series)
        if missing.any():
            raise InputError(
                f"target {self.target!r} has {int(missing.sum())} missing (NaN/None) or blank "
                f"value(s), first at row {_row(series.index[np.flatnonzero(missing)[0]])}; "
                "drop these rows before valuation",
                source=source,
            )
        return series, source

    def decode_target(self, idx: Any) -> np.ndarray:
        """Map class indices back to the original labels.

        Args:
            idx: Integer class indices, any shape. (Regression: values, returned as
                float64.)

        Returns:
            Array of ``idx``'s shape: the labels (int64 for int labels, bool for bool
            labels, float64 for float labels, object for strings and the rest).

        Raises:
            InputError: Indices that are not integers or are out of range.
        """
        self._check_fitted()
        if self.task_ is None:
            raise InputError("this encoder was fitted without a target; nothing to decode")
        arr = np.asarray(idx)
        if self.task_ == "regression":
            return arr.astype(np.float64)
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise InputError(f"class indices must be integers, got dtype {arr.dtype}")
        n = len(self.classes_)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise InputError(f"class indices must be in 0..{n - 1}, got {arr.min()}..{arr.max()}")
        return _label_array(self.classes_)[arr]

    def _target_floats(self, y: pd.Series, *, source: str | None) -> np.ndarray:
        if pd.api.types.is_bool_dtype(y.dtype) or pd.api.types.is_numeric_dtype(y.dtype):
            values = y.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            parsed = _to_numeric(y.astype(object))
            if parsed is None or parsed.isna().any():
                bad = y if parsed is None else y[parsed.isna()]
                raise InputError(
                    f"regression target {self.target!r} has non-numeric value(s) "
                    f"{_show_values(bad)}; fix them or use task='classification'",
                    source=source,
                )
            values = parsed.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values))
            raise InputError(
                f"target {self.target!r} has {bad.size} infinite value(s), first at row "
                f"{_row(y.index[bad[0]])}; drop these rows before valuation",
                source=source,
            )
        return values

    # ----------------------------------------------------------- save/load

    def to_dict(self) -> dict[str, Any]:
        """The fitted encoder as a JSON-ready dict (see :meth:`from_dict`).

        Raises:
            InputError: Column names or labels JSON cannot hold unchanged (names must
                be str or int).
        """
        self._check_fitted()
        for name in [self.target, *self.feature_columns_]:
            if name is not None and (isinstance(name, bool) or not isinstance(name, (str, int))):
                raise InputError(
                    f"column name {name!r} cannot be saved as JSON; use str column names",
                    source=self.source,
                )
        odd = [c for c in (self.classes_ or []) if not isinstance(c, (str, int, float, bool))]
        if odd:
            raise InputError(
                f"target column {self.target!r} has labels of type {type(odd[0]).__name__} (e.g. {odd[0]!r}) "
                "that cannot be saved as JSON; convert the labels to text or integers",
                source=self.source,
            )
        columns = []
        for c in self._columns:
            if c["kind"] == "numeric":
                columns.append({"name": c["name"], "kind": "numeric", "mean": c["mean"], "scale": c["scale"]})
            else:
                columns.append(
                    {"name": c["name"], "kind": "categorical", "levels": list(c["levels"]), "other": c["other"]}
                )
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": {
                "target": self.target,
                "task": self.task,
                "features": _json_list(self.features),
                "exclude": _json_list(self.exclude),
                "categorical": _json_list(self.categorical),
                "max_categories": int(self.max_categories),
                "source": self.source,
                # Only when set: an encoder that does not use it saves as before this option existed,
                # so a lossval of that time still reads it (its constructor has no ``numeric``).
                **({"numeric": _json_list(self.numeric)} if self.numeric is not None else {}),
            },
            "fitted": {
                "columns": columns,
                "dropped_columns": list(self.dropped_columns_),
                "task": self.task_,
                "classes": None if self.classes_ is None else list(self.classes_),
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> TabularEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict` output.

        Args:
            d: The dict.
            source: Where it came from, for error messages.

        Returns:
            A fitted TabularEncoder that transforms exactly as the saved one.

        Raises:
            InputError: ``d`` is not a saved TabularEncoder of a known version.
        """
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise InputError("not a saved lossval TabularEncoder (format field missing)", source=source)
        if d.get("version") != _VERSION:
            raise InputError(
                f"saved TabularEncoder has version {d.get('version')!r}; this lossval reads "
                f"version {_VERSION}: refit the encoder",
                source=source,
            )
        try:
            params, fitted = d["params"], d["fitted"]
            enc = cls(**params)
            columns = []
            for c in fitted["columns"]:
                if c["kind"] == "numeric":
                    columns.append(
                        {"name": c["name"], "kind": "numeric", "mean": float(c["mean"]), "scale": float(c["scale"])}
                    )
                elif c["kind"] == "categorical":
                    columns.append(
                        {
                            "name": c["name"],
                            "kind": "categorical",
                            "levels": [str(v) for v in c["levels"]],
                            "other": bool(c["other"]),
                        }
                    )
                else:
                    raise ValueError(f"unknown column kind {c['kind']!r}")
            enc._set_columns(columns, fitted["dropped_columns"])
            enc.task_ = fitted["task"]
            enc.classes_ = None if fitted["classes"] is None else list(fitted["classes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"saved TabularEncoder is malformed ({exc!r}); refit the encoder", source=source) from None
        return enc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted encoder as JSON, atomically.

        The JSON goes to a temporary file in the same directory, which then replaces
        ``path``: a reader never sees a half-written file.

        Args:
            path: Destination file; its directory is created if needed.
        """
        from lossval.io import atomic_write

        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TabularEncoder:
        """Read an encoder written by :meth:`save`.

        Args:
            path: The JSON file.

        Returns:
            The fitted TabularEncoder.

        Raises:
            InputError: The file is missing, not JSON, or not a saved encoder.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError("encoder file not found", source=str(path)) from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"encoder file is not valid JSON ({exc}); refit the encoder", source=str(path)) from None
        return cls.from_dict(d, source=str(path))

    # -------------------------------------------------------------- helpers

    def _check_fitted(self) -> None:
        if not hasattr(self, "_columns"):
            raise RuntimeError("TabularEncoder is not fitted; call fit() or load() first")

    @staticmethod
    def _check_frame(df: Any, *, what: str, source: str | None, empty_ok: bool = False) -> None:
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}", source=source)
        if len(df) == 0 and not empty_ok:
            raise InputError(f"{what} has no rows", source=source)
        if df.columns.has_duplicates:
            dups = list(dict.fromkeys(df.columns[df.columns.duplicated()]))
            raise InputError(f"{what} has duplicated column name(s) {_show_list(dups)}; rename them", source=source)

    @staticmethod
    def _require_columns(df: pd.DataFrame, names: Sequence[Any], *, what: str, source: str | None) -> None:
        missing = [n for n in names if n not in df.columns]
        if missing:
            available = list(df.columns[:10])
            more = f" and {len(df.columns) - 10} more" if len(df.columns) > 10 else ""
            wanted = set(map(str, names))  # a column asked for under its own name is no other's misspelling
            others = [str(c) for c in df.columns if str(c) not in wanted]
            near = {str(m): closest_name(str(m), others) for m in missing}
            hint = "; ".join(f"did you mean {close!r} for {m!r}?" for m, close in near.items() if close)
            raise InputError(
                f"missing {what}(s) {_show_list(missing)}" + (f" ({hint})" if hint else "") + "; available columns: "
                f"{_show_list(available, limit=10)}{more}",
                source=source,
            )

    def __repr__(self) -> str:
        fitted = f", fitted: {len(self.encoded_names_)} outputs" if hasattr(self, "_columns") else ""
        return f"TabularEncoder(target={self.target!r}, task={self.task!r}{fitted})"


# ---------------------------------------------------------------------- module helpers


def _is_datetime_like(dtype: Any) -> bool:
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def _all_decimal_or_real(y: pd.Series) -> bool:
    """Decimals, alone or mixed with ints and floats (a decimal parquet file read with a CSV)."""
    kind = pd.api.types.infer_dtype(y, skipna=True)
    if kind == "decimal":
        return True
    if kind not in ("mixed", "mixed-integer", "mixed-integer-float"):
        return False
    values = y[y.notna()].to_numpy(dtype=object)
    return any(isinstance(v, Decimal) for v in values) and all(
        isinstance(v, (Decimal, int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in values)


def _auto_task(y: pd.Series, *, col: Any = "target", source: str | None = None) -> str:
    """The task ``task: auto`` means for target ``y`` (one rule for the encoder and :func:`lossval.valuation.infer_task`).

    Raises:
        InputError: a text target of many distinct values that is at least 90% numbers: a
            numeric target with typos, which would otherwise become hundreds of classes.
    """
    dtype = y.dtype
    if dtype == object and _all_decimal_or_real(y):
        return "regression"  # a parquet decimal column (database exports) holds numbers
    present = y.dropna()
    if _is_text_dtype(dtype) and present.nunique() > _MAX_AUTO_CLASSES:
        parsed = _to_numeric(present)
        share = 0.0 if parsed is None else float(parsed.notna().mean())
        if share == 1.0:
            return "regression"  # numbers stored as text, too many distinct values to be labels
        if share >= _NUMERIC_SHARE:
            raise InputError(
                _non_numeric_message(present[parsed.isna()], col, len(present)).replace(
                    "numeric column", "target column", 1)
                + f"; it has {present.nunique()} distinct values, so with 'task: auto' it reads as a numeric "
                "target with typos: fix or drop these rows, or set task: classification if they are labels",
                source=source,
            )
    if (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or _is_text_dtype(dtype)
    ):
        return "classification"
    if pd.api.types.is_integer_dtype(dtype) and y.nunique() <= _MAX_AUTO_CLASSES:
        return "classification"
    if pd.api.types.is_integer_dtype(dtype) and len(present) and present.value_counts().min() >= 5:
        # Every value repeated: as likely class codes as counts. Said, since the two read very differently.
        warnings.warn(
            f"{source + ': ' if source else ''}target {col!r} holds {present.nunique()} distinct integers, each at "
            "least 5 times: with task auto it is read as a number (regression). If they are class codes, set "
            "task: classification (`lossval value`: --task classification; in Python: task='classification')",
            UserWarning,
            stacklevel=_user_level(),
        )
    if (pd.api.types.is_float_dtype(dtype) and len(present) and present.nunique() <= _MAX_AUTO_CLASSES
            and bool((present == np.round(present)).all()) and present.value_counts().min() >= 5):
        # Labels saved as floats (a 0/1 column through a NaN-holding step, or parquet from float arrays).
        shown = ", ".join(f"{v:g}" for v in sorted(present.unique())[:5])
        warnings.warn(
            f"{source + ': ' if source else ''}target {col!r} holds {present.nunique()} distinct whole numbers stored "
            f"as floats ({shown}{', ...' if present.nunique() > 5 else ''}), each at least 5 times: with task auto it is "
            "read as a number (regression). If they are class labels, set task: classification (`lossval value`: "
            "--task classification; in Python: task='classification')",
            UserWarning,
            stacklevel=_user_level(),
        )
    return "regression"


def _warn_on_unseen_levels(keys: np.ndarray, index: np.ndarray, column: dict[str, Any], *,
                           source: str | None, any_unseen: bool = False) -> None:
    """Warn when most values of a categorical column are levels the training rows did not have.

    A few new levels are normal. Most of them new usually means the column is stored
    differently in this file (codes as numbers here, as names in the training file), and then
    every one of those values encodes as "no level": the rows lose that feature silently.
    Columns with an ``"__other__"`` level are left alone: they have more levels than
    ``max_categories`` (names, free text), so new ones are expected and share ``"__other__"``.

    ``any_unseen`` (a served model's batch, often one row): warn about any unseen value, since
    a batch of a few rows never reaches "most of five", and a caller who sends ``"NORTH"`` for
    ``"north"`` is then scored without the column, silently.
    """
    if column["other"]:
        return
    unseen = index < 0
    n_unseen, n = int(unseen.sum()), len(keys)
    known = list(column["levels"])[:3]
    if any_unseen:
        # A missing value the training rows never had is its own case: lossval's internal level name means nothing to
        # a caller, and "send the level as written" is the wrong advice for it.
        missing = unseen & (keys == MISSING_LEVEL)
        n_missing, n_new = int(missing.sum()), int((unseen & ~missing).sum())
        examples = list(dict.fromkeys(keys[unseen & ~missing].tolist()))[:3]
        said = []
        if n_new:
            near = closest_name(examples[0], list(column["levels"]))
            hint = f"; did you mean {near!r} for {examples[0]!r}?" if near else ""
            said.append(f"{n_new} of {n} values are levels the model was not trained on (e.g. {examples}; its levels "
                        f"include {known}{hint})")
        if n_missing:
            said.append(f"{n_missing} of {n} values are missing, which the training rows never were")
        if said:
            warnings.warn(
                f"{source + ': ' if source else ''}categorical column {column['name']!r}: {'; '.join(said)}, so those "
                "rows are scored as if the column had no value; send a level as the training data wrote it (same "
                "case, names rather than codes)",
                UnseenLevelsWarning, stacklevel=_user_level())
        return
    if n < 5 or n_unseen < 0.5 * n:
        return
    examples = list(dict.fromkeys(keys[unseen].tolist()))[:3]
    warnings.warn(
        f"{source + ': ' if source else ''}categorical column {column['name']!r}: {n_unseen} of {n} values are "
        f"levels the training rows do not have (e.g. {examples}; training levels include {known}), so they "
        "encode as no level at all. If this file stores the column differently (numbers instead of names), "
        "convert it to match",
        UnseenLevelsWarning, stacklevel=_user_level())


def _declare_categorical(col: Any) -> str:
    """How to keep ``col`` categorical, in each of lossval's front ends."""
    return (f"pipeline config: features.categorical: [{yaml_name(col)}]; `lossval value`: --categorical {shell_name(col)}; "
            f"TabularEncoder: categorical=[{col!r}]")


def _declare_numeric(col: Any) -> str:
    """How to make ``col`` numeric, in each of lossval's front ends."""
    return (f"pipeline config: features.numeric: [{yaml_name(col)}]; `lossval value`: --numeric {shell_name(col)}; "
            f"TabularEncoder: numeric=[{col!r}]")


# _fit_column's answer for a column left out of the features as id-like (it warned already).
_LEFT_OUT: Any = object()


_ID_NAMES = {"id", "ids", "idx", "index", "key", "uuid", "row", "rowid", "row_id", "rownum", "row_number", "level_0"}


def _looks_like_row_number(values: np.ndarray, col: Any) -> bool:
    """A numeric column of distinct integers, one per row (20 rows or more), named like an id (``id``,
    ``customer_id``, ``customerId``, pandas' ``Unnamed: 0`` of a saved index). Not by its values alone:
    a time step or a counter 0..n-1 is a fair feature."""
    if values.size < 20 or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return False
    if np.unique(values).size < values.size:
        return False
    name = str(col)
    low = name.lower()
    return (low in _ID_NAMES or low.endswith(("_id", " id", "-id", ".id")) or low.startswith("unnamed:")
            or re.fullmatch(r".*[a-z0-9](Id|ID)", name) is not None)


def _declare_excluded(col: Any) -> str:
    """How to leave ``col`` out of the features, in each of lossval's front ends."""
    return (f"pipeline config: features.exclude: [{yaml_name(col)}]; `lossval value`: --exclude {shell_name(col)}; "
            f"TabularEncoder: exclude=[{col!r}]")


def _to_numeric(series: pd.Series) -> pd.Series | None:
    """float64 Series with NaN where a value does not parse; None if it cannot try."""
    try:
        parsed = pd.to_numeric(series.astype(object), errors="coerce")
    except (TypeError, ValueError):
        return None
    if pd.api.types.is_bool_dtype(parsed.dtype) or not pd.api.types.is_numeric_dtype(parsed.dtype):
        return None
    return parsed.astype(np.float64)


def _level_keys(series: pd.Series, fitted: Sequence[str] = ()) -> np.ndarray:
    """Object array of level text, one per value; missing -> MISSING_LEVEL.

    Text that is empty or only spaces is missing too (:func:`lossval.io.missing_or_blank`): a CSV
    reads an empty cell as NaN, while a parquet file, and a form at serving time, give ``""``.
    An encoder fitted before that rule may hold such text as a level of its own (``fitted``): it
    keeps it.
    """
    # float32/float16 columns keep their numpy scalars, which _level_text writes at their own precision
    small_float = series.dtype.kind == "f" and series.dtype.itemsize < 8
    values = series.to_numpy() if small_float else series.to_numpy(dtype=object)
    missing = missing_or_blank(series)
    if fitted and missing.any():
        kept = {level for level in fitted if not level.strip()}
        missing &= ~np.array([isinstance(v, str) and v in kept for v in values], dtype=bool)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string":
        # Text only (a CSV's categorical column): each distinct text converted once, not once per row (a review
        # measured 93 ms per 100k-row column, 25 ms this way; an encoder is fitted twice and transforms 7 times a run)
        codes, uniques = pd.factorize(values)
        keys = np.array([_level_text(v) for v in uniques] + [MISSING_LEVEL], dtype=object)[codes]  # -1: missing
        keys[missing] = MISSING_LEVEL
        return keys
    return np.array(
        [MISSING_LEVEL if m else _level_text(v) for v, m in zip(values, missing)],
        dtype=object,
    )


def _level_text(value: Any) -> str:
    # One text per level whatever the storage type: True, 1, 1.0 and "1" read from
    # CSV or parquet must land in the same column.
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        # float32/float16: their shortest text (0.1, not 0.10000000149011612), so a level stored
        # as float32 in one file matches the same level stored as float64 in another.
        value = float(str(value)) if isinstance(value, np.floating) and value.dtype.itemsize < 8 else float(value)
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _level_sort_key(level: str) -> tuple[int, float, str]:
    try:
        number = float(level)
    except ValueError:
        return (1, 0.0, level)
    return (0, number, level) if math.isfinite(number) else (1, 0.0, level)


def _py_scalar(value: Any) -> Any:
    """numpy scalar -> the Python scalar JSON can hold (ints stay ints, str stay str)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _label_array(classes: list[Any]) -> np.ndarray:
    if all(isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=bool)
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=np.int64)
    if all(isinstance(c, float) for c in classes):
        return np.array(classes, dtype=np.float64)
    out = np.empty(len(classes), dtype=object)
    out[:] = classes
    return out


def _as_series(y: Any, *, name: Any) -> pd.Series:
    if isinstance(y, pd.Series):
        return y
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise InputError(f"target must be 1-D, got a frame with {y.shape[1]} columns")
        return y.iloc[:, 0]
    arr = np.asarray(y, dtype=object if isinstance(y, (list, tuple)) else None)
    if arr.ndim != 1:
        raise InputError(f"target must be 1-D, got shape {arr.shape}")
    return pd.Series(arr, name=name)


def _row(label: Any) -> str:
    """A row's index label as error messages show it: 17, or 'r17' for text labels."""
    return repr(_py_scalar(label))


def _names_list(names: Any) -> list[Any]:
    """``features``/``exclude``/``categorical``/``numeric`` as a list (none: empty). Not ``names or []``: a pandas
    Index or numpy array of names (``exclude=df.columns[:2]``) has no truth value, and raised a bare ValueError."""
    return [] if names is None else list(names)


def _json_list(values: list[Any] | None) -> list[Any] | None:
    return None if values is None else [_py_scalar(v) for v in values]


def _show_list(values: Sequence[Any], *, limit: int = _SHOW) -> str:
    shown = ", ".join(repr(_py_scalar(v)) for v in list(values)[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"[{shown}{more}]"


def _show_values(bad: pd.Series, *, limit: int = _SHOW) -> str:
    parts = [f"{_py_scalar(v)!r} at row {_row(i)}" for i, v in bad.iloc[:limit].items()]
    more = f", ... ({len(bad)} in all)" if len(bad) > limit else ""
    return ", ".join(parts) + more


def _missing_numbers_message(col: Any, first: Any, *, n_nan: int, n_blank: int = 0, n_inf: int = 0) -> str:
    """A numeric column's missing (NaN, or text that is empty or only spaces) and infinite values, first at row
    ``first``, and what to do."""
    parts = [part for part in (f"{n_nan} NaN/missing" if n_nan else "",
                               f"{n_blank} blank (empty or only spaces)" if n_blank else "",
                               f"{n_inf} inf" if n_inf else "") if part]
    kinds = " and ".join(parts) if len(parts) < 3 else f"{parts[0]}, {parts[1]} and {parts[2]}"
    return (f"numeric column {col!r} has {kinds} value(s)"
            + (f" ({n_nan + n_blank + n_inf} in all)" if len(parts) > 1 else "")
            + f", first at row {_row(first)}; lossval rejects missing and infinite numbers: drop or impute "
            f"these rows, or leave the column out of the features ({_declare_excluded(col)})")


def _non_numeric_message(bad: pd.Series, col: Any, n_present: int) -> str:
    first_row, first_value = bad.index[0], bad.iloc[0]
    msg = (
        f"non-numeric value {_py_scalar(first_value)!r} in numeric column {col!r} at row "
        f"{_row(first_row)} ({len(bad)} of {n_present} non-missing values do not "
        "parse as numbers"
    )
    if len(bad) > 1:
        msg += f": {_show_values(bad)}"
    return msg + ")"
