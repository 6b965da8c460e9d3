"""The data dictionary: one place that names, defines and gives the unit of every variable people read.

Clinical variables and outcomes (the import formats of docs/data-formats.md), imaging biomarkers per
series and per patient (including one volume per lesion class of `vocabulary.labels`), collection
counts, missing-item codes and QC / rejection reason codes. Screens, exports and reports take labels
and units from here, so that `adm_hematoma_ml` reads "Hematoma volume on admission (mL)" everywhere.

    label("adm_hematoma_ml")        -> "Hematoma volume on admission"
    unit("adm_hematoma_ml")         -> "mL"
    heading("adm_hematoma_ml")      -> "Hematoma volume on admission (mL)"
    describe("adm_hematoma_ml")     -> the definition
    display_columns(df)             -> df with its known columns renamed to headings
    dictionary_table()              -> the whole dictionary as a DataFrame (name, group, label, unit, ...)

A name not in the dictionary is shown as words (`some_new_thing` -> "Some new thing"), never as
snake_case, so a screen never breaks on a column added later; `tests/vocabulary` checks that every
name the packages produce has an entry.

Leftmost package: imports nothing of the project but `vocabulary.labels`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from vocabulary.labels import LESION_CLASSES

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Entry:
    name: str  # the machine name: column, feature, code
    group: str  # see GROUPS
    label: str  # what people read, sentence case, no unit
    unit: str  # "" when dimensionless, a count, a code or free text
    definition: str
    values: str = ""  # allowed values / coding, when they are codes


GROUPS = {
    "identifiers": "Identifiers",
    "clinical": "Clinical variables at admission",
    "outcome": "Outcomes",
    "series": "Series and acquisition",
    "biomarker_series": "Imaging biomarkers per series",
    "biomarker_patient": "Imaging biomarkers per patient",
    "collection": "Collection counts",
    "target": "Collection targets",
    "missing_item": "Missing items (what a center still owes)",
    "qc_reason": "Automatic QC reasons",
    "rejection": "Rejected files",
    "qc_status": "QC status",
    "mask_source": "Mask sources",
    "provenance": "Where a value comes from",
    "summary": "Summary statistics",
    "user": "Dashboard users",
    "audit": "Audit trail: actions and what they acted on",
    "lesion_class": "Lesion classes of the label map",
    "evaluation": "Segmentation evaluation",
    "model_metric": "Outcome-model performance",
    "model_quality": "Model quality from annotators' corrections",
}

_ENTRIES: list[Entry] = []


def _add(group: str, name: str, label: str, unit: str, definition: str, values: str = "") -> None:
    _ENTRIES.append(Entry(name, group, label, unit, definition, values))


# --- identifiers ---------------------------------------------------------------------------------
_add("identifiers", "center", "Center", "", "Center code, e.g. IT064 (CREACTIVE style).")
_add("identifiers", "patient_id", "Patient ID (center's)", "",
     "The center's own study code for the patient, as in the DICOM headers; replaced by the pseudonym at ingest.")
_add("identifiers", "pseudo_id", "Patient (pseudonym)", "",
     "Keyed hash (HMAC-SHA256) of center and patient ID, 20 hexadecimal characters; the only patient "
     "identifier the registry keeps.")
_add("identifiers", "short_id", "Short reference", "",
     "The first 8 characters of a UID's last component or of a pseudonym: enough to search for it.")
_add("identifiers", "series_uid", "Series", "", "SeriesInstanceUID (DICOM (0020,000E)).")
_add("identifiers", "series_instance_uid", "Series", "", "SeriesInstanceUID (DICOM (0020,000E)).")
_add("identifiers", "study_instance_uid", "Study", "", "StudyInstanceUID (DICOM (0020,000D)).")

# --- clinical (docs/data-formats.md, clinical.csv) ---------------------------------------------
_add("clinical", "injury_datetime", "Time of injury", "", "Date and time of injury (ISO 8601).")
_add("clinical", "age", "Age", "years", "Age at injury.")
_add("clinical", "sex", "Sex", "", "Sex.", "M male, F female")
_add("clinical", "gcs_total", "GCS total", "points", "Glasgow Coma Scale total at admission.", "3-15")
_add("clinical", "gcs_motor", "GCS motor score", "points",
     "Glasgow Coma Scale motor score at admission (IMPACT: 5-6 localises/obeys is the reference).",
     "1 none, 2 extension, 3 abnormal flexion, 4 normal flexion, 5 localises, 6 obeys")
_add("clinical", "pupils_unreactive", "Unreactive pupils", "pupils", "Number of pupils unreactive to light.",
     "0 both reactive, 1 one unreactive, 2 both unreactive")
_add("clinical", "hypoxia", "Hypoxia", "", "Hypoxia before or at admission.", "0 no, 1 yes")
_add("clinical", "hypotension", "Hypotension", "", "Hypotension before or at admission.", "0 no, 1 yes")
_add("clinical", "glucose_mmol_l", "Glucose", "mmol/L", "Blood glucose at admission.")
_add("clinical", "hemoglobin_g_dl", "Hemoglobin", "g/dL", "Blood hemoglobin at admission.")
_add("clinical", "marshall_ct", "Marshall CT class", "", "Marshall CT classification read by the center "
     "(Marshall et al. 1991).", "1-6 for I-VI")
_add("clinical", "tsah", "Traumatic SAH", "", "Traumatic subarachnoid hemorrhage on admission CT.", "0 no, 1 yes")
_add("clinical", "edh", "Epidural hematoma", "", "Epidural hematoma on admission CT.", "0 no, 1 yes")
_add("clinical", "major_extracranial_injury", "Major extracranial injury", "", "Major extracranial injury "
     "(CRASH definition).", "0 no, 1 yes")
_add("clinical", "evacuated_mass_lesion", "Evacuated mass lesion", "", "A mass lesion surgically evacuated "
     "(craniotomy or burr-hole evacuation of a hematoma), from the clinical record's surgery field; optional "
     "column. Makes the patient's Marshall CT class V (Marshall et al. 1991), source clinical record.",
     "0 no, 1 yes")

# --- outcomes (outcomes.csv) and derived --------------------------------------------------------
_add("outcome", "gos_6m", "GOS at 6 months", "", "Glasgow Outcome Scale at 6 months.",
     "1 dead, 2 vegetative, 3 severe disability, 4 moderate disability, 5 good recovery")
_add("outcome", "died", "Died", "", "Death within follow-up.", "0 no, 1 yes")
_add("outcome", "days_to_death_or_censor", "Days to death or last contact", "days",
     "Days from injury to death, or to last contact if alive.")
_add("outcome", "unfavourable", "Unfavourable outcome", "", "GOS 1-3 at 6 months (dead, vegetative or "
     "severe disability).", "0 no, 1 yes")
_add("outcome", "mortality", "Mortality", "", "Death within follow-up (GOS 1).", "0 no, 1 yes")

# --- series and acquisition ----------------------------------------------------------------------
_add("series", "days_from_injury", "Day from injury", "days", "Days from injury to the acquisition of the series.")
_add("series", "description", "Series description", "", "SeriesDescription (DICOM (0008,103E)).")
_add("series", "slices", "Slices", "", "Number of image files (instances) in the series.")
_add("series", "instance_count", "Slices", "", "Number of image files (instances) in the series.")
_add("series", "slice_thickness", "Slice thickness", "mm", "SliceThickness (DICOM (0018,0050)).")
_add("series", "qc_status", "QC status", "", "Quality-control status of the series.",
     "pending, auto_failed, passed, failed")
_add("series", "qc_reasons", "QC reasons", "", "Why the series failed QC (automatic reasons or the reviewer's).")
_add("series", "phi_tags", "Identifiers in headers", "", "DICOM tags that still carried direct identifiers "
     "(the tag names, never the values).")
_add("series", "n_series", "Series", "", "CT series of the patient.")
_add("series", "n_series_qc_passed", "Series passed QC", "", "CT series of the patient that passed QC.")
_add("series", "n_studies", "Studies", "", "CT studies (scanning sessions) of the patient.")
_add("series", "acquisition_datetime", "Acquisition time", "", "AcquisitionDate and AcquisitionTime of the series "
     "(DICOM (0008,0022), (0008,0032)).")
_add("series", "timepoint", "Scan number", "", "The patient's scans numbered 0, 1, ... by day from injury.")
# Provenance of the biomarkers of a series: which mask they were measured on.
_add("series", "source", "Mask source", "", "What drew the mask the biomarkers were measured on.",
     "segmentation (a model), manual (an annotator), truth (a synthetic study's known masks)")
_add("series", "mask_model", "Mask model", "", "The model that made the mask (name and the first 12 characters of "
     "its checkpoint hash), or 'manual annotation' / 'truth mask'. Biomarkers of different models are not "
     "directly comparable.")
_add("series", "mask_models", "Mask models", "", "The mask models of the patient's scans, ';'-separated.")
_add("series", "definitions_version", "Biomarker definitions", "", "Version of the biomarker definitions "
     "(biomarkers.series.DEFINITIONS_VERSION) the values were computed with.")
_add("series", "mask_sha256", "Mask checksum", "", "SHA-256 of the mask file the values were measured on.")
_add("series", "segmentation_run_id", "Segmentation run", "", "Registry id of the segmentation run that made the "
     "mask (empty for manual and truth masks).")
_add("series", "annotation_id", "Annotation", "", "Registry id of the manual annotation the mask came from.")
_add("series", "computed_at", "Computed at", "", "When the biomarkers were computed (UTC).")
_add("series", "scan_days", "Scan days", "days", "Days from injury of the studies with a QC-passed series, "
     "';'-separated.")

# --- imaging biomarkers per series (biomarkers.series) ---------------------------------------------
_B = "biomarker_series"
_add(_B, "hematoma_ml", "Hematoma volume", "mL", "Intraparenchymal hematoma / contusion volume (label 1): "
     "voxel count x voxel volume.")
_add(_B, "edema_ml", "Edema volume", "mL", "Perilesional edema volume (voxel count x voxel volume).")
_add(_B, "total_lesion_ml", "Total lesion volume", "mL", "Hematoma plus edema volume.")
_add(_B, "relative_edema", "Relative edema", "ratio", "Edema volume / hematoma volume (empty without hematoma).")
_add(_B, "lesion_count", "Lesions", "", "Hematoma lesions: 3D 26-connected components of at least 0.05 mL.")
_add(_B, "largest_lesion_ml", "Largest lesion volume", "mL", "Volume of the largest hematoma lesion.")
_add(_B, "largest_lesion_left", "Largest lesion on the left", "", "Side of the largest lesion by the "
     "estimated midline plane.", "1 left, 0 right, empty if none")
_add(_B, "largest_lesion_region", "Region of the largest lesion", "", "Coarse brain region of the largest lesion.")
_add(_B, "side", "Lesion side", "", "Side of the counted lesions.", "left, right, bilateral, none")
_add(_B, "abc2_ml", "ABC/2 volume of the largest lesion", "mL", "Kothari's ABC/2 estimate of the largest "
     "lesion, to set against its segmented volume.")
_add(_B, "midline_shift_mm", "Midline shift", "mm", "Median displacement of the septum between the lateral "
     "ventricles from the ideal midline plane (absolute).")
_add(_B, "midline_shift_signed_mm", "Midline shift (signed)", "mm", "Midline shift, + toward the patient's left.")
_add(_B, "midline_shift_method", "Midline shift method", "", "How the midline shift was measured.")
_add(_B, "midline_septum_rows", "Septum rows measured", "", "Image rows on which the septum was found.")
_add(_B, "midline_plane_source", "Midline plane source", "", "How the ideal midline plane was estimated.")
for _axis in "xyz":
    _add(_B, f"midline_normal_{_axis}", f"Midline plane normal, {_axis}", "",
         f"The {_axis} component (LPS) of the unit normal of the ideal midline plane.")
for _tissue, _what in (("intracranial", "Intracranial"), ("parenchyma", "Parenchyma"),
                       ("ventricle", "Lateral ventricle")):
    _add(_B, f"{_tissue}_ml", f"{_what} volume", "mL", f"{_what} volume on the tissue grid.")
    _add(_B, f"{_tissue}_left_ml", f"{_what} volume, left", "mL", f"{_what} volume left of the midline plane.")
    _add(_B, f"{_tissue}_right_ml", f"{_what} volume, right", "mL", f"{_what} volume right of the midline plane.")
_add(_B, "lesion_left_ml", "Lesion volume, left", "mL", "Hematoma and edema volume left of the midline plane.")
_add(_B, "lesion_right_ml", "Lesion volume, right", "mL", "Hematoma and edema volume right of the midline plane.")
for _what in ("parenchyma", "ventricles", "lesion"):
    _add(_B, f"asymmetry_{_what}", f"Asymmetry of {_what}", "ratio",
         f"(left - right) / ((left + right) / 2) of the {_what} volume.")
_add(_B, "parenchyma_mean_hu", "Parenchyma mean density", "HU", "Mean Hounsfield units of the parenchyma.")
_add(_B, "hematoma_mean_hu", "Hematoma mean density", "HU", "Mean Hounsfield units inside the hematoma.")
_add(_B, "edema_mean_hu", "Edema mean density", "HU", "Mean Hounsfield units inside the edema.")
# One volume per lesion class of vocabulary.labels (iph_ml, eah_ml, edema_ml, ivh_ml), plus the class facts.
for _c in LESION_CLASSES:
    if not any(e.name == f"{_c.key}_ml" for e in _ENTRIES):
        _add(_B, f"{_c.key}_ml", f"{_c.name} volume", "mL", f"{_c.description} Voxels of label {_c.value} "
             "x voxel volume.")
_add(_B, "eah_count", "Extra-axial collections", "", "Connected extra-axial hemorrhage collections (label 2).")
_add(_B, "eah_largest_ml", "Largest extra-axial collection", "mL", "Volume of the largest extra-axial collection.")
_add(_B, "eah_largest_left", "Largest extra-axial collection on the left", "",
     "Side of the largest extra-axial collection by the midline plane.", "1 left, 0 right, empty if none")
_add(_B, "eah_max_thickness_mm", "Extra-axial collection, maximum thickness", "mm",
     "Maximal thickness of the largest extra-axial collection: on axial slices, 2 x the largest in-plane "
     "distance to its edge minus one pixel (within one pixel, never more).")
_add(_B, "ivh_present", "Intraventricular hemorrhage present", "", "At least 0.05 mL of label 4.", "0 no, 1 yes")
_add(_B, "hemorrhage_ml", "Hemorrhage volume (all classes)", "mL",
     "Intraparenchymal, extra-axial and intraventricular blood together (labels 1, 2 and 4).")
_add(_B, "edh_ml", "Epidural hematoma volume", "mL",
     "Extra-axial collections (label 2) that are lentiform: shape index t / sqrt(V / t) >= 0.35, with t the "
     "maximal in-plane thickness (mm) and V the volume (mm3) of the collection (biomarkers.extra_axial_shape; "
     "all phantom collections of 5-60 mL classified right; not measured on real epidurals).")
_add(_B, "sdh_ml", "Subdural hematoma volume", "mL",
     "Extra-axial collections (label 2) that are crescentic: shape index below 0.35 (see edh_ml).")
_add(_B, "edh_count", "Epidural collections", "", "Extra-axial collections of at least 0.05 mL classified lentiform.")
_add(_B, "sdh_count", "Subdural collections", "", "Extra-axial collections of at least 0.05 mL classified "
     "crescentic.")
_add(_B, "basal_cisterns", "Basal cisterns", "", "State of the perimesencephalic cisterns from the CSF volume in "
     "a window 25-45 mm below the lateral ventricles, within 18 mm of the midline, against the normal volume "
     "(biomarkers.cisterns); unknown where the window cannot be placed or the scan does not reach it.",
     "present, compressed, absent, unknown")
_add(_B, "basal_cisterns_reason", "Why the basal cisterns are unknown", "", "Empty when they were measured.")
_add(_B, "cistern_csf_ml", "Basal cistern CSF volume", "mL", "CSF (-10 to 15 HU after a 3x3 mean) in the "
     "cistern window.")
_add(_B, "cistern_csf_ratio", "Basal cistern CSF, ratio to normal", "ratio", "cistern_csf_ml / 5 mL (the "
     "normal volume of the synthetic heads): present >= 0.5, absent < 0.1, compressed in between.")
_SCORE_TEXT = {
    "marshall_ct_class": ("Marshall CT class", "Marshall et al., J Neurosurg 1991: I no visible pathology; II "
                          "cisterns present, shift 0-5 mm, no high/mixed-density lesion > 25 mL; III cisterns "
                          "compressed or absent; IV shift > 5 mm; V evacuated mass lesion; VI non-evacuated "
                          "lesion > 25 mL.", "1-6 (I-VI)"),
    "rotterdam_ct_score": ("Rotterdam CT score", "Maas et al., Neurosurgery 2005: basal cisterns normal 0 / "
                           "compressed 1 / absent 2; midline shift > 5 mm 1; epidural mass absent 1; IVH or tSAH "
                           "present 1; sum + 1.", "1-6"),
    "helsinki_ct_score": ("Helsinki CT score", "Raj et al., Neurosurgery 2014: SDH +2, ICH +2, EDH -3, mass "
                          "lesion > 25 mL +2, IVH +3, suprasellar cisterns compressed +1 / obliterated +5.",
                          "-3 to 14"),
}
for _name, (_label, _definition, _values) in _SCORE_TEXT.items():
    _add(_B, _name, _label, "", _definition + " Empty when unknown components make it a range (see _low, _high).",
         _values)
    _add(_B, f"{_name}_low", f"{_label}, lowest possible", "", f"The lowest {_label} over the values the unknown "
         "components could take; equals the score when it is known.", _values)
    _add(_B, f"{_name}_high", f"{_label}, highest possible", "", f"The highest {_label} over the values the "
         "unknown components could take; equals the score when it is known.", _values)
    _add(_B, f"{_name}_missing", f"{_label}, unknown components", "", "Comma-separated components that are "
         "unknown and change the score; empty when it is known.")
_COMPONENTS = {
    "basal_cisterns": ("Basal cisterns used in the scores", "present, compressed, absent, empty if unknown"),
    "midline_shift_over_5mm": ("Midline shift over 5 mm", "0 no, 1 yes, empty if unknown"),
    "mass_lesion_over_25ml": ("Mass lesion over 25 mL", "0 no, 1 yes: the largest intraparenchymal hematoma "
                              "or extra-axial collection"),
    "evacuated": ("Evacuated mass lesion", "0 no, 1 yes"),
    "tsah": ("Traumatic subarachnoid hemorrhage", "0 no, 1 yes, empty if unknown (not measurable: no class)"),
    "ivh": ("Intraventricular hemorrhage", "0 no, 1 yes"),
    "edh": ("Epidural hematoma", "0 no, 1 yes"),
    "sdh": ("Subdural hematoma", "0 no, 1 yes"),
    "ich": ("Intracerebral hematoma", "0 no, 1 yes"),
    "visible_pathology": ("Visible pathology", "0 no, 1 yes: any blood or edema of at least 0.05 mL"),
}
for _name, (_label, _values) in _COMPONENTS.items():
    _add(_B, f"ct_{_name}", _label, "", f"The {_label.lower()} component of the CT classifications, as they "
         "used it (measured, reviewer-set or from the clinical record).", _values)
    _add(_B, f"ct_{_name}_source", f"{_label}, source", "", "Where the component's value came from.",
         "measured, reviewer, clinical_record, not_recorded (taken as no), unknown")
_add(_B, "ich_probability", "Probability of intracranial hemorrhage", "probability",
     "Calibrated probability that the scan holds any hemorrhage (labels 1, 2, 4): a logistic function of "
     "ln(segmented hemorrhage mL + 0.05) with the calibration of the segmentation model (name and version) that "
     "made the mask, fitted on that model's segmentations with known truth "
     "(biomarkers/data/ich_calibration_<model>.json, bench/ich_detection_bench.py --fit --model M). NaN for a "
     "mask of a model without its own calibration, a manual annotation or a truth mask (see "
     "ich_probability_reason).")
_add(_B, "ich_detected", "Hemorrhage detected", "", "ich_probability at or above the operating point stored with "
     "the calibration of the model that made the mask; NaN where ich_probability is.", "0 no, 1 yes")
_add(_B, "ich_calibration", "Hemorrhage calibration used", "", "The segmentation model (name and the first 12 "
     "characters of its version) whose calibration gave ich_probability, ich_detected and p_<class>_present.",
     "model name and version, or none")
_add(_B, "ich_probability_reason", "Why no hemorrhage probability", "", "Why ich_probability and "
     "p_<class>_present are NaN (for example 'no calibration for model X'); empty when they are computed.")
for _c in LESION_CLASSES:
    _add(_B, f"p_{_c.key}_present", f"Probability of {_c.name.lower()}", "probability",
         f"Calibrated probability that the scan holds {_c.name.lower()} (label {_c.value}), from its segmented "
         "volume as for ich_probability, with the same model's calibration; NaN where that calibration has no "
         "truth for the class (BLAST-CT's has none for edema).")

# --- imaging biomarkers per patient (biomarkers.timecourse; docs/data-formats.md) --------------------
_P = "biomarker_patient"
_add(_P, "adm_hematoma_ml", "Hematoma volume on admission", "mL", "Hematoma volume on the first scan.")
_add(_P, "adm_edema_ml", "Edema volume on admission", "mL", "Edema volume on the first scan.")
_add(_P, "adm_lesion_count", "Lesions on admission", "", "Hematoma lesions on the first scan.")
_add(_P, "adm_midline_shift_mm", "Midline shift on admission", "mm", "Midline shift on the first scan.")
_add(_P, "adm_lesion_left", "Admission lesion on the left", "", "Side of the largest lesion on the first scan.",
     "1 left, 0 right, empty if none")
_add(_P, "peak_hematoma_ml", "Peak hematoma volume", "mL", "Largest hematoma volume over all scans.")
_add(_P, "peak_edema_ml", "Peak edema volume", "mL", "Largest edema volume over all scans.")
_add(_P, "peak_edema_day", "Day of peak edema", "days", "Day from injury of the largest edema volume.")
_add(_P, "last_hematoma_ml", "Hematoma volume on the last scan", "mL", "Hematoma volume on the last scan.")
_add(_P, "last_edema_ml", "Edema volume on the last scan", "mL", "Edema volume on the last scan.")
_add(_P, "hematoma_expansion_ml", "Hematoma expansion", "mL", "Second scan minus first (empty with one scan).")
_add(_P, "hematoma_expansion_pct", "Hematoma expansion", "%", "Expansion relative to the admission volume.")
_add(_P, "significant_expansion", "Significant hematoma expansion", "", "Expansion above 6 mL or 33 %.",
     "0 no, 1 yes")
_add(_P, "edema_growth_ml_per_day", "Edema growth rate", "mL/day", "(peak edema - admission edema) / "
     "(peak day - admission day); 0 if the peak is on admission.")
_add(_P, "n_scans", "Scans", "", "Number of CT scans of the patient.")
for _c in LESION_CLASSES:
    _add(_P, f"adm_{_c.key}_ml", f"{_c.name} volume on admission", "mL", f"{_c.name} volume on the first scan.")
_add(_P, "adm_eah_max_thickness_mm", "Extra-axial collection thickness on admission", "mm",
     "Maximum thickness of the extra-axial hemorrhage on the first scan.")
_add(_P, "adm_ivh_present", "Intraventricular hemorrhage on admission", "", "At least 0.05 mL of IVH on the "
     "first scan.", "0 no, 1 yes")
_add(_P, "adm_marshall_ct_class", "Marshall CT class on admission", "", "marshall_ct_class of the first scan; "
     "empty when unknown components make it a range.", "1-6 (I-VI)")
_add(_P, "adm_marshall_ct_class_missing", "Marshall CT class on admission, unknown components", "",
     "Components that are unknown and change the admission Marshall class.")
_add(_P, "adm_rotterdam_ct_score", "Rotterdam CT score on admission", "", "rotterdam_ct_score of the first scan.",
     "1-6")
_add(_P, "adm_helsinki_ct_score", "Helsinki CT score on admission", "", "helsinki_ct_score of the first scan.",
     "-3 to 14")
_add(_P, "adm_ct_edh", "Epidural hematoma on admission", "", "The EDH component of the first scan's CT "
     "classifications.", "0 no, 1 yes")
_add(_P, "adm_ct_edh_source", "Epidural hematoma on admission, source", "", "Where the component came from.",
     "measured, reviewer, clinical_record, not_recorded, unknown")
_add(_P, "adm_ct_tsah", "tSAH on admission", "", "The tSAH component of the first scan's CT classifications.",
     "0 no, 1 yes, empty if unknown")
_add(_P, "adm_ct_tsah_source", "tSAH on admission, source", "", "Where the component came from.",
     "measured, reviewer, clinical_record, not_recorded, unknown")
_add(_P, "adm_hemorrhage_ml", "Hemorrhage volume on admission (all classes)", "mL",
     "Intraparenchymal, extra-axial and intraventricular blood together on the first scan.")
# The analysis table's IMPACT CT predictors (marshall_ct, edh, tsah) and where each came from (prognosis.ct_inputs).
for _name in ("marshall_ct", "edh", "tsah"):
    _clinical = next(e for e in _ENTRIES if e.group == "clinical" and e.name == _name)
    _add(_P, f"{_name}_source", f"{_clinical.label}, source", "",
         f"Where the analysis table's {_name} came from: the admission scan's computed CT classification where it "
         "is known (not a range), with the source of the component in brackets, else the clinical record.",
         "computed (...), clinical record, unknown")

# --- collection counts (registry.collection.progress, dashboard) -----------------------------------------------
_C = "collection"
for _name, _label, _definition in (
    ("patients", "Patients", "Patients registered (from DICOM or clinical data)."),
    ("with_ct", "With CT", "Patients with at least one CT series."),
    ("series", "Series", "CT series received."),
    ("qc_passed", "QC passed", "Series passed by a reviewer."),
    ("qc_failed_auto", "Auto-failed", "Series failed by the automatic checks, not yet reviewed."),
    ("qc_auto_failed", "Auto-failed", "Series failed by the automatic checks, not yet reviewed."),
    ("qc_failed_manual", "QC failed", "Series failed by a reviewer."),
    ("qc_failed", "QC failed", "Series failed by a reviewer."),
    ("qc_pending", "QC pending", "Series waiting for a reviewer's decision."),
    ("with_clinical", "With clinical data", "Patients with a clinical record."),
    ("with_outcome", "With outcome", "Patients with a 6-month outcome."),
    ("with_follow_up", "With follow-up", "Patients with a second CT study that has not failed QC."),
    ("with_followup", "With follow-up", "Patients with a second CT study that has not failed QC."),
    ("series_annotated", "Annotated", "Series with a manual annotation (mask)."),
    ("series_segmented", "Segmented", "Series segmented by a model."),
):
    _add(_C, _name, _label, "", _definition)

# --- collection targets (dashboard targets; registry.collection.targets) ------------------------------------
for _name, _label in (("target_patients", "Patients enrolled"), ("target_series_qc_passed", "Series passed QC"),
                      ("target_series_annotated", "Series manually annotated"),
                      ("target_series_segmented", "Series segmented")):
    _add("target", _name, _label, "", f"Collection target: {_label.lower()}.")

# --- missing items (registry.collection.progress.missing_items) ------------------------------------------------
_M = "missing_item"
_add(_M, "no_ct", "No CT received", "", "The patient has clinical data or an outcome but no CT series.")
_add(_M, "no_clinical", "No clinical data", "", "The patient has no clinical record (clinical.csv).")
_add(_M, "no_outcome", "No 6-month outcome", "", "The patient has no outcome record (outcomes.csv).")
_add(_M, "no_qc_passed_admission_scan", "Admission scan not yet usable", "",
     "The patient's first CT study has no series that passed QC: it failed QC, or waits for review.")
_add(_M, "series_pending_review", "Series waiting for QC review", "", "A series no reviewer has passed or failed yet.")

# --- automatic QC reasons (registry.qc.series_qc.QC_REASONS) and rejections (registry.ingest.report) ----
_Q = "qc_reason"
_add(_Q, "not_ct", "Not a CT image", "", "The modality is not CT.")
_add(_Q, "localizer", "Localizer (scout) image", "", "Localizer / scout image(s), not a head volume.")
_add(_Q, "missing_geometry", "Slice position or orientation missing", "",
     "ImagePositionPatient or ImageOrientationPatient is missing.")
_add(_Q, "too_few_slices", "Too few slices", "", "Fewer slices than a head volume needs.")
_add(_Q, "duplicate_positions", "Slices at the same position", "", "Two or more slices at the same position.")
_add(_Q, "missing_slices", "Slices missing", "", "A gap between slices larger than the usual step.")
_add(_Q, "nonuniform_spacing", "Uneven slice spacing", "", "Slice steps differ from the median step.")
_add(_Q, "mixed_matrix", "Slices of different sizes", "", "Slices with different Rows x Columns.")
_add(_Q, "insufficient_coverage", "Head not fully covered", "", "The slices span too little of the head.")
_add(_Q, "gantry_tilt", "Tilted gantry", "", "Slices are sheared, not stacked along their normal.")
_add(_Q, "invalid_pixel_spacing", "Pixel spacing invalid", "",
     "PixelSpacing missing, not a number, zero, negative or implausibly large.")
_add(_Q, "invalid_slice_thickness", "Slice thickness invalid", "",
     "SliceThickness not a number, zero, negative or implausibly large.")
_add(_Q, "invalid_matrix", "Image size invalid", "", "Rows or Columns missing or zero.")
_add(_Q, "pixel_data_mismatch", "Pixel data of the wrong size", "",
     "PixelData size differs from Rows x Columns x BitsAllocated.")
_add(_Q, "unsupported_bits_allocated", "Unsupported bits per pixel", "", "BitsAllocated other than 8, 16 or 32.")
_add(_Q, "undecodable_pixel_data", "Pixel data cannot be decoded", "",
     "Compressed pixel data that no installed decoder can decode.")
_add(_Q, "invalid_orientation", "Slice orientation invalid", "",
     "ImageOrientationPatient is not two orthogonal unit vectors (e.g. all zero).")
_add(_Q, "invalid_position", "Slice position invalid", "", "ImagePositionPatient is not a finite position.")
_add(_Q, "implausible_date", "Implausible date", "",
     "A study, series or acquisition date that is no calendar day between 1900 and next year.")
_add(_Q, "burned_in_annotation", "Burned-in annotation", "",
     "BurnedInAnnotation is YES: text is drawn into the pixels; a coordinator checks it before the series is used.")
_R = "rejection"
for _name, _label in (("not_dicom", "Not a DICOM file"), ("unreadable", "File unreadable"),
                      ("truncated", "File truncated"), ("missing_sop_instance_uid", "SOPInstanceUID missing"),
                      ("missing_series_instance_uid", "SeriesInstanceUID missing"),
                      ("missing_study_instance_uid", "StudyInstanceUID missing"),
                      ("missing_patient_id", "PatientID missing"), ("no_center", "No center folder"),
                      ("dicomdir", "DICOMDIR index file"), ("conflict", "Same SOPInstanceUID, different bytes"),
                      ("series_conflict", "Series UID reused by another patient or study"),
                      ("series_inconsistent", "Series headers inconsistent"),
                      ("changed_during_ingest", "File changed while being read"),
                      ("archive_unreadable", "Archived copy unreadable"),
                      ("unknown_transfer_syntax", "Unknown transfer syntax"),
                      ("invalid_value", "Header value invalid for its DICOM type"),
                      ("invalid_center", "Center folder name is not a center code"),
                      ("unreadable_folder", "Folder unreadable"),
                      ("store_failed", "Series could not be stored"),
                      ("defective_instance", "Broken file for a series already reviewed"),
                      ("archive_failed", "De-identified copy could not be written"),
                      ("symlink_loop", "Symbolic link in a loop"),
                      ("zip_archive", "Zip archive not read"),
                      ("zip_member_unreadable", "Zip member cannot be unpacked"),
                      ("compressed_file", "Packed file: unpack it first"),
                      ("center_names_patient", "Center folder named after a patient"),
                      ("registry_copy", "De-identified copy already in this registry")):
    _add(_R, _name, _label, "", f"{_label} (ingest rejection code `{_name}`).")

# --- QC status ----------------------------------------------------------------------------------
for _name, _label, _definition in (("pending", "Waiting for review", "Passed the automatic checks; no reviewer yet."),
                                   ("auto_failed", "Failed automatic checks", "Failed the automatic checks; a "
                                    "reviewer may still pass it."),
                                   ("passed", "Passed", "Passed by a reviewer."),
                                   ("failed", "Failed", "Failed by a reviewer.")):
    _add("qc_status", _name, _label, "", _definition)


# --- mask sources (biomarkers.store: which mask a feature was measured on) -------------------------------
_add("identifiers", "source", "Mask source", "", "Which mask the biomarkers were measured on.",
     "segmentation, manual, truth")
for _name, _label, _definition in (
        ("segmentation", "Automatic segmentation", "The latest segmentation run of the series."),
        ("manual", "Manual annotation", "The latest manual annotation (mask) imported for the series."),
        ("truth", "Reference mask", "A reference (ground-truth) mask of a synthetic or public study.")):
    _add("mask_source", _name, _label, "", _definition)

# --- provenance: series, mask and segmentation run behind a value -----------------------------------------
_V = "provenance"
_add(_V, "series_ref", "Series reference", "", "The last 8 characters of the SeriesInstanceUID.")
_add(_V, "acquired", "Acquired", "", "Acquisition date and time of the series (DICOM (0008,002A)), else the "
     "study's.")
_add(_V, "mask", "Mask", "", "The mask file the value was measured on, relative to the data home.")
_add(_V, "mask_sha256", "Mask checksum", "", "The first 12 hexadecimal characters of the mask file's SHA-256.")
_add(_V, "model_name", "Segmentation model", "", "The network (or ensemble) that made the mask.")
_add(_V, "model_version", "Model version", "", "Content hash of the model checkpoint (its first 12 characters).")
_add(_V, "device", "Device", "", "Where the segmentation ran (cpu, cuda).")
_add(_V, "segmented_at", "Segmented", "", "When the segmentation run finished.")
_add(_V, "annotator", "Annotator", "", "Who drew the manual mask.")
_add(_V, "imported_at", "Imported", "", "When the manual mask was imported.")
_add(_V, "definitions_version", "Feature definitions version", "",
     "Version of the biomarker definitions the value was computed under.")
_add(_V, "computed_at", "Computed", "", "When the biomarkers of the series were computed.")
_add(_V, "lesion_slices", "Slices with the class", "", "Slice numbers (1 = first along the slice normal) "
     "on which the mask has voxels of the class.")
_add(_V, "data_hash", "Data snapshot", "", "Hash of the analysis table a model was fitted on.")

# --- summary statistics (Biomarkers page) ----------------------------------------------------------------
for _name, _label, _definition in (("n", "Series", "Series with a value."),
                                   ("q1", "Lower quartile", "25th percentile."),
                                   ("median", "Median", "50th percentile."),
                                   ("q3", "Upper quartile", "75th percentile.")):
    _add("summary", _name, _label, "", _definition)

# --- dashboard users (registry.access.users.user_rows) ---------------------------------------------------------
for _name, _label, _definition in (("username", "User name", "The name the user logs in with."),
                                   ("role", "Role", "admin, coordinator, statistician or investigator."),
                                   ("active", "Active", "Whether the user may log in."),
                                   ("created_at", "Created", "When the account was made (UTC)."),
                                   ("locked_until", "Locked until", "End of a running lockout after failed "
                                    "log-ins (UTC); empty when not locked.")):
    _add("user", _name, _label, "", _definition)

# --- audit trail (registry.db.store.audit): actions and the kinds of thing they act on ------------------------
for _name, _label in (("user_added", "User added"), ("user_deactivated", "User deactivated"),
                      ("user_locked", "User locked after failed log-ins"), ("user_unlocked", "User unlocked"),
                      ("user_reactivated", "User reactivated"),
                      ("password_changed", "Password changed"), ("login_failed", "Log-in failed"),
                      ("center_created", "Center created"), ("clinical_created", "Clinical record added"),
                      ("clinical_updated", "Clinical record updated"), ("outcomes_created", "Outcome added"),
                      ("outcomes_updated", "Outcome updated"), ("import_clinical", "Clinical data imported"),
                      ("import_outcomes", "Outcomes imported"), ("ingest_dicom", "DICOM ingested"),
                      ("series_ingested", "Series ingested"), ("series_extended", "Files added to a series"),
                      ("import_annotation", "Manual mask imported"), ("relabel_annotation", "Manual mask relabelled"),
                      ("qc_decision", "QC decision"), ("target_set", "Target set"),
                      ("target_removed", "Target removed"), ("biomarkers.extract", "Biomarkers computed"),
                      ("ingest_run", "Import run"), ("center_target", "Collection target"),
                      ("series_features", "Biomarkers of a series"), ("user", "User"), ("patient", "Patient")):
    _add("audit", _name, _label, "", f"{_label} (audit code `{_name}`).")

# --- lesion classes (vocabulary.labels), as named in tables that hold a class key per row -------------------
for _c in LESION_CLASSES:
    _add("lesion_class", _c.key, _c.name, "", f"{_c.description} Label {_c.value} of the label map.")
_add("lesion_class", "hemorrhage", "Any hemorrhage (IPH, EAH, IVH)", "",
     "Labels 1, 2 and 4 of the label map taken together.")

# --- segmentation evaluation (imaging.evaluation: `ctstudy imaging evaluate`) ------------------------------
_E = "evaluation"
_add(_E, "annotated_fraction", "Share of the scan annotated", "fraction",
     "Voxels the reference annotation covers over all voxels of the scan: 1 for a whole annotation; a partial "
     "one (255 where not annotated) is compared over its annotated voxels only.")
for _name, _label, _unit, _definition in (
        ("split", "Split", "", "Training, validation or test series (by a hash of the series UID)."),
        ("class", "Lesion class", "", "The class of the label map compared, or any hemorrhage."),
        ("with_class", "Series with the class", "", "Series whose reference mask has the class."),
        ("dice_mean", "Dice, mean", "", "Mean Dice overlap over series with the class."),
        ("dice_sd", "Dice, SD", "", "Standard deviation of Dice over series with the class."),
        ("precision_mean", "Precision, mean", "", "Mean fraction of predicted voxels that are in the reference."),
        ("recall_mean", "Recall, mean", "", "Mean fraction of reference voxels that were predicted."),
        ("median_abs_volume_error_ml", "Volume error, median", "mL",
         "Median |segmented - reference| volume over series."),
        ("volume_group", "Reference volume", "", "Reference IPH volume group."),
        ("seg_abs_error_ml_mean", "Segmentation volume error, mean", "mL",
         "Mean |segmented - reference| IPH volume."),
        ("seg_abs_error_ml_median", "Segmentation volume error, median", "mL",
         "Median |segmented - reference| IPH volume."),
        ("abc2_abs_error_ml_mean", "ABC/2 volume error, mean", "mL",
         "Mean |ABC/2 - reference| volume of the largest IPH lesion."),
        ("abc2_abs_error_ml_median", "ABC/2 volume error, median", "mL",
         "Median |ABC/2 - reference| volume of the largest IPH lesion."),
        ("segmentation_better", "Segmentation closer than ABC/2", "",
         "Whether the segmentation's mean volume error is below ABC/2's.")):
    _add(_E, _name, _label, _unit, _definition)

# --- outcome-model performance (prognosis: `ctstudy prognosis fit`, the Outcome models page) ----------------
for _name, _label, _definition in (
        ("n", "Patients", "Patients the model was fitted on."),
        ("events", "Events", "Patients with the outcome."),
        ("auc", "AUC (apparent)", "Area under the ROC curve on the data the model was fitted on (optimistic)."),
        ("auc_lower", "AUC, lower 95% limit", "Lower limit of the apparent AUC's 95% confidence interval."),
        ("auc_upper", "AUC, upper 95% limit", "Upper limit of the apparent AUC's 95% confidence interval."),
        ("brier", "Brier score (apparent)",
         "Mean squared difference between predicted risk and outcome, on the fitting data."),
        ("calibration_slope", "Calibration slope (apparent)",
         "Slope of the outcome on the linear predictor, on the fitting data."),
        ("calibration_intercept", "Calibration intercept (apparent)", "Calibration-in-the-large, on the fitting data."),
        ("r2_nagelkerke", "Nagelkerke R² (apparent)", "Nagelkerke's pseudo R², on the fitting data."),
        ("cv_auc", "AUC (cross-validated)", "Mean AUC of the out-of-fold risks over the scored runs."),
        ("cv_brier", "Brier score (cross-validated)", "Mean Brier score of the out-of-fold risks."),
        ("cv_calibration_slope", "Calibration slope (cross-validated)", "Calibration slope of the out-of-fold risks."),
        ("cv_calibration_intercept", "Calibration intercept (cross-validated)",
         "Calibration intercept of the out-of-fold risks."),
        ("cv_auc_lower", "AUC (cross-validated), lower 95% limit", "Lower limit of the cross-validated AUC."),
        ("cv_auc_upper", "AUC (cross-validated), upper 95% limit", "Upper limit of the cross-validated AUC."),
        ("cv_r2_nagelkerke", "Nagelkerke R² (cross-validated)", "Nagelkerke's R² of the out-of-fold risks."),
        ("cv_auc_sd_repeats", "AUC (cross-validated), SD over runs", "Spread of the AUC over the scored runs."),
        ("cv_repeats", "Cross-validation runs scored (repeats x imputations)",
         "Out-of-fold predictions scored: one per cross-validation repeat and imputed data set, so 2 repeats "
         "of 5 imputations make 10."),
        ("corrected_auc", "AUC (optimism-corrected)", "Apparent AUC minus the bootstrap estimate of its optimism."),
        ("shrinkage", "Shrinkage factor", "Bootstrap-corrected calibration slope, capped at 1, applied to the "
         "coefficients of the risk calculator's model (a corrected slope above 1 does not enlarge them)."),
        ("events_per_variable", "Events per model term", "Events divided by the number of model terms."),
        ("harrell_c", "Harrell's C", "Concordance of predicted and observed survival (apparent)."),
        ("cv_harrell_c", "Harrell's C (cross-validated)", "Concordance of the out-of-fold predictions."),
        ("auc_death", "AUC death (ordinal)", "AUC of the ordinal model's risk of death."),
        ("auc_unfavourable", "AUC unfavourable (ordinal)", "AUC of the ordinal model's risk of GOS 1-3."),
        ("cv_auc_unfavourable", "AUC unfavourable (ordinal, cross-validated)",
         "Cross-validated AUC of the ordinal model's risk of GOS 1-3."),
        ("delta_auc", "AUC gained by imaging", "AUC of clinical + imaging minus AUC of clinical alone."),
        ("delta_auc_lower", "AUC gained by imaging, lower 95% limit", "Lower limit of the AUC gain."),
        ("delta_auc_upper", "AUC gained by imaging, upper 95% limit", "Upper limit of the AUC gain."),
        ("n_imputations", "Imputed data sets", "Multiple imputations the model was fitted on."),
        ("auc_boot_lower", "AUC, lower bootstrap 95% limit", "Percentile bootstrap lower limit of the AUC."),
        ("auc_boot_upper", "AUC, upper bootstrap 95% limit", "Percentile bootstrap upper limit of the AUC."),
        ("optimism", "Optimism of the AUC", "Bootstrap estimate of how much the apparent AUC overstates it."),
        ("n_boot", "Bootstrap samples", "Bootstrap resamples of the optimism correction."),
        ("auc_death_lower", "AUC death (ordinal), lower 95% limit", "Lower limit of the ordinal model's AUC of death."),
        ("auc_death_upper", "AUC death (ordinal), upper 95% limit", "Upper limit of the ordinal model's AUC of death."),
        ("auc_unfavourable_lower", "AUC unfavourable (ordinal), lower 95% limit",
         "Lower limit of the ordinal model's AUC of GOS 1-3."),
        ("auc_unfavourable_upper", "AUC unfavourable (ordinal), upper 95% limit",
         "Upper limit of the ordinal model's AUC of GOS 1-3."),
        ("cv_auc_death", "AUC death (ordinal, cross-validated)", "Cross-validated AUC of the ordinal model's risk of "
         "death."),
        ("brant_omnibus_p", "Brant test of proportional odds, p (all terms)",
         "p-value of Brant's omnibus test, pooled over the imputed data sets (D2)."),
        ("ph_global_p", "Proportional-hazards test, p (global)",
         "p-value of the global Grambsch-Therneau score test (survival's cox.zph), pooled over the imputations."),
        ("ph_global_statistic", "Proportional-hazards test, pooled F (D2, global)",
         "Statistic of the global cox.zph score test, pooled over the imputed data sets (D2)."),
        ("ph_min_p", "Proportional-hazards test, smallest p of a term", "The smallest per-term cox.zph p-value."),
        ("n_boot_separated", "Bootstrap refits that separate", "Bootstrap refits whose risks reach 0 or 1 on "
         "some patient (kept, as rms keeps them)."),
        ("n_boot_penalized_refits", "Bootstrap refits by Firth", "Bootstrap refits that separated under maximum "
         "likelihood and were refitted by Firth's penalized likelihood."),
        ("n_boot_not_estimable", "Bootstrap refits not estimable", "Bootstrap resamples whose model could not be "
         "estimated (left out of the optimism)."),
        ("cv_refits_penalized", "Cross-validation refits penalized", "Folds whose model could only be estimated "
         "with a penalty (separation)."),
        ("cv_folds_not_estimable", "Cross-validation folds not estimable", "Folds whose model could not be "
         "estimated; their patients are scored in the other runs."),
        ("optimizer_warnings", "Optimizer warnings", "Fits whose optimizer reported a problem."),
        ("smaller_class", "Patients in the smaller outcome class", "Events or non-events, whichever are fewer.")):
    _add("model_metric", _name, _label, "", _definition)

# Short column headings for narrow tables (the case viewer's scans): the full heading is the column's tooltip.
SHORT_LABELS: dict[str, str] = {
    "days_from_injury": "Day", "source": "Mask", "hematoma_ml": "IPH", "iph_ml": "IPH", "eah_ml": "EAH",
    "edema_ml": "Edema", "ivh_ml": "IVH", "midline_shift_mm": "Midline shift", "lesion_count": "Lesions",
    "total_lesion_ml": "Total lesion", "hemorrhage_ml": "Hemorrhage",
}

# --- Model quality: how much annotators changed the model's masks (imaging.correction) -----------
_MQ = "model_quality"
_add(_MQ, "corrections", "Corrected series", "",
     "Series whose model mask an annotator corrected and imported (`ctstudy imaging import-corrections`).")
_add(_MQ, "with_class", "Corrections with the class", "",
     "Corrected series in which the model's mask or the correction holds the lesion class.")
_add(_MQ, "dice_mean", "Mean Dice, model vs correction", "",
     "Mean over corrected series holding the class of 2|M∩C|/(|M|+|C|), M the model's mask, C the "
     "correction: 1 means the annotator changed nothing.")
_add(_MQ, "dice_pooled", "Pooled Dice, model vs correction", "",
     "2|M∩C|/(|M|+|C|) over all voxels of all corrected series together: small lesions cannot swing it.")
_add(_MQ, "abs_change_ml_mean", "Mean absolute volume change", "mL",
     "Mean over corrected series of |corrected volume - model volume| of the class.")
_add(_MQ, "change_ml_mean", "Mean volume change", "mL",
     "Mean over corrected series of the corrected volume minus the model's: positive when the model "
     "missed lesion, negative when it over-segmented.")
_add(_MQ, "model_ml", "Model volume", "mL", "Volume of the class in the model's mask before correction.")
_add(_MQ, "corrected_ml", "Corrected volume", "mL", "Volume of the class in the annotator's correction.")
_add(_MQ, "dice", "Dice, model vs correction", "",
     "2|M∩C|/(|M|+|C|) of the class in one series; empty when neither mask holds it.")
_add(_MQ, "lesion_class", "Lesion class", "", "Class of the project's label map (vocabulary.labels).")
_add(_MQ, "annotated_fraction", "Share of the scan annotated", "fraction",
     "Voxels the correction annotated over all voxels of the scan: 1 for a whole correction, less for a "
     "partial one (slices or classes left as 255, not annotated). Dice and volumes of a partial correction "
     "are over its annotated voxels only.")
_add(_MQ, "partial_corrections", "Partial corrections", "",
     "Corrections that left some voxels not annotated (255): their Dice and volumes cover the annotated part.")
_add(_MQ, "annotated_fraction_mean", "Mean share of the scan annotated", "fraction",
     "Mean over corrections of the share of the scan's voxels the correction annotated (1: all whole).")

# Later entries of the same name in another group stay reachable by group; `ENTRIES` holds the first.
ENTRIES: dict[str, Entry] = {}
for _e in _ENTRIES:
    ENTRIES.setdefault(_e.name, _e)
_BY_GROUP: dict[tuple[str, str], Entry] = {(e.group, e.name): e for e in _ENTRIES}


SHORT_UID_CHARS = 8


def short_uid(uid: str | None) -> str:
    """A short reference to a DICOM UID people can read and search for: '…09942541' (its last 8 characters).

    Full UIDs (up to 64 digits) fill a screen and get cut by terminals; the last characters are the ones
    that differ between series of one study, so they find the series in the QC queue's search box.
    """
    if not uid:
        return ""
    uid = str(uid)
    return uid if len(uid) <= SHORT_UID_CHARS + 1 else "…" + uid[-SHORT_UID_CHARS:]


def entry(name: str, group: str | None = None) -> Entry | None:
    """The dictionary entry of `name` (in `group` when names collide across groups), or None."""
    if group is not None:
        return _BY_GROUP.get((group, name))
    return ENTRIES.get(name)


def _words(name: str) -> str:
    """`some_new_thing` -> 'Some new thing': a readable fallback for a name not (yet) in the dictionary."""
    text = re.sub(r"[_\s]+", " ", str(name)).strip()
    return text[:1].upper() + text[1:]


def label(name: str, group: str | None = None) -> str:
    """What people read for `name` (no unit); words made of the name when it is unknown."""
    e = entry(name, group)
    return e.label if e else _words(name)


def unit(name: str, group: str | None = None) -> str:
    """The unit of `name` ('' when dimensionless, a count, a code, or unknown)."""
    e = entry(name, group)
    return e.unit if e else ""


def heading(name: str, group: str | None = None) -> str:
    """A column heading: the label with its unit, 'Hematoma volume on admission (mL)'."""
    u = unit(name, group)
    return f"{label(name, group)} ({u})" if u else label(name, group)


def short_heading(name: str, group: str | None = None) -> str:
    """A narrow column heading, 'IVH (mL)': SHORT_LABELS' abbreviation with the unit, else `heading`."""
    if name not in SHORT_LABELS:
        return heading(name, group)
    u = unit(name, group)
    return f"{SHORT_LABELS[name]} ({u})" if u and u != "days" else SHORT_LABELS[name]  # "Day" says its unit


def describe(name: str, group: str | None = None) -> str:
    """One sentence: label, unit, definition and coding, for tooltips and the report's variable list."""
    e = entry(name, group)
    if e is None:
        return f"{_words(name)}: not in the data dictionary."
    text = f"{heading(name, group)}: {e.definition}"
    return f"{text} Values: {e.values}." if e.values else text


def display_columns(frame: pd.DataFrame, group: str | None = None) -> pd.DataFrame:
    """A copy of `frame` whose column names are headings with units. Names that would collide keep their name."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for column in frame.columns:
        title = heading(column, group) if isinstance(column, str) else str(column)
        if title in taken:
            title = f"{title} [{column}]"
        taken.add(title)
        mapping[column] = title
    return frame.rename(columns=mapping)


DICTIONARY_COLUMNS = ("name", "group", "label", "unit", "definition", "values")


def dictionary_records(groups: list[str] | None = None) -> list[dict[str, str]]:
    """The whole dictionary (or some groups), one dict per entry (DICTIONARY_COLUMNS), the group in words."""
    return [{**asdict(e), "group": GROUPS[e.group]} for e in _ENTRIES if groups is None or e.group in groups]


def dictionary_table(groups: list[str] | None = None) -> pd.DataFrame:
    """`dictionary_records` as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(dictionary_records(groups), columns=list(DICTIONARY_COLUMNS))


def columns_dictionary(columns: list[str] | pd.Index) -> pd.DataFrame:
    """The codebook of a table: one row per column (name, label, unit, definition, values), in column order."""
    import pandas as pd

    rows = []
    for name in columns:
        e = entry(name)
        rows.append({"name": name, "label": label(name), "unit": unit(name),
                     "definition": e.definition if e else "", "values": e.values if e else ""})
    return pd.DataFrame(rows, columns=["name", "label", "unit", "definition", "values"])
