"""Per-patient features over time: definitions of docs/data-formats.md."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from biomarkers.timecourse import PATIENT_FEATURES, patient_level_features, scans_side_by_side


def table(rows: list[tuple]) -> pd.DataFrame:
    cols = ["center", "patient_id", "timepoint", "days_from_injury", "hematoma_ml", "edema_ml", "lesion_count",
            "midline_shift_mm", "largest_lesion_left"]
    return pd.DataFrame(rows, columns=cols)


def test_expansion_growth_peak_and_last_for_a_patient_with_three_scans() -> None:
    # Rows deliberately out of order: the admission scan is found by day, not by row position.
    t = table([("IT1", "p", 2, 4.0, 15.0, 12.0, 1, 4.0, 1.0), ("IT1", "p", 0, 0.2, 10.0, 3.0, 1, 1.0, 1.0),
               ("IT1", "p", 1, 1.2, 17.0, 8.0, 2, 3.0, 1.0)])
    f = patient_level_features(t).loc[("IT1", "p")]
    assert list(patient_level_features(t).columns) == PATIENT_FEATURES
    assert f["adm_hematoma_ml"] == 10 and f["adm_edema_ml"] == 3 and f["adm_midline_shift_mm"] == 1
    assert f["hematoma_expansion_ml"] == 7 and f["hematoma_expansion_pct"] == pytest.approx(70.0)
    assert f["significant_expansion"] == 1
    assert f["peak_hematoma_ml"] == 17 and f["peak_edema_ml"] == 12 and f["peak_edema_day"] == 4.0
    assert f["edema_growth_ml_per_day"] == pytest.approx((12 - 3) / (4.0 - 0.2))
    assert f["last_hematoma_ml"] == 15 and f["n_scans"] == 3


@pytest.mark.parametrize(("first", "second", "significant"), [
    (30.0, 37.0, 1.0),  # +7 mL, +23 %: by volume
    (30.0, 35.0, 0.0),  # +5 mL, +16.7 %
    (3.0, 4.5, 1.0),    # +1.5 mL but +50 %: by percentage
    (10.0, 6.0, 0.0),   # shrinking
    (0.0, 5.0, 0.0),    # no hematoma on admission: % undefined, 5 mL is not > 6
])
def test_significant_expansion_is_more_than_6_ml_or_33_percent(first, second, significant) -> None:
    t = table([("C", "p", 0, 0.0, first, 1.0, 1, 0.0, 1.0), ("C", "p", 1, 1.0, second, 1.0, 1, 0.0, 1.0)])
    f = patient_level_features(t).iloc[0]
    assert f["significant_expansion"] == significant
    assert f["hematoma_expansion_ml"] == pytest.approx(second - first)


def test_single_scan_leaves_expansion_empty_and_growth_zero() -> None:
    t = table([("C", "p", 0, 0.5, 4.0, 2.0, 0, 0.0, math.nan)])
    f = patient_level_features(t).iloc[0]
    assert math.isnan(f["hematoma_expansion_ml"]) and math.isnan(f["significant_expansion"])
    assert f["edema_growth_ml_per_day"] == 0.0 and math.isnan(f["adm_lesion_left"]) and f["n_scans"] == 1


def test_same_patient_id_in_two_centers_are_two_patients() -> None:
    t = table([("A", "p", 0, 0.0, 1.0, 1.0, 1, 0.0, 1.0), ("B", "p", 0, 0.0, 9.0, 1.0, 1, 0.0, 0.0)])
    f = patient_level_features(t)
    assert len(f) == 2 and f.loc[("B", "p"), "adm_hematoma_ml"] == 9.0


def test_side_by_side_puts_admission_first() -> None:
    t = table([("C", "p", 1, 2.0, 12.0, 5.0, 1, 0.0, 1.0), ("C", "p", 0, 0.0, 10.0, 3.0, 1, 0.0, 1.0)])
    wide = scans_side_by_side(t)
    assert wide.loc[("C", "p"), ("hematoma_ml", 0)] == 10.0 and wide.loc[("C", "p"), ("hematoma_ml", 1)] == 12.0


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="edema_ml"):
        patient_level_features(table([]).drop(columns=["edema_ml"]))


def test_agrees_with_the_synthetic_study_truth_definitions() -> None:
    synth = pytest.importorskip("synthetic.features")
    rng = np.random.default_rng(5)
    rows = []
    for i in range(40):
        n = int(rng.integers(1, 5))
        days = np.sort(rng.uniform(0, 10, n))
        for t in range(n):
            h = float(rng.choice([0.0, rng.uniform(0, 60)]))
            rows.append((f"C{i % 3}", f"p{i}", t, days[t], h, float(rng.uniform(0, 40)), int(h > 0), 0.0,
                         float(rng.integers(0, 2)) if h > 0 else math.nan))
    t = table(rows)
    ours = patient_level_features(t).reset_index().sort_values(["center", "patient_id"]).reset_index(drop=True)
    truth = synth.patient_level_features(t).sort_values(["center", "patient_id"]).reset_index(drop=True)
    # Every patient-level feature but the collection thickness (measured on masks only) is also in the truth.
    assert set(PATIENT_FEATURES) - set(truth.columns) == {"adm_eah_max_thickness_mm"}
    for col in set(PATIENT_FEATURES) & set(truth.columns):
        np.testing.assert_allclose(ours[col].astype(float), truth[col].astype(float), equal_nan=True, err_msg=col)
