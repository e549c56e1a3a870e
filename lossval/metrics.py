"""Detection metrics for noisy-row finding."""

from __future__ import annotations

import numpy as np

from lossval.errors import InputError

__all__ = ["detection_f1", "detection_report"]


def _mask(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a bool mask: bools, or numbers that are all 0 or 1. Anything else is refused: row positions
    (``PruneDecision.dropped_indices``) cast to bool gave a score for the wrong rows (0.8 for two disjoint sets)."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind in "iuf" and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    odd = arr[~np.isin(arr, (0, 1))][:3].tolist() if arr.dtype.kind in "iuf" else arr.ravel()[:3].tolist()
    raise InputError(f"{name} must be a mask, one True/False (or 1/0) per row; got values such as {odd}. For row "
                     f"positions (e.g. a PruneDecision's dropped_indices), build one: mask = np.zeros(n_rows, bool); "
                     "mask[positions] = True.")


def detection_f1(flagged: np.ndarray, noisy: np.ndarray) -> float:
    """F1 of a flagged-row mask against the true noisy-row mask.

    Args:
        flagged: bool ``(n,)`` (or 0/1), rows a method flags as noisy: a mask, not row positions.
        noisy: bool ``(n,)`` (or 0/1), rows that really are noisy.

    Returns:
        ``2 TP / (|flagged| + |noisy|)``; 0.0 when nothing is flagged or nothing is noisy.

    >>> detection_f1(np.array([True, True, False]), np.array([True, False, False]))
    0.6666666666666666
    """
    flagged, noisy = _mask(flagged, "flagged"), _mask(noisy, "noisy")
    if flagged.shape != noisy.shape:
        raise InputError(f"flagged {flagged.shape} and noisy {noisy.shape} differ in shape: give one value per row "
                         "to both.")
    denom = int(flagged.sum()) + int(noisy.sum())
    return 0.0 if denom == 0 else 2.0 * int((flagged & noisy).sum()) / denom


def detection_report(flagged: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and counts of a flagged mask against the noisy mask (as :func:`detection_f1` takes)."""
    flagged, noisy = _mask(flagged, "flagged"), _mask(noisy, "noisy")
    tp = int((flagged & noisy).sum())
    return {
        "flagged": int(flagged.sum()),
        "noisy": int(noisy.sum()),
        "true_positives": tp,
        "precision": tp / flagged.sum() if flagged.any() else 0.0,
        "recall": tp / noisy.sum() if noisy.any() else 0.0,
        "f1": detection_f1(flagged, noisy),
    }
