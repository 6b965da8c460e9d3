"""The generating outcome model, the oracle probabilities, and a fast tabular study: `simulate_tabular`.

Proportional odds on GOS 1-5 (docs/data-formats.md): P(GOS <= k) = expit(cutpoint_k + LP), LP
higher = worse. Clinical coefficients are close to the IMPACT Core+CT+Lab model (Steyerberg et al.,
PLoS Med 2008; the values in the project's ANCHORS.md (shared notes)), taken between its mortality and
unfavourable-outcome columns since one proportional-odds model serves both. The imaging terms
take the place of IMPACT's CT terms with clinically plausible sizes (20 mL of hematoma at
admission: odds x 2.5; 10 mm midline shift: x 1.8); `adm_lesion_left` has no effect (0).
Cutpoints were calibrated on 20,000 simulated patients to give about 30 % mortality and 52 %
unfavourable outcome (GOS 1-3; GOS 1-5 about 30/6/16/20/28 %), inside the 25-35 % / 45-60 % aimed at;
tests/synthetic check the rates on every run.

Survival: the dead die after their last scan (days = last scan + 0.25 + Gamma(0.8, 12 days),
at most 180): most deaths are early. Survivors are followed to day 180, except about 6 % lost
to follow-up (censored between day 14 and 180, GOS at 6 months unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthetic.centers import center_profiles
from synthetic.cohort import Cohort, apply_missingness, simulate_cohort
from synthetic.features import patient_level_features, timepoint_table_from_plans

TERMS: dict[str, float] = {
    "age": 0.025,
    "motor_1": 1.05,
    "motor_2": 1.45,
    "motor_3": 0.98,
    "motor_4": 0.43,
    "pupils_one": 0.15,
    "pupils_none": 0.62,
    "hypoxia": 0.38,
    "hypotension": 0.40,
    "glucose_mmol_l": 0.09,
    "hemoglobin_g_dl": -0.09,
    "log_adm_hematoma_ml": 0.30,
    "log_peak_edema_ml": 0.15,
    "adm_midline_shift_mm": 0.06,
    "adm_lesion_count": 0.15,
    "adm_lesion_left": 0.0,
}
CUTPOINTS = (-3.66, -3.26, -2.29, -1.09)
TERM_DEFINITIONS = {
    "age": "age in years",
    "motor_1": "GCS motor score 1 (none); reference 5-6",
    "motor_2": "GCS motor score 2 (extension)",
    "motor_3": "GCS motor score 3 (abnormal flexion)",
    "motor_4": "GCS motor score 4 (normal flexion)",
    "pupils_one": "one pupil unreactive; reference both reactive",
    "pupils_none": "both pupils unreactive",
    "hypoxia": "hypoxia before or at admission (0/1)",
    "hypotension": "hypotension before or at admission (0/1)",
    "glucose_mmol_l": "admission glucose, per mmol/L",
    "hemoglobin_g_dl": "admission hemoglobin, per g/dL",
    "log_adm_hematoma_ml": "log1p(adm_hematoma_ml)",
    "log_peak_edema_ml": "log1p(peak_edema_ml)",
    "adm_midline_shift_mm": "midline shift on the admission scan, mm",
    "adm_lesion_count": "intraparenchymal hematomas on the admission scan",
    "adm_lesion_left": "largest admission lesion left of the midline (0/1; 0 without lesion): null term",
}
LOST_TO_FOLLOW_UP = 0.06
FOLLOW_UP_DAYS = 180.0


def outcome_model() -> dict[str, Any]:
    """The generating model in the JSON layout of docs/data-formats.md."""
    c1, _, c3, _ = CUTPOINTS
    return {
        "model": "proportional_odds",
        "terms": dict(TERMS),
        "term_definitions": dict(TERM_DEFINITIONS),
        "cutpoints": list(CUTPOINTS),
        "link": "P(GOS <= k) = expit(cutpoint_k + LP), LP = sum(coefficient * term); higher LP = worse",
        "mortality": {"intercept": c1, "coefficients": dict(TERMS)},
        "unfavourable": {"intercept": c3, "coefficients": dict(TERMS)},
        "null_terms": ["adm_lesion_left"],
        "source": "clinical terms near IMPACT Core+CT+Lab (Steyerberg et al., PLoS Med 2008)",
        "survival": {
            "death": "days_to_death = last scan day + 0.25 + Gamma(shape 0.8, scale 12 days), at most 180",
            "censoring": f"survivors followed to day {FOLLOW_UP_DAYS:g}; {LOST_TO_FOLLOW_UP:.0%} lost to follow-up "
                         "uniformly between day 14 and 180, with gos_6m missing",
            "outcomes_from": "complete (pre-missingness) clinical values and true imaging features",
        },
    }


def design_matrix(clinical: pd.DataFrame, patient_level: pd.DataFrame) -> pd.DataFrame:
    """The model terms per patient (index center, patient_id), from complete clinical data and features."""
    key = ["center", "patient_id"]
    df = clinical.merge(patient_level, on=key, how="inner", validate="one_to_one")
    if len(df) != len(clinical):
        raise ValueError(f"{len(clinical) - len(df)} patients of the clinical table have no imaging features")
    motor = df["gcs_motor"].astype(float)
    pupils = df["pupils_unreactive"].astype(float)
    x = pd.DataFrame(index=pd.MultiIndex.from_frame(df[key]))
    x["age"] = df["age"].astype(float).to_numpy()
    for k in range(1, 5):
        x[f"motor_{k}"] = (motor == k).astype(float).to_numpy()
    x["pupils_one"] = (pupils == 1).astype(float).to_numpy()
    x["pupils_none"] = (pupils == 2).astype(float).to_numpy()
    for col in ("hypoxia", "hypotension", "glucose_mmol_l", "hemoglobin_g_dl"):
        x[col] = df[col].astype(float).to_numpy()
    x["log_adm_hematoma_ml"] = np.log1p(df["adm_hematoma_ml"].astype(float)).to_numpy()
    x["log_peak_edema_ml"] = np.log1p(df["peak_edema_ml"].astype(float)).to_numpy()
    x["adm_midline_shift_mm"] = df["adm_midline_shift_mm"].astype(float).to_numpy()
    x["adm_lesion_count"] = df["adm_lesion_count"].astype(float).to_numpy()
    x["adm_lesion_left"] = df["adm_lesion_left"].astype("Float64").fillna(0).astype(float).to_numpy()
    if x.isna().any().any():
        bad = x.columns[x.isna().any()].tolist()
        raise ValueError(f"design matrix has missing values in {bad}: pass the complete clinical data")
    return x


def linear_predictor(model: dict[str, Any], clinical: pd.DataFrame, patient_level: pd.DataFrame) -> pd.Series:
    """LP per patient (higher = worse)."""
    x = design_matrix(clinical, patient_level)
    beta = pd.Series(model["terms"], dtype=float)
    return (x[beta.index] @ beta).rename("lp")


def true_probabilities(model: dict[str, Any], patient_level: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """The oracle: per patient LP, P(GOS = 1..5), P(death) and P(unfavourable), from the generating model.

    Pass the complete clinical data (`TabularStudy.clinical_complete`): the outcomes were drawn from it.
    """
    lp = linear_predictor(model, clinical, patient_level)
    cum = np.column_stack([1 / (1 + np.exp(-(c + lp.to_numpy()))) for c in model["cutpoints"]] + [np.ones(len(lp))])
    probs = np.diff(np.column_stack([np.zeros(len(lp)), cum]), axis=1)
    out = pd.DataFrame(probs, index=lp.index, columns=[f"p_gos_{k}" for k in range(1, 6)])
    out.insert(0, "lp", lp.to_numpy())
    out["p_death"] = cum[:, 0]
    out["p_unfavourable"] = cum[:, 2]
    return out


def draw_outcomes(model: dict[str, Any], clinical_complete: pd.DataFrame, patient_level: pd.DataFrame,
                  last_scan_day: pd.Series, seed: int) -> pd.DataFrame:
    """outcomes.csv rows drawn from the model; `last_scan_day` is indexed by (center, patient_id)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    probs = true_probabilities(model, patient_level, clinical_complete)
    p = probs[[f"p_gos_{k}" for k in range(1, 6)]].to_numpy()
    u = rng.random(len(p))
    gos = 1 + (u[:, None] > np.cumsum(p, axis=1)[:, :4]).sum(axis=1)
    last = last_scan_day.reindex(probs.index).to_numpy(float)
    death_day = np.minimum(FOLLOW_UP_DAYS, last + 0.25 + rng.gamma(0.8, 12.0, size=len(p)))
    lost = rng.random(len(p)) < LOST_TO_FOLLOW_UP
    lost_day = rng.uniform(np.maximum(14.0, last + 1), FOLLOW_UP_DAYS)
    died = gos == 1
    days = np.where(died, death_day, np.where(lost, lost_day, FOLLOW_UP_DAYS))
    out = pd.DataFrame({
        "center": probs.index.get_level_values("center"),
        "patient_id": probs.index.get_level_values("patient_id"),
        "gos_6m": pd.array(np.where(~died & lost, -1, gos), dtype="Int64"),
        "died": died.astype(int),
        "days_to_death_or_censor": np.round(days, 2),
    })
    out.loc[out["gos_6m"] == -1, "gos_6m"] = pd.NA
    return out


@dataclass(frozen=True)
class TabularStudy:
    clinical: pd.DataFrame  # clinical.csv as sent (with missing values)
    clinical_complete: pd.DataFrame  # before missingness: what the outcomes were drawn from
    outcomes: pd.DataFrame  # outcomes.csv
    patient_features: pd.DataFrame  # per patient and timepoint truth (truth/patient_features.csv)
    patient_level: pd.DataFrame  # one row per patient, the patient-level feature names
    model: dict[str, Any]  # truth/outcome_model.json
    truth: pd.DataFrame  # oracle per patient: lp, p_gos_1..5, p_death, p_unfavourable
    cohort: Cohort


def outcomes_for_cohort(cohort: Cohort, timepoints: pd.DataFrame, seed: int) -> TabularStudy:
    """Outcomes and oracle for a cohort whose true per-timepoint features are given (planned or rendered)."""
    model = outcome_model()
    patient_level = patient_level_features(timepoints)
    order = cohort.clinical_complete[["center", "patient_id"]]
    patient_level = order.merge(patient_level, on=["center", "patient_id"], how="left")
    last = timepoints.groupby(["center", "patient_id"])["days_from_injury"].max()
    outcomes = draw_outcomes(model, cohort.clinical_complete, patient_level, last, seed)
    truth = true_probabilities(model, patient_level, cohort.clinical_complete).reset_index()
    clinical = apply_missingness(cohort.clinical_complete, seed)
    return TabularStudy(clinical=clinical, clinical_complete=cohort.clinical_complete, outcomes=outcomes,
                        patient_features=timepoints, patient_level=patient_level, model=model, truth=truth,
                        cohort=cohort)


def simulate_tabular(n_patients: int, seed: int, n_centers: int = 5) -> TabularStudy:
    """Clinical data, true imaging features and outcomes without rendering images (thousands of patients in seconds)."""
    cohort = simulate_cohort(n_patients, seed, center_profiles(n_centers))
    return outcomes_for_cohort(cohort, timepoint_table_from_plans(cohort.plans), seed)


def expected_rates(truth: pd.DataFrame) -> dict[str, float]:
    """Mean oracle mortality and unfavourable-outcome probability (what the drawn rates scatter around)."""
    return {"mortality": float(truth["p_death"].mean()), "unfavourable": float(truth["p_unfavourable"].mean())}


__all__ = ["CUTPOINTS", "TERMS", "TabularStudy", "design_matrix", "draw_outcomes", "expected_rates",
           "linear_predictor", "outcome_model", "outcomes_for_cohort", "simulate_tabular", "true_probabilities"]
