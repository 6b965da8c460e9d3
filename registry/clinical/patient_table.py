"""The analysis-ready patient table: one row per patient, clinical data, outcome, series counts, scan days.

What `ctstudy registry export` writes (CSV or Parquet), with pseudonyms and days from injury only.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from registry.csv_export import write_csv
from registry.db.models import QC_PASSED, Center, ClinicalRecord, Outcome, Patient, Series, Study

CLINICAL_EXPORT = [
    "age", "sex", "gcs_total", "gcs_motor", "pupils_unreactive", "hypoxia", "hypotension", "glucose_mmol_l",
    "hemoglobin_g_dl", "marshall_ct", "tsah", "edh", "major_extracranial_injury", "evacuated_mass_lesion",
]
OUTCOME_EXPORT = ["gos_6m", "died", "days_to_death_or_censor"]


def patient_table(session: Session) -> pd.DataFrame:
    """The analysis-ready table: one row per patient, clinical data, outcome, series counts and scan days.

    `scan_days` lists the days from injury of the studies with a QC-passed series (';'-separated);
    no original ID and no date appear, only the pseudonym and days relative to injury.
    """
    clinical_cols = [getattr(ClinicalRecord, c) for c in CLINICAL_EXPORT]
    outcome_cols = [getattr(Outcome, c) for c in OUTCOME_EXPORT]
    passed = case((Series.qc_status == QC_PASSED, 1), else_=0)
    counts = (
        select(Study.patient_id, func.count(Series.id).label("n_series"),
               func.sum(passed).label("n_series_qc_passed"), func.count(distinct(Study.id)).label("n_studies"))
        .join(Series, Series.study_id == Study.id).group_by(Study.patient_id).subquery()
    )
    rows = session.execute(
        select(Patient.id.label("patient_key"), Patient.pseudo_id, Center.code.label("center"), *clinical_cols,
               *outcome_cols, counts.c.n_series, counts.c.n_series_qc_passed, counts.c.n_studies)
        .join(Center, Patient.center_id == Center.id)
        .outerjoin(ClinicalRecord, ClinicalRecord.patient_id == Patient.id)
        .outerjoin(Outcome, Outcome.patient_id == Patient.id)
        .outerjoin(counts, counts.c.patient_id == Patient.id)
        .order_by(Center.code, Patient.pseudo_id)
    ).all()
    columns = ["patient_key", "pseudo_id", "center", *CLINICAL_EXPORT, *OUTCOME_EXPORT, "n_series",
               "n_series_qc_passed", "n_studies"]
    table = pd.DataFrame(rows, columns=columns)
    for c in ("n_series", "n_series_qc_passed", "n_studies"):
        table[c] = table[c].fillna(0).astype(int)

    days = pd.DataFrame(session.execute(
        select(Study.patient_id, Study.id, func.min(Series.days_from_injury))
        .join(Series, Series.study_id == Study.id)
        .where(Series.qc_status == QC_PASSED, Series.days_from_injury.is_not(None))
        .group_by(Study.patient_id, Study.id)
    ).all(), columns=["patient_key", "study_id", "day"])
    if len(days):
        joined = (days.sort_values("day").groupby("patient_key")["day"]
                  .agg(lambda d: ";".join(f"{v:.2f}" for v in d)).rename("scan_days"))
        table = table.merge(joined, left_on="patient_key", right_index=True, how="left")
    else:
        table["scan_days"] = None
    for c in ("hypoxia", "hypotension", "tsah", "edh", "major_extracranial_injury", "evacuated_mass_lesion", "died"):
        table[c] = table[c].astype("boolean").astype("Int64")
    for c in ("gcs_total", "gcs_motor", "pupils_unreactive", "marshall_ct", "gos_6m"):
        table[c] = table[c].astype("Int64")
    return table.drop(columns="patient_key").reset_index(drop=True)


def write_patient_table(table: pd.DataFrame, path: str) -> None:
    """CSV or Parquet, chosen by the file extension."""
    lowered = str(path).lower()
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        table.to_parquet(path, index=False)
    elif lowered.endswith(".csv"):
        write_csv(table, path)  # formula-looking cells neutralized (registry.csv_export)
    else:
        raise ValueError(f"{path}: export format is chosen by extension: .csv or .parquet")
