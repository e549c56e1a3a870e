"""Detection metrics: masks in, and anything that is not a mask refused."""
from __future__ import annotations

import numpy as np
import pytest

from lossval.errors import InputError
from lossval.metrics import detection_f1, detection_report


def test_row_positions_are_refused_not_scored_as_a_mask() -> None:
    # Seen by a library review: positions cast to bool scored two disjoint sets of rows 0.8.
    with pytest.raises(InputError, match=r"flagged must be a mask, one True/False \(or 1/0\) per row; got values such as "
                                         r"\[2\]\. For row positions"):
        detection_f1(np.array([0, 1, 2]), np.array([5, 6, 7]) > 5)
    with pytest.raises(InputError, match=r"noisy must be a mask.*\['a'\]"):
        detection_report([True], np.array(["a"]))
    with pytest.raises(InputError, match=r"differ in shape: give one value per row"):
        detection_f1([True, False], [True])


def test_masks_of_bools_or_zeros_and_ones_score_the_same() -> None:
    flagged, noisy = np.array([True, True, False, False]), np.array([True, False, True, False])
    assert detection_f1(flagged, noisy) == detection_f1(flagged.astype(int), noisy.astype(float)) == 0.5
    assert detection_report(flagged, noisy) == {"flagged": 2, "noisy": 2, "true_positives": 1, "precision": 0.5,
                                                "recall": 0.5, "f1": 0.5}
    assert detection_f1([False, False], [False, False]) == 0.0
    # Three flagged, one of the two noisy rows among them: precision and recall differ, as the counts do.
    assert detection_report([True, True, True, False], [True, False, False, True]) == {
        "flagged": 3, "noisy": 2, "true_positives": 1, "precision": 1 / 3, "recall": 0.5, "f1": 0.4}
