"""The registry side of prognosis: read the analysis table, record and list ModelFit rows.

Thin on purpose: SQL in, DataFrames out (and the reverse for a fit); the statistics are elsewhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, case, false, select, true
from sqlalchemy.orm import Session

from biomarkers.store import patient_feature_table
from biomarkers.timecourse import ADMISSION_CT_FEATURES
from prognosis.analysis_table import build_analysis_table
from prognosis.fitting import FitResult
from registry.db.engine import bulk_read
from registry.db.models import Center, ClinicalRecord, ModelFit, Outcome, Patient

_CLINICAL_FIELDS = ("age", "sex", "gcs_total", "gcs_motor", "pupils_unreactive", "hypoxia", "hypotension",
                    "glucose_mmol_l", "hemoglobin_g_dl", "marshall_ct", "tsah", "edh", "major_extracranial_injury")


def registry_frames(session: Session, feature_source: str = "auto",
                    with_ct_classes: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(clinical, outcomes, patient features) of every patient, keyed by center code and pseudonymous id; with
    `with_ct_classes` the patient features carry the admission scan's CT classifications too
    (`biomarkers.timecourse.ADMISSION_CT_FEATURES`)."""
    clin, outc = registry_frames_without_features(session)
    return clin, outc, patient_feature_table(session, feature_source, with_ct_classes=with_ct_classes)


def registry_frames_without_features(session: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clinical, outcomes) of every patient, keyed by center code and pseudonymous id."""
    # Plain columns, not ORM objects, straight into frames (yes/no as 1.0/0.0 in SQL): at 20,000 patients building
    # ClinicalRecord/Outcome objects and a dict per patient took seconds.
    def column(attr):  # noqa: ANN001, ANN202 - a column, yes/no ones as 1.0 / 0.0 / NULL
        if isinstance(attr.type, Boolean):
            return case((attr == true(), 1.0), (attr == false(), 0.0), else_=None).label(attr.key)
        return attr

    outcome_fields = ("gos_6m", "died", "days_to_death_or_censor")
    result = session.connection().execute(  # plain rows: no ORM row handling for 20,000 patients
        select(Center.code.label("center"), Patient.pseudo_id.label("patient_id"),
               *(column(getattr(ClinicalRecord, f)) for f in _CLINICAL_FIELDS),
               *(column(getattr(Outcome, f)) for f in outcome_fields))
        .join(Center, Center.id == Patient.center_id)
        .outerjoin(ClinicalRecord, ClinicalRecord.patient_id == Patient.id)
        .outerjoin(Outcome, Outcome.patient_id == Patient.id)
    )
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    clin = frame[["center", "patient_id", *_CLINICAL_FIELDS]].copy()
    outc = frame[["center", "patient_id", *outcome_fields]].copy()
    for col in clin.columns.drop(["center", "patient_id", "sex"]):
        clin[col] = pd.to_numeric(clin[col], errors="raise")
    for col in ("gos_6m", "died", "days_to_death_or_censor"):
        outc[col] = pd.to_numeric(outc[col], errors="raise")
    return clin, outc


def analysis_table_from_registry(session: Session, feature_source: str = "auto") -> pd.DataFrame:
    """The analysis table of every registered patient (imaging features from `feature_source`).

    Its Marshall class, EDH and tSAH are the admission scan's computed values where known, else the clinical
    record's, each with a `*_source` column (`prognosis.ct_inputs`): what `prognosis fit`, the IMPACT
    validation and the report use."""
    with bulk_read():  # tens of thousands of rows and values, no reference cycles
        clinical, outcomes, features = registry_frames(session, feature_source, with_ct_classes=True)
        if clinical.empty:
            raise ValueError("the registry has no patients: import clinical data and outcomes first "
                             "(ctstudy registry import-clinical / import-outcomes)")
        admission_ct = features[["center", "patient_id", *ADMISSION_CT_FEATURES]]
        return build_analysis_table(clinical, outcomes, features.drop(columns=list(ADMISSION_CT_FEATURES)),
                                    admission_ct)


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN / inf to None, DataFrames to records."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_model_fit(session: Session, result: FitResult, actor: str, artifact_path: str | None = None) -> ModelFit:
    """Store a fit (data hash, variables, coefficient table, metrics with curve data, spec) and return the row."""
    metrics = dict(result.metrics)
    metrics["curves"] = {name: curve for name, curve in result.curves.items()}
    if "ph_test" in result.extra:
        metrics["ph_test"] = result.extra["ph_test"].reset_index()
    for key in ("brant", "nonlinearity"):
        if key in result.extra:
            metrics[key] = result.extra[key]
    for key in ("caution", "estimation_note", "ph_caution", "brant_note"):
        if key in result.extra:
            metrics.setdefault("cautions", []).append(result.extra[key])
    coefficients = result.summary.reset_index() if result.summary is not None else []
    row = ModelFit(
        actor=actor, outcome=result.outcome, feature_set=result.feature_set, model_kind=result.model_kind,
        cv=result.cv, n_patients=result.n_patients, n_events=result.n_events, data_hash=result.data_hash,
        variables=list(result.variables), coefficients=jsonable(coefficients), metrics=jsonable(metrics),
        spec=jsonable(result.spec), artifact_path=artifact_path,
    )
    session.add(row)
    session.flush()
    return row


def find_same_fit(session: Session, data_hash: str, settings: dict[str, Any]) -> ModelFit | None:
    """The newest stored fit of this data snapshot with these settings (`fitting.fit_settings`), if any:
    fitting it again would give the same result, so `prognosis fit` reports it unchanged."""
    rows = session.scalars(select(ModelFit).where(ModelFit.data_hash == data_hash)
                           .order_by(ModelFit.id.desc())).all()
    wanted = jsonable(settings)
    for row in rows:
        spec = row.spec or {}
        if all(spec.get(k) == v for k, v in wanted.items()):
            return row
    return None


def latest_model_fits(session: Session) -> list[ModelFit]:
    """The newest fit of each (outcome, feature set, model kind, cv), newest first."""
    rows = session.scalars(select(ModelFit).order_by(ModelFit.created_at.desc(), ModelFit.id.desc())).all()
    seen, latest = set(), []
    for row in rows:
        key = (row.outcome, row.feature_set, row.model_kind, row.cv)
        if key not in seen:
            seen.add(key)
            latest.append(row)
    return latest


def model_fit_table(session: Session) -> pd.DataFrame:
    """All fits, one row each: id, when, who, what, n, events, data hash and the headline metrics."""
    rows = session.scalars(select(ModelFit).order_by(ModelFit.id)).all()
    return pd.DataFrame([{
        "id": r.id, "created_at": r.created_at, "actor": r.actor, "outcome": r.outcome, "feature_set": r.feature_set,
        "model_kind": r.model_kind, "cv": r.cv, "n_patients": r.n_patients, "n_events": r.n_events,
        "data_hash": r.data_hash[:12], "auc": r.metrics.get("auc"), "cv_auc": r.metrics.get("cv_auc"),
        "harrell_c": r.metrics.get("harrell_c"),
    } for r in rows])


def model_fit_dict(row: ModelFit) -> dict[str, Any]:
    """A stored fit as a plain dict (what the report and the dashboard read)."""
    return {c: getattr(row, c) for c in ("id", "created_at", "actor", "outcome", "feature_set", "model_kind", "cv",
                                         "n_patients", "n_events", "data_hash", "variables", "coefficients",
                                         "metrics", "spec", "artifact_path")}
