"""Detection metrics for noisy-row finding."""

from __future__ import annotations

import numpy as np

__all__ = ["detection_f1", "detection_report"]


def detection_f1(flagged: np.ndarray, noisy: np.ndarray) -> float:
    """F1 of a flagged-row mask against the true noisy-row mask.

    Args:
        flagged: bool ``(n,)``, rows a method flags as noisy.
        noisy: bool ``(n,)``, rows that really are noisy.

    Returns:
        ``2 TP / (|flagged| + |noisy|)``; 0.0 when nothing is flagged or nothing is noisy.

    >>> detection_f1(np.array([True, True, False]), np.array([True, False, False]))
    0.6666666666666666
    """
    flagged = np.asarray(flagged, dtype=bool)
    noisy = np.asarray(noisy, dtype=bool)
    if flagged.shape != noisy.shape:
        raise ValueError(f"flagged {flagged.shape} and noisy {noisy.shape} differ in shape")
    denom = int(flagged.sum()) + int(noisy.sum())
    return 0.0 if denom == 0 else 2.0 * int((flagged & noisy).sum()) / denom


def detection_report(flagged: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and counts of a flagged mask against the noisy mask."""
    flagged = np.asarray(flagged, dtype=bool)
    noisy = np.asarray(noisy, dtype=bool)
    tp = int((flagged & noisy).sum())
    return {
        "flagged": int(flagged.sum()),
        "noisy": int(noisy.sum()),
        "true_positives": tp,
        "precision": tp / flagged.sum() if flagged.any() else 0.0,
        "recall": tp / noisy.sum() if noisy.any() else 0.0,
        "f1": detection_f1(flagged, noisy),
    }
