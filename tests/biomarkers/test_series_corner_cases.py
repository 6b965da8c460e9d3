"""Per-series features on hand-made arrays: the corner cases a real study produces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biomarkers.lesions import labelled_lesions
from biomarkers.series import series_features


def simple_head(shape=(20, 128, 128), spacing=(5.0, 1.0, 1.0), shift_mm: float = 0.0) -> np.ndarray:
    """An ellipsoidal skull (1000 HU) around 30 HU brain with two 5 HU ventricles displaced by `shift_mm` to the left.

    Columns run toward the patient's left (LPS +x), as with the default affine.
    """
    dz, dy, dx = spacing
    nz, ny, nx = shape
    z = (np.arange(nz) - (nz - 1) / 2) * dz
    y = (np.arange(ny) - (ny - 1) / 2) * dy
    x = (np.arange(nx) - (nx - 1) / 2) * dx
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    r = (xx / 55) ** 2 + (yy / 60) ** 2 + (zz / 80) ** 2
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[r <= 1.25] = 1000.0
    hu[r <= 1.0] = 30.0
    for sign in (1, -1):
        vent = ((xx - shift_mm - sign * 7) / 5) ** 2 + (yy / 20) ** 2 + (zz / 25) ** 2 <= 1
        hu[vent] = 5.0
    return hu


def test_no_lesion_gives_zero_volumes_and_no_side() -> None:
    hu = simple_head()
    values, lesions = series_features(hu, np.zeros(hu.shape, np.uint8), (5.0, 1.0, 1.0))
    assert values["hematoma_ml"] == 0 and values["edema_ml"] == 0 and values["lesion_count"] == 0
    assert values["side"] == "none" and math.isnan(values["largest_lesion_left"])
    assert math.isnan(values["relative_edema"]) and values["abc2_ml"] == 0
    assert math.isnan(values["asymmetry_lesion"])
    assert lesions.empty and "volume_ml" in lesions.columns
    assert abs(values["midline_shift_mm"]) < 1.0
    assert abs(values["asymmetry_parenchyma"]) < 0.02


def test_lesion_crossing_the_midline_is_one_lesion_on_its_heavier_side() -> None:
    hu = simple_head()
    labels = np.zeros(hu.shape, np.uint8)
    # Columns 60..75 straddle the midline (63.5), most of them on the left (higher columns).
    labels[8:12, 90:100, 60:76] = 1
    values, lesions = series_features(hu, labels, (5.0, 1.0, 1.0))
    assert values["lesion_count"] == 1
    row = lesions.iloc[0]
    assert bool(row["crosses_midline"]) and row["side"] == "left"
    assert row["fraction_left"] == pytest.approx(12 / 16)
    assert values["asymmetry_lesion"] == pytest.approx((12 - 4) / 8)
    assert row["midline_distance_mm"] == pytest.approx(67.5 - 63.5, abs=0.3)


def test_side_follows_the_patient_not_the_array_when_columns_run_to_the_right() -> None:
    hu = simple_head()
    labels = np.zeros(hu.shape, np.uint8)
    labels[8:12, 50:60, 85:95] = 1  # high columns
    left_values, _ = series_features(hu, labels, (5.0, 1.0, 1.0))
    # Same voxels, but an affine whose columns point to the patient's right: high columns are now right.
    flipped = np.diag([-1.0, 1.0, 5.0, 1.0])
    right_values, lesions = series_features(hu, labels, (5.0, 1.0, 1.0), flipped)
    assert left_values["side"] == "left" and right_values["side"] == "right"
    assert right_values["largest_lesion_left"] == 0.0 and lesions.iloc[0]["centroid_x_mm"] < 0
    assert right_values["asymmetry_lesion"] == pytest.approx(-2.0)


def test_anisotropic_voxels_volume_centroid_and_edema_in_mm() -> None:
    spacing = (5.0, 0.4, 0.6)
    hu = simple_head(shape=(20, 300, 200), spacing=spacing)
    labels = np.zeros(hu.shape, np.uint8)
    labels[10, 100:110, 150:160] = 1  # lesion A: 100 voxels
    labels[12, 115:125, 150:160] = 1  # lesion B: two slices (10 mm) above, rows 115-124
    # The edema voxel is 11 rows (4.4 mm) from A but 2 slices (10 mm) from B: nearest to A in mm,
    # though nearer to B in index units. Edema must go to A.
    labels[10, 120, 155] = 3  # edema
    values, lesions = series_features(hu, labels, spacing)
    assert values["hematoma_ml"] == pytest.approx(200 * 5.0 * 0.4 * 0.6 / 1000)
    assert values["lesion_count"] == 2
    a = lesions.loc[lesions["centroid_z_mm"].idxmin()]
    b = lesions.loc[lesions["centroid_z_mm"].idxmax()]
    assert a["edema_ml"] == pytest.approx(5.0 * 0.4 * 0.6 / 1000) and b["edema_ml"] == 0
    assert a["centroid_z_mm"] == pytest.approx(10 * 5.0)
    assert a["centroid_y_mm"] == pytest.approx(104.5 * 0.4)
    assert a["centroid_x_mm"] == pytest.approx(154.5 * 0.6)


def test_one_voxel_speck_below_minimum_size_is_not_a_lesion_but_counts_in_volume() -> None:
    hu = simple_head()
    labels = np.zeros(hu.shape, np.uint8)
    labels[8:12, 90:100, 80:90] = 1
    labels[15, 40, 40] = 1  # 5 uL speck, far below 0.05 mL
    values, lesions = series_features(hu, labels, (5.0, 1.0, 1.0))
    assert values["lesion_count"] == 1 and len(lesions) == 1
    assert values["hematoma_ml"] == pytest.approx((400 + 1) * 5.0 / 1000)
    assert values["largest_lesion_ml"] == pytest.approx(400 * 5.0 / 1000)


def test_connectivity_26_joins_diagonal_neighbours_and_6_does_not() -> None:
    mask = np.zeros((4, 10, 10), bool)
    mask[0:2, 0:3, 0:3] = True
    mask[2:4, 3:6, 3:6] = True  # touches the first block only at a corner
    _, counts26 = labelled_lesions(mask, (1.0, 1.0, 1.0), min_lesion_ml=0.0, connectivity=26)
    _, counts6 = labelled_lesions(mask, (1.0, 1.0, 1.0), min_lesion_ml=0.0, connectivity=6)
    assert len(counts26) == 1 and len(counts6) == 2
    with pytest.raises(ValueError, match="connectivity"):
        labelled_lesions(mask, (1.0, 1.0, 1.0), connectivity=8)


def test_abc2_is_measured_on_the_largest_lesion() -> None:
    spacing = (2.0, 0.5, 0.5)
    hu = simple_head(shape=(40, 256, 256), spacing=spacing)
    yy, xx = np.mgrid[0:256, 0:256]
    disc = ((yy - 100) * 0.5) ** 2 + ((xx - 170) * 0.5) ** 2 <= 20.0**2  # 40 mm diameter cylinder, 16 mm high
    labels = np.zeros(hu.shape, np.uint8)
    labels[16:24][:, disc] = 1
    labels[10:13, 150:160, 60:70] = 1  # a smaller lesion elsewhere
    values, lesions = series_features(hu, labels, spacing)
    assert values["lesion_count"] == 2
    # ABC/2 of a cylinder is D*D*H/2 against its true pi*D*D*H/4.
    assert values["abc2_ml"] == pytest.approx(40 * 40 * 16 / 2 / 1000, rel=0.08)
    assert values["largest_lesion_ml"] == pytest.approx(np.pi * 20**2 * 16 / 1000, rel=0.03)


def test_bad_masks_are_refused_with_what_is_wrong() -> None:
    hu = simple_head()
    labels = np.zeros(hu.shape, np.uint8)
    labels[0, 0, 0] = 5  # outside the four-class label map
    with pytest.raises(ValueError, match=r"values \[5\]"):
        series_features(hu, labels, (5.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="differs from the CT volume"):
        series_features(hu, np.zeros((2, 2, 2), np.uint8), (5.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        series_features(hu, np.zeros(hu.shape, np.uint8), (5.0, 0.0, 1.0))


def test_midline_shift_of_displaced_ventricles_in_a_simple_head() -> None:
    values, _ = series_features(simple_head(shift_mm=-6.0), np.zeros((20, 128, 128), np.uint8), (5.0, 1.0, 1.0))
    assert values["midline_shift_method"] == "septum"
    assert values["midline_shift_signed_mm"] == pytest.approx(-6.0, abs=1.0)
    assert values["asymmetry_ventricles"] < 0  # moved right: more ventricle right of the plane
