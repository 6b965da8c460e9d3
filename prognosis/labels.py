"""Human labels and units of model terms and metrics for the report and the dashboard.

Variables' names, definitions and units live in the data dictionary `vocabulary.dictionary`. The
model's derived terms (dummies against a reference category, log volumes) and the metrics are
prognosis's own and are named here.
"""

from __future__ import annotations

from typing import Any

from vocabulary import dictionary

TERM_LABELS: dict[str, tuple[str, str]] = {
    "const": ("Intercept", ""),
    "age": ("Age", "per year"),
    "motor_1": ("GCS motor 1 (none) vs 5-6", ""),
    "motor_2": ("GCS motor 2 (extension) vs 5-6", ""),
    "motor_3": ("GCS motor 3 (abnormal flexion) vs 5-6", ""),
    "motor_4": ("GCS motor 4 (normal flexion) vs 5-6", ""),
    "pupils_one": ("One pupil unreactive vs both reactive", ""),
    "pupils_none": ("Both pupils unreactive vs both reactive", ""),
    "hypoxia": ("Hypoxia", "yes vs no"),
    "hypotension": ("Hypotension", "yes vs no"),
    "glucose_mmol_l": ("Glucose", "per mmol/L"),
    "hemoglobin_g_dl": ("Hemoglobin", "per g/dL"),
    "log_adm_hematoma_ml": ("Admission hematoma volume", "per log(1 + mL)"),
    "log_peak_edema_ml": ("Peak perilesional edema volume", "per log(1 + mL)"),
    "adm_midline_shift_mm": ("Admission midline shift", "per mm"),
    "adm_lesion_count": ("Admission lesion count", "per lesion"),
    "adm_lesion_left": ("Admission lesion on the left", "yes vs no"),
}

METRIC_LABELS: dict[str, str] = {
    "auc": "AUC (c-statistic)", "calibration_slope": "Slope (rms: after recalibration on the test sample)",
    "calibration_intercept": "Intercept (rms: after recalibration on the test sample)", "brier": "Brier score (B)",
    "r2_nagelkerke": "Nagelkerke R² (rms: after recalibration on the test sample)",
    "emax": "Emax (largest calibration error, 0-1 risk)", "D": "Discrimination index D",
    "U": "Unreliability index U", "Q": "Quality index Q = D - U", "g": "g-index (Gini mean difference, log-odds)",
}

OUTCOME_LABELS = {"mortality": "6-month mortality", "unfavourable": "Unfavourable outcome (GOS 1-3) at 6 months",
                  "gos": "GOS at 6 months (ordinal)", "survival": "Time to death"}
FEATURE_LABELS = {"clinical": "clinical", "imaging": "CT biomarkers", "clinical+imaging": "clinical + CT biomarkers"}


def term_label(name: str) -> str:
    """'Glucose (per mmol/L)' for a model term; the data dictionary's label for other variables."""
    if name in TERM_LABELS:
        label, unit = TERM_LABELS[name]
        return f"{label} ({unit})" if unit else label
    for suffix in ("_rcs1", "_rcs2", "_rcs3"):
        if name.endswith(suffix):
            return f"{term_label(name[: -len(suffix)])}, spline term {suffix[-1]}"
    return dictionary.heading(name)


def estimation_text(metrics: dict[str, Any], model_kind: str | None = None) -> str:
    """How a fit was estimated, in words, from its metrics: ridge with a cross-validated penalty, Firth's
    penalized likelihood under separation, the ridge fallback for an absent category, or maximum likelihood.
    Empty when the metrics do not say (fits stored before the estimation was recorded) and no model kind is
    given."""
    estimation = metrics.get("estimation") or {}
    if estimation.get("penalty_chosen_by") == "cv":
        return f"ridge, penalty {estimation.get('penalty', float('nan')):.2g} chosen by cross-validation"
    if estimation.get("method") == "firth":
        sets = estimation.get("data_sets")
        where = f" in {len(sets)} of {estimation.get('n_data_sets')} imputed data sets" if sets else ""
        return f"Firth's penalized likelihood (separation{where})"
    if estimation.get("method") == "ridge":
        return "ridge fallback (a category absent)"
    if model_kind is not None and model_kind not in ("logistic", "ordinal", "cox"):
        return model_kind  # scikit-learn's penalized logistic or gradient boosting: its kind says how
    if estimation or metrics.get("estimation_choice") or metrics.get("validate") or model_kind:
        return "maximum likelihood"
    return ""
