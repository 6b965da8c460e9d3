"""The data dictionary names every variable the packages produce, with words and units people read."""

from __future__ import annotations

import pandas as pd

from vocabulary import dictionary as dd
from vocabulary.labels import LESION_CLASSES


def test_every_name_the_packages_produce_has_an_entry() -> None:
    from biomarkers.timecourse import PATIENT_FEATURES
    from registry import dicom_headers
    from registry.clinical.patient_table import CLINICAL_EXPORT, OUTCOME_EXPORT
    from registry.collection.progress import MISSING_ITEMS, PROGRESS_COLUMNS
    from registry.ingest import report
    from registry.qc.series_qc import QC_REASONS

    rejections = [getattr(dicom_headers, n) for n in ("NOT_DICOM", "UNREADABLE", "TRUNCATED", "MISSING_SOP_UID",
                                                      "MISSING_SERIES_UID", "MISSING_STUDY_UID", "MISSING_PATIENT_ID",
                                                      "ZIP_ARCHIVE", "COMPRESSED_FILE")]
    rejections += [getattr(report, n) for n in ("NO_CENTER", "DICOMDIR", "CONFLICT", "SERIES_CONFLICT",
                                                       "SERIES_INCONSISTENT", "CHANGED_DURING_INGEST",
                                                       "ARCHIVE_UNREADABLE", "INVALID_CENTER", "UNREADABLE_FOLDER",
                                                       "STORE_FAILED", "DEFECTIVE_INSTANCE", "ARCHIVE_FAILED",
                                                       "SYMLINK_LOOP", "ZIP_MEMBER_UNREADABLE",
                                                       "CENTER_NAMES_PATIENT", "REGISTRY_COPY")]
    rejections += ["unknown_transfer_syntax", "invalid_value"]  # registry.qc.header_validation's reasons
    names = [*PATIENT_FEATURES, *CLINICAL_EXPORT, *OUTCOME_EXPORT, *PROGRESS_COLUMNS, *MISSING_ITEMS, *QC_REASONS,
             *rejections, *(f"{c.key}_ml" for c in LESION_CLASSES), *_series_feature_names()]
    missing = [n for n in names if dd.entry(n) is None]
    assert missing == []


def _series_feature_names() -> list[str]:
    """The scalar per-series features biomarkers computes, on a small head with every lesion class."""
    import numpy as np

    from biomarkers.series import series_features

    hu = np.full((12, 64, 64), -1000.0)
    hu[:, 6:58, 6:58] = 35.0
    labels = np.zeros(hu.shape, np.uint8)
    labels[4:8, 20:30, 14:24] = 1
    labels[4:8, 10:40, 50:54] = 2
    labels[4:8, 31:33, 14:24] = 3
    labels[5:7, 30:34, 36:40] = 4
    values, _lesions = series_features(hu, labels, (5.0, 1.0, 1.0))
    return list(values)


def test_labels_units_and_definitions_read_as_words() -> None:
    assert dd.heading("adm_hematoma_ml") == "Hematoma volume on admission (mL)"
    assert dd.unit("glucose_mmol_l") == "mmol/L" and dd.unit("edema_growth_ml_per_day") == "mL/day"
    assert dd.label("no_qc_passed_admission_scan") == "Admission scan not yet usable"
    assert dd.label("too_few_slices") == "Too few slices"
    assert "Values: 1 dead" in dd.describe("gos_6m")
    assert dd.label("iph_ml").startswith("Intraparenchymal") and dd.unit("ivh_ml") == "mL"
    # an unknown name still reads as words, never snake_case
    assert dd.label("brand_new_score") == "Brand new score"
    assert "not in the data dictionary" in dd.describe("brand_new_score")
    for e in dd.ENTRIES.values():
        assert "_" not in e.label, e  # no snake_case on screen
        assert e.definition.strip(), e


def test_display_columns_and_the_whole_table() -> None:
    frame = pd.DataFrame(columns=["center", "adm_edema_ml", "qc_failed_auto", "qc_auto_failed", "weird_col"])
    shown = dd.display_columns(frame)
    assert list(shown.columns) == ["Center", "Edema volume on admission (mL)", "Auto-failed",
                                   "Auto-failed [qc_auto_failed]", "Weird col"]
    table = dd.dictionary_table()
    assert list(table.columns) == ["name", "group", "label", "unit", "definition", "values"]
    assert table["group"].notna().all() and len(table) >= 100
    assert set(dd.dictionary_table(["qc_reason"])["name"]) >= {"localizer", "gantry_tilt"}
