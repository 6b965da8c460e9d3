"""IMPACT's CT predictors from the computed CT classifications, each with its source."""

from __future__ import annotations

import numpy as np
import pandas as pd

from biomarkers.timecourse import admission_ct_classes
from prognosis.ct_inputs import impact_ct_inputs, impact_ct_table
from prognosis.impact import impact_risk


def test_computed_values_come_first_and_say_so() -> None:
    values, sources = impact_ct_inputs(
        {"marshall_ct": 2, "edh": 0, "tsah": 1},
        {"adm_marshall_ct_class": 6.0, "adm_ct_edh": 1.0, "adm_ct_edh_source": "measured",
         "adm_ct_tsah": np.nan, "adm_ct_tsah_source": "unknown"})
    assert values == {"marshall_ct": 6, "edh": 1, "tsah": 1}
    assert sources["marshall_ct"].startswith("computed") and sources["edh"] == "computed (measured)"
    assert sources["tsah"] == "clinical record"


def test_a_range_falls_back_to_the_record_and_names_what_is_missing() -> None:
    values, sources = impact_ct_inputs({"marshall_ct": None, "edh": None, "tsah": None},
                                       {"adm_marshall_ct_class": np.nan, "adm_marshall_ct_class_missing": "tsah"})
    assert values["marshall_ct"] is None and sources["marshall_ct"].startswith("unknown")
    assert "range (tsah unknown)" in sources["marshall_ct"]
    values, sources = impact_ct_inputs({"marshall_ct": 3}, {"adm_marshall_ct_class": np.nan,
                                                            "adm_marshall_ct_class_missing": "tsah"})
    assert values["marshall_ct"] == 3 and sources["marshall_ct"].startswith("clinical record")


def test_impact_core_ct_uses_the_computed_marshall_class() -> None:
    series = pd.DataFrame({"center": ["A", "A", "B"], "patient_id": ["p1", "p1", "p2"],
                           "days_from_injury": [0.1, 2.0, 0.2], "hematoma_ml": [0.0] * 3, "edema_ml": [0.0] * 3,
                           "lesion_count": [0] * 3, "midline_shift_mm": [0.0] * 3, "largest_lesion_left": [np.nan] * 3,
                           "marshall_ct_class": [6.0, 2.0, np.nan], "marshall_ct_class_missing": ["", "", "tsah"],
                           "ct_edh": [1.0, 0.0, 0.0], "ct_edh_source": ["measured"] * 3,
                           "ct_tsah": [np.nan, np.nan, 1.0], "ct_tsah_source": ["unknown", "unknown", "reviewer"]})
    admission = admission_ct_classes(series).reset_index()
    table = pd.DataFrame({"center": ["A", "B"], "patient_id": ["p1", "p2"], "age": [40.0, 40.0],
                          "gcs_motor": [4, 4], "pupils_unreactive": [0, 0], "hypoxia": [0, 0], "hypotension": [0, 0],
                          "marshall_ct": [2, 3], "edh": [0, 0], "tsah": [0, np.nan]})
    got = impact_ct_table(table, admission)
    assert got["marshall_ct"].tolist() == [6, 3]  # p1: the admission scan's class; p2: a range, so the record
    assert got["edh"].tolist() == [1, 0] and got["tsah"].tolist() == [0, 1]
    assert got["tsah_source"].tolist() == ["clinical record", "computed (reviewer)"]
    assert got["marshall_ct_source"].iloc[0].startswith("computed")
    risk_record = impact_risk(table, "core+ct", "mortality")
    risk_computed = impact_risk(got, "core+ct", "mortality")
    assert risk_computed.iloc[0] != risk_record.iloc[0]


def test_the_table_makes_the_per_patient_choice_for_every_row() -> None:
    """impact_ct_table, column-wise, gives what impact_ct_inputs gives patient by patient: values and sources."""
    rng = np.random.default_rng(3)
    n = 300
    ids = [f"p{i}" for i in range(n)]
    maybe = lambda values, p: np.where(rng.random(n) < p, values, np.nan)  # noqa: E731
    table = pd.DataFrame({"center": "A", "patient_id": ids, "marshall_ct": maybe(rng.integers(1, 7, n), 0.8),
                          "edh": maybe(rng.integers(0, 2, n), 0.8), "tsah": maybe(rng.integers(0, 2, n), 0.8)})
    admission = pd.DataFrame({
        "center": "A", "patient_id": ids, "adm_marshall_ct_class": maybe(rng.integers(1, 7, n), 0.6),
        "adm_marshall_ct_class_missing": rng.choice(["", "tsah", "basal_cisterns,tsah"], n),
        "adm_ct_edh": maybe(rng.integers(0, 2, n), 0.9), "adm_ct_edh_source": rng.choice(["measured", "reviewer"], n),
        "adm_ct_tsah": maybe(rng.integers(0, 2, n), 0.5),
        "adm_ct_tsah_source": rng.choice(["clinical_record", "reviewer", "unknown"], n),
    }).iloc[: n - 20]  # the last 20 patients have no scan
    got = impact_ct_table(table, admission)
    adm = admission.set_index(["center", "patient_id"])
    for i, row in table.iterrows():
        key = (row["center"], row["patient_id"])
        values, sources = impact_ct_inputs(row[["marshall_ct", "edh", "tsah"]].to_dict(),
                                           adm.loc[key].to_dict() if key in adm.index else None)
        for name in ("marshall_ct", "edh", "tsah"):
            assert (values[name] is None and np.isnan(got.at[i, name])) or values[name] == got.at[i, name]
            assert sources[name] == got.at[i, f"{name}_source"], (i, name)
