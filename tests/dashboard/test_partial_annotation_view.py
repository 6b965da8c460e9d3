"""The case viewer reads a partial annotation's 255 as "not annotated", never as lesion."""

from __future__ import annotations

import numpy as np

from dashboard.imageview import richest_slice
from vocabulary.labels import IPH, UNANNOTATED


def test_the_case_viewer_opens_on_lesion_not_on_unannotated_slices() -> None:
    labels = np.zeros((6, 8, 8), np.uint8)
    labels[1, 2, 2] = IPH
    labels[4:] = UNANNOTATED
    assert richest_slice(labels, 6) == 1
    labels[1, 2, 2] = 0
    assert richest_slice(labels, 6) == 3  # no lesion: the middle slice
