"""From a number on the Biomarkers or Outcome models page to the series, mask, model version and slices it came
from: picking the value in one list opens its provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd
from dashboard_apptest import COORD2, STAT, page
from dashboard_registry_factory import mask_zyx

from dashboard import provenance
from vocabulary.labels import EAH, EDEMA, IPH, IVH


def test_feature_classes_follow_the_label_map() -> None:
    assert provenance.feature_classes("hematoma_ml") == (IPH,)
    assert provenance.feature_classes("adm_hematoma_ml") == (IPH,)
    assert provenance.feature_classes("peak_edema_ml") == (EDEMA,)
    assert provenance.feature_classes("eah_max_thickness_mm") == (EAH,)
    assert provenance.feature_classes("ivh_present") == (IVH,)
    assert provenance.feature_classes("total_lesion_ml") == (IPH, EDEMA)
    assert provenance.feature_classes("hemorrhage_ml") == (IPH, EAH, IVH)
    assert provenance.feature_classes("midline_shift_mm") == (IPH, EAH, EDEMA, IVH)


def test_class_slices_lists_slice_numbers_as_ranges() -> None:
    labels = np.zeros((10, 2, 2), np.uint8)
    labels[[2, 3, 4, 7], 0, 0] = IPH
    labels[5, 1, 1] = EDEMA
    table = provenance.class_slices(labels, (IPH, EDEMA), voxel_ml=0.5).set_index("Lesion class")
    assert table.loc["Intraparenchymal hematoma / contusion", "Slices with the class"] == "3–5, 8"
    assert table.loc["Intraparenchymal hematoma / contusion", "Volume (mL)"] == "2.00"
    assert table.loc["Perilesional edema", "Slices with the class"] == "6"
    assert provenance.slice_ranges([]) == "none"


def test_patient_values_read_admission_peak_and_last_scans() -> None:
    features = pd.DataFrame({"series_uid": ["a1", "a2", "b1"], "source": ["segmentation"] * 3,
                             "pseudo_id": ["A", "A", "B"], "center": ["X", "X", "Y"],
                             "days_from_injury": [0.2, 2.0, 0.5], "edema_ml": [5.0, 9.0, 7.0],
                             "largest_lesion_left": [1.0, 0.0, 1.0]})
    assert provenance.imaging_variables(["age", "log_adm_hematoma_ml", "log_peak_edema_ml", "adm_lesion_left"]) == [
        "adm_hematoma_ml", "peak_edema_ml", "adm_lesion_left"]
    peak = provenance.patient_values(features, "peak_edema_ml")
    assert peak[["pseudo_id", "series_uid", "value"]].values.tolist() == [["A", "a2", 9.0], ["B", "b1", 7.0]]
    first = provenance.patient_values(features, "adm_edema_ml")
    assert first.set_index("pseudo_id").loc["A", "series_uid"] == "a1"
    assert provenance.patient_values(features, "adm_lesion_left").set_index("pseudo_id").loc["A", "value"] == 1.0


def _facts(at) -> dict[str, str]:  # noqa: ANN001 - an AppTest
    frame = next(d.value for d in at.dataframe if list(d.value.columns) == ["What", "Value"])
    return dict(zip(frame["What"], frame["Value"], strict=True))


def test_biomarker_value_leads_to_series_mask_model_and_slices(small) -> None:
    _, uids = small
    at = page("4_Biomarkers.py", STAT)
    trace = at.selectbox(key="bio_trace_hematoma_ml")
    assert trace.value is None and trace.options[0].startswith("12.50 · pA1aaaaaaaaaaaaa · IT01 · day 0.2")
    trace.set_value(0).run()  # the one pick after opening the list
    assert not at.exception
    facts = _facts(at)
    assert facts["Series reference"] == "…" + uids["S1"][-8:] and facts["Series description"] == "Head S1"
    assert facts["Center"] == "IT01" and facts["Mask source"] == "Automatic segmentation"
    assert facts["Segmentation model"] == "unet2d" and facts["Model version"] == "v1" and facts["Device"] == "cpu"
    assert facts["Mask"] == f"masks/auto/{uids['S1']}.nii.gz"  # relative to the data home, no server folders
    slices = next(d.value for d in at.dataframe if "Slices with the class" in d.value.columns)
    truth = mask_zyx()
    expected = provenance.slice_ranges([int(z) + 1 for z in np.flatnonzero((truth == IPH).any(axis=(1, 2)))])
    assert slices["Slices with the class"].tolist() == [expected] and expected != "none"


def test_fit_value_leads_to_the_patients_admission_series(small) -> None:
    _, uids = small
    at = page("5_Outcome_models.py", STAT)
    assert not at.exception
    fit_id = at.selectbox(key="om_fit").value
    variable = at.selectbox(key=f"om_trace_var_{fit_id}")
    assert variable.value == "adm_hematoma_ml" and variable.options[0] == "Hematoma volume on admission (mL)"
    trace = at.selectbox(key=f"om_trace_{fit_id}_adm_hematoma_ml")
    assert [o.split(" · ")[1] for o in trace.options] == ["pA1aaaaaaaaaaaaa", "pA2aaaaaaaaaaaaa"]
    trace.set_value(0).run()
    facts = _facts(at)
    assert facts["Series reference"] == "…" + uids["S1"][-8:]  # pA1's first scan, not the larger day-2.5 one
    assert facts["Model version"] == "v1"


def test_coordinator_traces_only_own_center_values(small) -> None:
    at = page("4_Biomarkers.py", COORD2)
    assert [o.split(" · ")[2] for o in at.selectbox(key="bio_trace_hematoma_ml").options] == ["IT02"]
