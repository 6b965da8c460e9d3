"""Biomarkers of the four-class label map: per-class volumes, the largest extra-axial collection and its
thickness, IVH present, and the patient-level features built on them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from biomarkers.extra_axial import extra_axial_features, max_thickness_mm
from biomarkers.series import DEFINITIONS_VERSION, series_features
from biomarkers.timecourse import PATIENT_FEATURES, patient_level_features
from biomarkers.volume import checked_labels, label_volumes_ml
from synthetic import phantom as P
from vocabulary.labels import EAH, EDEMA, IPH, IVH


def _render(spec: P.SeriesSpec, thickness: float = 5.0) -> P.RenderedSeries:
    return P.render_series(spec, P.Grid.centered(256, 230.0, thickness), np.random.default_rng(0))


@pytest.fixture(scope="module")
def all_classes() -> P.RenderedSeries:
    return _render(P.SeriesSpec(hematomas=(P.hematoma(18, "left", "frontal", edema_ml=9),),
                                extra_axial=P.ExtraAxial("right", 25.0), intraventricular=P.Intraventricular(3.0)))


def test_per_class_volumes_match_the_phantom_truth(all_classes: P.RenderedSeries) -> None:
    r = all_classes
    values, lesions = series_features(r.hu, r.labels, r.spacing, r.affine)
    for key, label in (("iph", IPH), ("eah", EAH), ("edema", EDEMA), ("ivh", IVH)):
        assert values[f"{key}_ml"] == pytest.approx(r.class_ml(label), rel=1e-6), key
    assert values["hematoma_ml"] == values["iph_ml"]  # CREACTIVE's hematoma: IPH only
    assert values["hemorrhage_ml"] == pytest.approx(r.class_ml(IPH) + r.class_ml(EAH) + r.class_ml(IVH))
    assert values["total_lesion_ml"] == pytest.approx(r.class_ml(IPH) + r.class_ml(EDEMA))
    # Extra-axial and ventricular blood are not hematoma lesions, and do not move the lesion sides.
    assert values["lesion_count"] == 1 == len(lesions) and values["side"] == "left"
    assert values["lesion_right_ml"] == pytest.approx(0.0, abs=0.1)
    assert values["eah_count"] == 1 and values["eah_largest_ml"] == pytest.approx(r.extra_axial_ml, rel=1e-6)
    assert values["eah_largest_left"] == 0.0  # a right-sided collection
    assert 4.0 < values["eah_max_thickness_mm"] < 30.0
    assert values["ivh_present"] == 1.0
    assert DEFINITIONS_VERSION == "v4"


def test_without_extra_axial_or_ventricular_blood() -> None:
    r = _render(P.SeriesSpec(hematomas=(P.hematoma(10, "right", "temporal"),)))
    values, _ = series_features(r.hu, r.labels, r.spacing, r.affine)
    assert values["eah_ml"] == values["ivh_ml"] == 0.0 and values["ivh_present"] == 0.0
    assert values["eah_count"] == 0 and values["eah_largest_ml"] == 0.0 and values["eah_max_thickness_mm"] == 0.0
    assert math.isnan(values["eah_largest_left"])


@pytest.mark.parametrize(("pixels", "expected_pixels"), [(7, 7), (8, 7), (1, 1), (20, 19)])
def test_thickness_of_a_slab_of_known_width(pixels: int, expected_pixels: int) -> None:
    """A band `pixels` wide, tall and deep: measured between pixel edges, within one pixel, never more."""
    spacing = (5.0, 0.45, 0.45)
    mask = np.zeros((9, 120, 120), dtype=bool)
    mask[2:7, 10:110, 30:30 + pixels] = True
    assert max_thickness_mm(mask, spacing) == pytest.approx(expected_pixels * 0.45)


def test_thickness_is_in_plane_and_of_the_largest_collection() -> None:
    spacing = (5.0, 0.5, 0.5)
    labels = np.zeros((6, 200, 200), dtype=np.uint8)
    labels[3, 20:180, 10:31] = EAH  # 21 px = 10.5 mm thick, but on one 5 mm slice only
    labels[1:5, 100:140, 150:155] = EAH  # a smaller, thinner collection elsewhere (4 x 40 x 5 voxels)
    values, largest = extra_axial_features(labels, spacing)
    assert values["eah_count"] == 2
    assert values["eah_largest_ml"] == pytest.approx(160 * 21 * 5.0 * 0.25 / 1000)
    assert values["eah_max_thickness_mm"] == pytest.approx(10.5)  # not capped by the slice thickness
    assert largest is not None and largest[3, 100, 20] and not largest[2, 120, 152]
    assert values["ivh_present"] == 0.0


def test_ivh_specks_below_the_minimum_are_not_ivh() -> None:
    labels = np.zeros((4, 50, 50), dtype=np.uint8)
    labels[2, 20, 20] = IVH  # one voxel: 0.00125 mL
    assert extra_axial_features(labels, (5.0, 0.5, 0.5))[0]["ivh_present"] == 0.0
    labels[1:3, 20:30, 20:30] = IVH  # 200 voxels = 0.25 mL
    assert extra_axial_features(labels, (5.0, 0.5, 0.5))[0]["ivh_present"] == 1.0


def test_label_volumes_and_a_clear_error_for_labels_outside_the_map() -> None:
    labels = np.zeros((2, 10, 10), dtype=np.uint8)
    labels[0, :2, :5] = IPH  # 10 voxels
    labels[1, :4, :5] = EDEMA  # 20
    labels[1, 5:, :2] = IVH  # 10
    v = label_volumes_ml(labels, (1.0, 1.0, 1.0))
    assert (v["iph_ml"], v["edema_ml"], v["ivh_ml"], v["eah_ml"]) == (0.01, 0.02, 0.01, 0.0)
    assert v["hemorrhage_ml"] == pytest.approx(0.02) and v["relative_edema"] == pytest.approx(2.0)
    labels[0, 9, 9] = 5
    with pytest.raises(ValueError, match=r"values \[5\].*4 ivh.*two-class"):
        checked_labels(labels)


def test_patient_level_four_class_features_come_from_the_admission_scan() -> None:
    table = pd.DataFrame({
        "center": "C1", "patient_id": ["p1", "p1", "p2"], "timepoint": [0, 1, 0],
        "days_from_injury": [0.1, 3.0, 0.2], "hematoma_ml": [10.0, 12.0, 0.0], "edema_ml": [4.0, 8.0, 0.0],
        "lesion_count": [1, 1, 0], "midline_shift_mm": [2.0, 3.0, 0.0], "largest_lesion_left": [1.0, 1.0, np.nan],
        "eah_ml": [20.0, 5.0, 0.0], "eah_max_thickness_mm": [9.5, 4.0, 0.0], "ivh_ml": [0.0, 0.0, 2.5],
        "ivh_present": [0.0, 0.0, 1.0], "hemorrhage_ml": [30.0, 17.0, 2.5],
    })
    out = patient_level_features(table).reset_index().set_index("patient_id")
    assert list(out.columns[1:]) == PATIENT_FEATURES  # after center (the index is patient_id)
    assert out.at["p1", "adm_eah_ml"] == 20.0 and out.at["p1", "adm_eah_max_thickness_mm"] == 9.5
    assert out.at["p2", "adm_ivh_present"] == 1.0 and out.at["p2", "adm_ivh_ml"] == 2.5
    assert out.at["p1", "adm_hemorrhage_ml"] == 30.0
    # A table from before the four-class map still works: the new features are empty.
    old = patient_level_features(table.drop(columns=["eah_ml", "eah_max_thickness_mm", "ivh_ml", "ivh_present",
                                                     "hemorrhage_ml"]))
    assert old["adm_eah_ml"].isna().all() and old["adm_hematoma_ml"].tolist() == [10.0, 0.0]
