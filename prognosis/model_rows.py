"""Which patients a model is fitted on, and which variables their imputation may fill.

A study registers clinical data and outcomes for more patients than send their CT (the tabular
cohort of the demo; in CREACTIVE thousands of patients against a few hundred scans). For a patient
without an admission scan the imaging biomarkers are not missing at random but structurally absent:
there is no image to measure. So
- a model with imaging terms is fitted only on the patients with an admission scan and its
  biomarkers (`adm_hematoma_ml` present); their remaining gaps, clinical or imaging, are imputed;
- a clinical-only model is fitted on every patient with the outcome, and when some of them have no
  scan the imaging variables are left out of its imputation model altogether: they are neither
  imputed for the unscanned nor used to impute the others' clinical gaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from prognosis.analysis_table import rows_with_outcome
from prognosis.imputation import IMPUTED_COLUMNS
from prognosis.terms import IMAGING_RAW, raw_columns_of

# Present exactly for the patients whose admission scan has biomarkers (biomarkers' patient-level features).
SCAN_COLUMN = "adm_hematoma_ml"


def has_admission_scan(table: pd.DataFrame) -> pd.Series:
    """Per row: does the patient have an admission scan with biomarkers."""
    if SCAN_COLUMN not in table.columns:
        return pd.Series(False, index=table.index)
    return table[SCAN_COLUMN].notna()


def uses_imaging(terms: Sequence[str]) -> bool:
    """Does a model on `terms` use any imaging biomarker."""
    return any(c in IMAGING_RAW for c in raw_columns_of(terms))


def model_rows(table: pd.DataFrame, outcome_columns: list[str], terms: Sequence[str]) -> pd.DataFrame:
    """The rows a model on `terms` is fitted on: the outcome known and, for a model with imaging terms,
    an admission scan with biomarkers (the outcome is never imputed; imaging is never imputed for a
    patient without a scan)."""
    rows = rows_with_outcome(table, outcome_columns)
    if uses_imaging(terms):
        rows = rows.loc[has_admission_scan(rows)].reset_index(drop=True)
    return rows


def imputed_columns(rows: pd.DataFrame, terms: Sequence[str]) -> tuple[str, ...]:
    """The variables the imputation of `rows` fills and draws on: all of IMPUTED_COLUMNS when every
    row has a scan (or the model uses imaging, whose rows all have one), else all but the imaging ones."""
    if uses_imaging(terms) or has_admission_scan(rows).all():
        return IMPUTED_COLUMNS
    return tuple(c for c in IMPUTED_COLUMNS if c not in IMAGING_RAW)


def rows_description(terms: Sequence[str], n_patients: int, n_without_scan: int = 0) -> str:
    """In words, on which patients a model was fitted (the report and the dashboard show it beside N)."""
    if uses_imaging(terms):
        return (f"{n_patients:,} patients with the outcome and an admission CT with biomarkers (imaging is not "
                "imputed for patients without a scan)")
    if n_without_scan:
        return (f"{n_patients:,} patients with the outcome, {n_without_scan:,} of them without CT images "
                "(clinical data only; imaging variables left out of their imputation)")
    return f"{n_patients:,} patients with the outcome"


def fitted_on(spec: Mapping[str, Any] | None) -> str:
    """Which patients a stored fit used, in a few words, from its spec ("–" for a fit recorded without it)."""
    spec = spec or {}
    if "n_without_scan" not in spec:
        return "–"
    if uses_imaging(spec.get("terms") or ()):
        return "patients with an admission CT"
    n = int(spec["n_without_scan"])
    return f"all patients with the outcome ({n:,} without CT)" if n else "all patients with the outcome"
