"""The analysis table: one row per patient with clinical predictors, imaging biomarkers, design terms,
outcomes and center, built from plain DataFrames (the store reads them from the registry).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from prognosis.ct_inputs import SOURCE_COLUMNS, impact_ct_table
from prognosis.terms import CLINICAL_RAW, IMAGING_RAW, design_terms

KEY = ["center", "patient_id"]
CLINICAL_COLUMNS = (*CLINICAL_RAW, "sex", "gcs_total", "marshall_ct", "tsah", "edh", "major_extracranial_injury")
IMAGING_COLUMNS = (
    "adm_hematoma_ml", "adm_edema_ml", "adm_lesion_count", "adm_midline_shift_mm", "adm_lesion_left",
    "peak_hematoma_ml", "peak_edema_ml", "peak_edema_day", "last_hematoma_ml", "last_edema_ml",
    "hematoma_expansion_ml", "hematoma_expansion_pct", "significant_expansion", "edema_growth_ml_per_day", "n_scans",
)
# The admission scan's computed CT classifications the table carries beside the IMPACT CT predictors chosen
# from them (prognosis.ct_inputs) and those predictors' sources.
ADMISSION_CT_COLUMNS = ("adm_marshall_ct_class", "adm_rotterdam_ct_score", "adm_helsinki_ct_score")
OUTCOME_COLUMNS = ("gos_6m", "unfavourable", "died", "days_to_death_or_censor")
REPORTED_VARIABLES = (*CLINICAL_RAW, "marshall_ct", "tsah", "edh", *IMAGING_RAW, "gos_6m", "died",
                      "days_to_death_or_censor")


def _keyed(df: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in KEY if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: key column(s) {missing} missing (have {list(df.columns)})")
    keyed = df.set_index(KEY)  # the key's strings hashed once: duplicates are then found on the index's codes
    dup = keyed.index.duplicated(keep=False)
    if dup.any():
        first = list(keyed.index[dup][0])
        raise ValueError(f"{what}: {int(dup.sum())} rows share a (center, patient_id), e.g. {first}")
    return keyed


def build_analysis_table(clinical: pd.DataFrame, outcomes: pd.DataFrame,
                         patient_features: pd.DataFrame | None = None,
                         admission_ct: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per patient of `clinical`: raw predictors, imaging features, design terms and outcomes.

    With `admission_ct` (`biomarkers.timecourse.admission_ct_classes` with center, patient_id columns; may
    be empty), marshall_ct, edh and tsah are the admission scan's computed values where known and the
    clinical record's otherwise (`prognosis.ct_inputs.impact_ct_table`), with marshall_ct_source,
    edh_source, tsah_source saying which, and the computed ADMISSION_CT_COLUMNS are carried too.

    `unfavourable` is GOS 1-3; `died` is taken from the outcomes (or GOS 1 where `died` is empty).
    Patients without outcome or imaging rows are kept with missing values (see missingness_report).
    """
    clin = _keyed(clinical, "clinical")
    unknown_clin = [c for c in clin.columns if c not in CLINICAL_COLUMNS and c != "injury_datetime"]
    if unknown_clin:
        raise ValueError(f"clinical: unknown column(s) {unknown_clin}")
    out = _keyed(outcomes, "outcomes")
    table = clin.drop(columns=[c for c in ("injury_datetime",) if c in clin.columns])
    if admission_ct is not None:
        table = _with_computed_ct(table, admission_ct)
    if patient_features is not None and len(patient_features):
        feats = _keyed(patient_features, "patient features")
        feats = feats[[c for c in IMAGING_COLUMNS if c in feats.columns]]
        table = table.join(feats, how="left")
    for col in IMAGING_COLUMNS:
        if col not in table:
            table[col] = np.nan
    table = table.join(out[[c for c in ("gos_6m", "died", "days_to_death_or_censor") if c in out.columns]],
                       how="left")
    gos = table["gos_6m"].astype(float)
    died = table["died"].astype(float) if "died" in table else pd.Series(np.nan, index=table.index)
    clash = gos.notna() & died.notna() & ((gos == 1) != (died == 1))
    if clash.any():
        raise ValueError(f"outcomes: gos_6m == 1 must match died == 1; violated for {clash.sum()} patient(s), "
                         f"e.g. {table.index[clash.to_numpy()][0]}")
    table["died"] = died.fillna((gos == 1).astype(float).where(gos.notna()))
    table["unfavourable"] = (gos <= 3).astype(float).where(gos.notna())
    terms = design_terms(table)
    table = table.join(terms[[c for c in terms.columns if c not in table.columns]])
    # Empty `adm_lesion_left` on a lesion-free scan means "no left lesion", not unknown (prognosis.terms).
    table["adm_lesion_left"] = terms["adm_lesion_left"]
    return table.sort_index(kind="stable").reset_index()  # by center and patient: the index's codes, sorted once


def _with_computed_ct(table: pd.DataFrame, admission_ct: pd.DataFrame) -> pd.DataFrame:
    """`table` (keyed) with the IMPACT CT predictors chosen from the admission scan's computed classes."""
    for name in ("marshall_ct", "edh", "tsah"):
        if name not in table:
            table[name] = np.nan
    chosen = impact_ct_table(table.reset_index(), admission_ct).set_index(KEY)
    adm = _keyed(admission_ct, "admission CT classes") if len(admission_ct) else pd.DataFrame(index=table.index)
    for col in ADMISSION_CT_COLUMNS:
        chosen[col] = (pd.to_numeric(adm[col], errors="coerce").reindex(chosen.index) if col in adm.columns
                       else np.nan)
    return chosen[[*table.columns, *SOURCE_COLUMNS, *ADMISSION_CT_COLUMNS]]


def missingness_report(table: pd.DataFrame, variables: tuple[str, ...] = REPORTED_VARIABLES) -> pd.DataFrame:
    """Percent missing per variable (rows) overall and per center (columns), with the overall count."""
    present = [v for v in variables if v in table.columns]
    miss = table[present].isna()
    per_center = miss.groupby(table["center"]).mean().T * 100
    report = pd.DataFrame({"n_missing": miss.sum(), "pct_missing": miss.mean() * 100}).join(
        per_center.add_prefix("pct_"))
    report.index.name = "variable"
    return report


def analysis_table_hash(table: pd.DataFrame) -> str:
    """SHA-256 of the table's content (columns, order-independent in rows): the data snapshot of a ModelFit."""
    ordered = table.sort_values(KEY, kind="stable").reset_index(drop=True)
    ordered = ordered[sorted(ordered.columns)]
    digest = hashlib.sha256(",".join(ordered.columns).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def rows_with_outcome(table: pd.DataFrame, outcome_columns: list[str]) -> pd.DataFrame:
    """Rows whose outcome columns are all present (models never impute the outcome)."""
    return table.loc[table[outcome_columns].notna().all(axis=1)].reset_index(drop=True)
