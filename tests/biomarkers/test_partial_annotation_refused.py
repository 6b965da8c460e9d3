"""A partial annotation's volumes are not the scan's: biomarkers refuse it, and 255 never counts as lesion."""

from __future__ import annotations

import numpy as np
import pytest

from biomarkers.series import series_features
from biomarkers.tissue import tissue_masks
from biomarkers.volume import checked_labels
from vocabulary.labels import IPH, UNANNOTATED


def _head() -> np.ndarray:
    """A round skull (1000 HU) around brain (30 HU) on 6 slices of 40 x 40, air outside."""
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    hu = np.full((6, 40, 40), -1000.0, np.float32)
    hu[:, r < 17] = 1000.0
    hu[:, r < 15] = 30.0
    return hu


def test_series_features_refuse_a_partial_annotation_by_name() -> None:
    labels = np.zeros((6, 40, 40), np.uint8)
    labels[2, 18:22, 18:22] = IPH
    labels[4:] = UNANNOTATED
    with pytest.raises(ValueError, match="partial annotation"):
        series_features(_head(), labels, (5.0, 0.5, 0.5), np.diag([0.5, 0.5, 5.0, 1.0]))
    with pytest.raises(ValueError, match="not the scan's"):
        checked_labels(labels)


def test_other_labels_outside_the_map_keep_their_message() -> None:
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[0, 0, 0] = 9
    with pytest.raises(ValueError, match=r"values \[9\]"):
        checked_labels(labels)


def test_unannotated_voxels_are_not_lesion_in_the_tissue_masks() -> None:
    hu = _head()
    labels = np.zeros(hu.shape, np.uint8)
    whole = tissue_masks(hu, labels)
    labels[4:] = UNANNOTATED
    partial = tissue_masks(hu, labels)
    assert whole.parenchyma.any() and np.array_equal(partial.parenchyma, whole.parenchyma)
