"""Input checks shared by the library modules."""

from __future__ import annotations

import decimal
import math
import numbers
import warnings
from typing import Any

import numpy as np

from lossval.errors import InputError

__all__ = ["as_finite_1d", "finite_number", "first_non_number", "is_integer", "label_kind", "tensor_to_numpy",
           "too_many_classes", "warn_unaligned",
           "column_name_hint"]

# Python and numpy numbers (bools too, as numpy bool columns are read); not text, even "1.5".
_NUMBER_TYPES = (numbers.Real, np.bool_, decimal.Decimal)


def as_finite_1d(values: Any, *, name: str, purpose: str, allow_empty: bool = True) -> np.ndarray:
    """Float64 1-D copy of ``values``; InputError on a bad shape, NaN/inf or (optionally) emptiness.

    Args:
        values: One number per row.
        name: What the values are, for messages (``"values"``, ``"losses"``).
        purpose: What the caller is about to do, for messages (``"pruning"``).
        allow_empty: Accept zero rows.
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, maybe on a GPU or needing grad
        values = tensor_to_numpy(values)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric; could not convert it to floats ({exc})") from exc
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (one value per row); got shape {arr.shape}. Pass one value per training row.")
    if arr.size == 0 and not allow_empty:
        raise InputError(f"{name} is empty; there are no rows for {purpose}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf), first at row "
            f"{first} ({float(arr[first])!r}); fix or drop those rows before {purpose}."
        )
    return arr


def tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor's values as a numpy array, on the host. numpy has no bfloat16 or float8: such tensors (a model's
    half-precision output) are read as float32, where ``.numpy()`` raised a bare "Got unsupported ScalarType"."""
    tensor = tensor.detach().cpu()
    if tensor.dtype.is_floating_point and (tensor.dtype.itemsize == 1 or str(tensor.dtype) == "torch.bfloat16"):
        tensor = tensor.float()
    return tensor.numpy()


def is_integer(value: Any) -> bool:
    """An integer, Python or numpy, and not a bool: ``True`` is an int to Python, but never a count or a seed here."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def finite_number(value: Any) -> bool:
    """A finite real number (numpy scalars too), not a bool (``True`` is an int to Python, never a setting here)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def _is_number_type(kind: type) -> bool:
    return issubclass(kind, _NUMBER_TYPES) and not issubclass(kind, (str, bytes))


def first_non_number(values: np.ndarray) -> int | None:
    """Position of the first value of an object array that is not a number, or None if all are.

    Numbers are Python and numpy ints, floats and bools, and ``Decimal``; text is not a number, even
    ``"1.5"`` (numeric text usually means a column read wrongly; convert it on purpose).
    """
    kinds = {type(v) for v in values}
    if all(_is_number_type(kind) for kind in kinds):
        return None
    return next(i for i, v in enumerate(values) if not _is_number_type(type(v)))


def too_many_classes(n_classes: int, n_rows: int) -> bool:
    """Whether ``n_classes`` distinct labels in ``n_rows`` rows are too many to be classes: more than 20, and fewer
    than two rows per class on average (an id, a name or a measurement read as labels). The pipeline's validation
    check and :meth:`lossval.LossVal.fit` both refuse such a target."""
    return n_classes > 20 and n_classes > 0.5 * n_rows


def label_kind(labels: np.ndarray) -> str | None:
    """``"numbers"`` or ``"strings"`` when every label is of that kind, else None (mixed or other)."""
    if labels.dtype.kind in "biuf":
        return "numbers"
    if labels.dtype.kind in "US":
        return "strings"
    kinds = {type(v) for v in labels.ravel()}
    if kinds and all(_is_number_type(kind) for kind in kinds):
        return "numbers"
    if kinds and all(issubclass(kind, (str, bytes)) for kind in kinds):
        return "strings"
    return None


def warn_unaligned(a: Any, b: Any, a_name: str, b_name: str, *, stacklevel: int) -> None:
    """Warn when ``a`` and ``b`` are both pandas objects of one length whose row indexes differ: rows are paired by
    position (as in scikit-learn), which after a shuffle or a filter of one of them pairs rows with other rows'
    targets or labels. ``stacklevel`` is the one the caller would give ``warnings.warn`` itself."""
    ai, bi = (obj.index if hasattr(obj, "iloc") else None for obj in (a, b))  # pandas only (a list has .index too)
    if ai is None or bi is None or len(ai) != len(bi) or ai.equals(bi):
        return
    warnings.warn(f"{a_name} and {b_name} have different row indexes (first {_plain(ai[0])!r} and "
                  f"{_plain(bi[0])!r}); rows are paired by position, not by index. If they should match by index, "
                  f"pass {b_name}.loc[{a_name}.index]; if position is right, reset both indexes "
                  "(reset_index(drop=True)) to say so.", UserWarning, stacklevel=stacklevel + 1)


def _plain(label: Any) -> Any:
    """An index label as Python prints it: ``3``, ``(0, 1)``, not ``np.int64(3)`` or ``(np.int64(0), np.int64(1))``."""
    if isinstance(label, tuple):  # a MultiIndex's
        return tuple(_plain(part) for part in label)
    return label.item() if isinstance(label, np.generic) else label


def column_name_hint(given: Any) -> str:
    """For a per-row argument given as one string (``labels="label"``, as some libraries take a column's name): the
    advice to pass the column itself; ``""`` for anything else."""
    return f"; to use a column of the frame, pass the column itself (df[{given!r}])" if isinstance(given, str) else ""
