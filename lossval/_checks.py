"""Input checks shared by the library modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from lossval.errors import InputError

__all__ = ["as_finite_1d"]


def as_finite_1d(values: Any, *, name: str, purpose: str, allow_empty: bool = True) -> np.ndarray:
    """Float64 1-D copy of ``values``; InputError on a bad shape, NaN/inf or (optionally) emptiness.

    Args:
        values: One number per row.
        name: What the values are, for messages (``"values"``, ``"losses"``).
        purpose: What the caller is about to do, for messages (``"pruning"``).
        allow_empty: Accept zero rows.
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, maybe on a GPU or needing grad
        values = values.detach().cpu().numpy()
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
