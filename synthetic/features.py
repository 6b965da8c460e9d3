"""True imaging features: per patient and timepoint, and the patient-level features of docs/data-formats.md.

`patient_level_features` implements the definitions shared with `biomarkers` (which computes
them from masks) and `prognosis` (which uses them as model terms); here they come from truth.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synthetic.cohort import PatientPlan

TIMEPOINT_COLUMNS = ("center", "patient_id", "timepoint", "days_from_injury", "hematoma_ml", "edema_ml",
                     "extra_axial_ml", "ivh_ml", "lesion_count", "side", "midline_shift_mm", "largest_lesion_left")
PATIENT_LEVEL_COLUMNS = ("center", "patient_id", "adm_hematoma_ml", "adm_edema_ml", "adm_lesion_count",
                         "adm_midline_shift_mm", "adm_lesion_left", "peak_hematoma_ml", "peak_edema_ml",
                         "peak_edema_day", "last_hematoma_ml", "last_edema_ml", "hematoma_expansion_ml",
                         "hematoma_expansion_pct", "significant_expansion", "edema_growth_ml_per_day", "n_scans",
                         "adm_eah_ml", "adm_ivh_ml", "adm_ivh_present", "adm_hemorrhage_ml")
SIGNIFICANT_EXPANSION_ML = 6.0
SIGNIFICANT_EXPANSION_PCT = 33.0


def side_of(sides: list[str]) -> str:
    """left | right | bilateral | none for the sides of the lesions present."""
    present = set(sides)
    if not present:
        return "none"
    return present.pop() if len(present) == 1 else "bilateral"


def timepoint_rows_from_plan(plan: PatientPlan) -> list[dict]:
    """Per-scan truth of one patient from the planned (continuous) volumes, without rendering."""
    rows = []
    for t, day in enumerate(plan.scan_days):
        present = [les for les in plan.lesions if les.volume_ml[t] > 0]
        largest = max(present, key=lambda les: les.volume_ml[t]) if present else None
        rows.append({
            "center": plan.center, "patient_id": plan.patient_id, "timepoint": t, "days_from_injury": day,
            "hematoma_ml": sum(les.volume_ml[t] for les in present),
            "edema_ml": sum(les.edema_ml[t] for les in present),
            "extra_axial_ml": plan.extra_axial_ml[t] if plan.extra_axial_side else 0.0,
            "ivh_ml": plan.ivh_ml[t] if plan.ivh_ml else 0.0,
            "lesion_count": len(present), "side": side_of([les.side for les in present]),
            "midline_shift_mm": abs(plan.series_spec(t, 0.0).midline_shift_signed_mm()),
            "largest_lesion_left": (float(largest.side == "left") if largest is not None else math.nan),
        })
    return rows


def timepoint_table_from_plans(plans) -> pd.DataFrame:
    return pd.DataFrame([r for p in plans for r in timepoint_rows_from_plan(p)], columns=list(TIMEPOINT_COLUMNS))


def patient_level_features(timepoints: pd.DataFrame) -> pd.DataFrame:
    """One row per patient with the patient-level feature names of docs/data-formats.md."""
    rows = []
    for (center, pid), g in timepoints.sort_values("days_from_injury").groupby(["center", "patient_id"], sort=False):
        hem = g["hematoma_ml"].to_numpy(float)
        ede = g["edema_ml"].to_numpy(float)
        days = g["days_from_injury"].to_numpy(float)
        adm = g.iloc[0]
        eah = float(adm["extra_axial_ml"]) if "extra_axial_ml" in g.columns else math.nan
        ivh = float(adm["ivh_ml"]) if "ivh_ml" in g.columns else math.nan
        k = int(np.argmax(ede))
        growth = 0.0 if k == 0 else (ede[k] - ede[0]) / (days[k] - days[0])
        if len(g) > 1:
            expansion = hem[1] - hem[0]
            pct = 100.0 * expansion / hem[0] if hem[0] > 0 else math.nan
            significant = float(expansion > SIGNIFICANT_EXPANSION_ML
                                or (not math.isnan(pct) and pct > SIGNIFICANT_EXPANSION_PCT))
        else:
            expansion = pct = significant = math.nan
        rows.append({
            "center": center, "patient_id": pid, "adm_hematoma_ml": hem[0], "adm_edema_ml": ede[0],
            "adm_lesion_count": int(adm["lesion_count"]), "adm_midline_shift_mm": float(adm["midline_shift_mm"]),
            "adm_lesion_left": float(adm["largest_lesion_left"]), "peak_hematoma_ml": hem.max(),
            "peak_edema_ml": ede.max(), "peak_edema_day": days[k], "last_hematoma_ml": hem[-1],
            "last_edema_ml": ede[-1], "hematoma_expansion_ml": expansion, "hematoma_expansion_pct": pct,
            "significant_expansion": significant, "edema_growth_ml_per_day": growth, "n_scans": len(g),
            # Four-class features: empty when the timepoint table has no such column (as in biomarkers).
            "adm_eah_ml": eah, "adm_ivh_ml": ivh, "adm_ivh_present": float(ivh > 0) if ivh == ivh else math.nan,
            "adm_hemorrhage_ml": hem[0] + eah + ivh,
        })
    out = pd.DataFrame(rows, columns=list(PATIENT_LEVEL_COLUMNS))
    for col in ("adm_lesion_left", "significant_expansion", "adm_ivh_present"):
        out[col] = out[col].astype("Float64").round().astype("Int64")
    return out
