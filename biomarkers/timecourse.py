"""Per patient over time: admission and follow-up scans side by side, expansion, edema growth, peaks.

Input is the per-series table (one row per series, as `ctstudy biomarkers export` writes it) with
the patient key (`center` and `patient_id` when both are present, else `patient_id`),
`days_from_injury`, `hematoma_ml`, `edema_ml`, `lesion_count`, `midline_shift_mm`, `largest_lesion_left`;
`timepoint` (0 admission, 1.. follow-ups) breaks ties and orders scans whose day is unknown.
Scans are ordered by day from injury, then timepoint.

Definitions (names fixed by docs/data-formats.md, shared with `synthetic` and `prognosis`):
- adm_*: the first scan; peak_*: maxima over all scans (peak_edema_day: the first day reaching it);
  last_*: the last scan; n_scans.
- hematoma_expansion_ml / _pct: second scan minus first (mL, and % of the first; % empty when the
  first has no hematoma); empty with one scan.
- significant_expansion: 1 if expansion > 6 mL or > 33 %, the common definition of hematoma
  expansion in ICH trials; empty with one scan.
- edema_growth_ml_per_day: (peak edema - admission edema) / (peak day - admission day), 0 if the
  peak is on admission; empty if the days are unknown.
- four-class features of the admission scan (v2): adm_eah_ml, adm_eah_max_thickness_mm (largest
  extra-axial collection), adm_ivh_ml, adm_ivh_present, adm_hemorrhage_ml (IPH + EAH + IVH); taken
  from the series columns eah_ml, eah_max_thickness_mm, ivh_ml, ivh_present, hemorrhage_ml, and
  empty when the table lacks them (a table written before the four-class map).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PATIENT_FEATURES = [
    "adm_hematoma_ml", "adm_edema_ml", "adm_lesion_count", "adm_midline_shift_mm", "adm_lesion_left",
    "peak_hematoma_ml", "peak_edema_ml", "peak_edema_day", "last_hematoma_ml", "last_edema_ml",
    "hematoma_expansion_ml", "hematoma_expansion_pct", "significant_expansion", "edema_growth_ml_per_day", "n_scans",
    "adm_eah_ml", "adm_eah_max_thickness_mm", "adm_ivh_ml", "adm_ivh_present", "adm_hemorrhage_ml",
]
# Admission-scan features of the four-class map: patient-level name -> series column (optional columns).
ADMISSION_CLASS_FEATURES = {"adm_eah_ml": "eah_ml", "adm_eah_max_thickness_mm": "eah_max_thickness_mm",
                            "adm_ivh_ml": "ivh_ml", "adm_ivh_present": "ivh_present",
                            "adm_hemorrhage_ml": "hemorrhage_ml"}
REQUIRED_COLUMNS = ["days_from_injury", "hematoma_ml", "edema_ml", "lesion_count", "midline_shift_mm",
                    "largest_lesion_left"]
SIGNIFICANT_EXPANSION_ML = 6.0
SIGNIFICANT_EXPANSION_PCT = 33.0


def patient_keys(series_table: pd.DataFrame) -> list[str]:
    """`["center", "patient_id"]` when the table has both (patient IDs are unique per center), else `["patient_id"]`."""
    return ["center", "patient_id"] if {"center", "patient_id"} <= set(series_table.columns) else ["patient_id"]


def ordered_scans(series_table: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """The table sorted by patient, day from injury and timepoint, with `scan` = 0, 1, ... per patient."""
    keys = keys or patient_keys(series_table)
    missing = [c for c in [*keys, *REQUIRED_COLUMNS] if c not in series_table.columns]
    if missing:
        raise ValueError(f"series table lacks column(s) {', '.join(missing)}")
    order = [*keys, "days_from_injury"] + (["timepoint"] if "timepoint" in series_table.columns else [])
    table = series_table.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)
    table["scan"] = table.groupby(keys, sort=False).cumcount()
    return table


def scans_side_by_side(series_table: pd.DataFrame, features: tuple[str, ...] = (
        "days_from_injury", "hematoma_ml", "edema_ml", "lesion_count", "midline_shift_mm"),
        keys: list[str] | None = None) -> pd.DataFrame:
    """One row per patient, columns (feature, scan number): admission (scan 0) and follow-ups side by side."""
    keys = keys or patient_keys(series_table)
    table = ordered_scans(series_table, keys)
    return table.pivot(index=keys, columns="scan", values=list(features))


def patient_level_features(series_table: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """The patient-level imaging features of docs/data-formats.md, one row per patient, indexed by the patient key.

    `keys` defaults to `patient_keys(series_table)`; `.reset_index()` gives the `center`, `patient_id`
    columns that `prognosis.analysis_table.build_analysis_table` joins on.
    """
    keys = keys or patient_keys(series_table)
    table = ordered_scans(series_table, keys)
    for col in ("days_from_injury", "hematoma_ml", "edema_ml", "lesion_count", "midline_shift_mm",
                "largest_lesion_left"):
        table[col] = pd.to_numeric(table[col], errors="raise")
    g = table.groupby(keys, sort=True)
    first = g.nth(0).set_index(keys)
    second = table[table["scan"] == 1].set_index(keys)
    last = g.nth(-1).set_index(keys)
    peak_edema_row = table.loc[g["edema_ml"].idxmax()].set_index(keys)

    out = pd.DataFrame(index=first.index)
    out["adm_hematoma_ml"] = first["hematoma_ml"]
    out["adm_edema_ml"] = first["edema_ml"]
    out["adm_lesion_count"] = first["lesion_count"]
    out["adm_midline_shift_mm"] = first["midline_shift_mm"]
    out["adm_lesion_left"] = first["largest_lesion_left"]
    out["peak_hematoma_ml"] = g["hematoma_ml"].max()
    out["peak_edema_ml"] = peak_edema_row["edema_ml"]
    out["peak_edema_day"] = peak_edema_row["days_from_injury"]
    out["last_hematoma_ml"] = last["hematoma_ml"]
    out["last_edema_ml"] = last["edema_ml"]

    expansion = second["hematoma_ml"].reindex(out.index) - out["adm_hematoma_ml"]
    base = out["adm_hematoma_ml"].where(out["adm_hematoma_ml"] > 0)
    pct = 100.0 * expansion / base
    out["hematoma_expansion_ml"] = expansion
    out["hematoma_expansion_pct"] = pct
    significant = (expansion > SIGNIFICANT_EXPANSION_ML) | (pct > SIGNIFICANT_EXPANSION_PCT)
    out["significant_expansion"] = significant.astype(float).where(expansion.notna())

    peak_on_admission = peak_edema_row["scan"] == 0
    day_span = out["peak_edema_day"] - first["days_from_injury"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (out["peak_edema_ml"] - out["adm_edema_ml"]) / day_span.where(day_span > 0)
    out["edema_growth_ml_per_day"] = rate.where(~peak_on_admission, 0.0)
    out["n_scans"] = g.size()
    for name, col in ADMISSION_CLASS_FEATURES.items():
        out[name] = pd.to_numeric(first[col], errors="raise") if col in first.columns else np.nan
    return out[PATIENT_FEATURES]


# The CT classifications of the admission scan and the components IMPACT uses: patient-level name -> series column.
ADMISSION_CT_FEATURES = {
    "adm_marshall_ct_class": "marshall_ct_class", "adm_marshall_ct_class_missing": "marshall_ct_class_missing",
    "adm_rotterdam_ct_score": "rotterdam_ct_score", "adm_helsinki_ct_score": "helsinki_ct_score",
    "adm_ct_edh": "ct_edh", "adm_ct_edh_source": "ct_edh_source",
    "adm_ct_tsah": "ct_tsah", "adm_ct_tsah_source": "ct_tsah_source",
}


def admission_ct_classes(series_table: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """The admission scan's CT classifications and EDH/tSAH components with their sources, one row per patient
    (indexed by the patient key); columns of ADMISSION_CT_FEATURES, missing where the series table lacks them."""
    keys = keys or patient_keys(series_table)
    first = ordered_scans(series_table, keys).groupby(keys, sort=True).nth(0).set_index(keys)
    out = pd.DataFrame(index=first.index)
    for name, col in ADMISSION_CT_FEATURES.items():
        out[name] = first[col] if col in first.columns else np.nan
    return out
