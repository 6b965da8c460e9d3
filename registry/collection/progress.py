"""Collection progress per center and what each center still owes.

Counting is done by the database (GROUP BY center), never by looping over rows in Python, so that
the dashboard's progress page stays fast on thousands of series on SQLite and PostgreSQL alike.
The reads return `registry.db.rows.Rows`, built without pandas: `ctstudy registry progress` and
`registry missing` start in under a second. The dashboard takes DataFrames (`collection_progress`,
`missing_items`, `missing_summary`), which are those rows with `to_frame()`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, bindparam, case, distinct, func, select
from sqlalchemy.orm import Session

from registry.db.engine import bulk_read
from registry.db.models import (
    QC_AUTO_FAILED,
    QC_FAILED,
    QC_PENDING,
    Center,
    ClinicalRecord,
    Outcome,
    Patient,
    PatientSeriesCounts,
    Series,
    Study,
)
from registry.db.rows import Rows
from registry.summary import series_counts
from vocabulary import dictionary

if TYPE_CHECKING:
    import pandas as pd

TOTAL = "TOTAL"
PROGRESS_COLUMNS = [
    "center", "patients", "with_ct", "series", "qc_passed", "qc_failed_auto", "qc_failed_manual", "qc_pending",
    "with_clinical", "with_outcome", "with_follow_up",
]
MISSING_ITEMS = ("no_ct", "no_clinical", "no_outcome", "no_qc_passed_admission_scan", "series_pending_review")


def _cutoff(as_of: dt.date | dt.datetime | None) -> dt.datetime | None:
    """Exclusive upper bound: a date means the whole of that day."""
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        return as_of.replace(tzinfo=None) + dt.timedelta(microseconds=1)
    return dt.datetime.combine(as_of, dt.time()) + dt.timedelta(days=1)


def _series_counts(cutoff: dt.datetime | None, count_segmented: bool) -> Select:
    """Per center id, in one statement: patients with a CT, series by QC status, patients with a follow-up scan
    (a second study with a series that has not failed QC) and, when asked, series with a finished segmentation:
    the full query over every series (`series_counts.per_patient_counts`), summed per center.
    """
    per_patient = series_counts.per_patient_counts(cutoff, count_segmented).subquery()
    counted = [*series_counts.STATUS_COUNTS, *(["segmented"] if count_segmented else [])]
    return (select(Patient.center_id, func.count().label("with_ct"),
                   *(func.sum(per_patient.c[c]).label(c) for c in counted),
                   func.sum(case((per_patient.c.usable_studies >= 2, 1), else_=0)).label("with_follow_up"))
            .join(per_patient, per_patient.c.patient_id == Patient.id).group_by(Patient.center_id))


def progress_rows(session: Session, as_of: dt.date | dt.datetime | None = None, *,
                  count_segmented: bool = False) -> Rows:
    """Per center (sorted by code, and a TOTAL line): patients, series by QC status, clinical data, outcomes,
    follow-ups; the columns of PROGRESS_COLUMNS.

    `as_of` counts only what had arrived, and QC decisions taken, by then (a date includes that day).
    `count_segmented` adds `series_segmented`: series with a finished segmentation (by any model).
    """
    cutoff = _cutoff(as_of)
    clinical_on = ClinicalRecord.patient_id == Patient.id
    outcome_on = Outcome.patient_id == Patient.id
    patient_on = Patient.center_id == Center.id
    if cutoff is not None:
        clinical_on = and_(clinical_on, ClinicalRecord.imported_at < cutoff)
        outcome_on = and_(outcome_on, Outcome.imported_at < cutoff)
        patient_on = and_(patient_on, Patient.created_at < cutoff)
    connection = session.connection()
    patients = connection.execute(
        select(Center.id.label("center_id"), Center.code.label("center"),
               func.count(distinct(Patient.id)).label("patients"),
               func.count(distinct(ClinicalRecord.id)).label("with_clinical"),
               func.count(distinct(Outcome.id)).label("with_outcome"))
        .select_from(Center)
        .outerjoin(Patient, patient_on)
        .outerjoin(ClinicalRecord, clinical_on)
        .outerjoin(Outcome, outcome_on)
        .group_by(Center.id, Center.code)
    ).mappings().all()
    if cutoff is None:  # the current counts: per patient, kept in step with the series (registry.summary)
        series_counts.refresh(session)
        per_center = series_counts.per_center(count_segmented)
    else:
        per_center = _series_counts(cutoff, count_segmented)
    series = {row["center_id"]: row for row in connection.execute(per_center).mappings().all()}
    columns = PROGRESS_COLUMNS + (["series_segmented"] if count_segmented else [])
    counts = columns[1:]

    def count(center: dict[str, Any], column: str) -> int:
        if column in center:
            return int(center[column] or 0)
        of_series = series.get(center["center_id"], {})
        return int(of_series.get("segmented" if column == "series_segmented" else column) or 0)

    table = [(row["center"], *(count(row, c) for c in counts)) for row in sorted(patients, key=lambda r: r["center"])]
    total = (TOTAL, *(sum(row[i] for row in table) for i in range(1, len(columns))))
    return Rows(tuple(columns), [*table, total])


def collection_progress(session: Session, as_of: dt.date | dt.datetime | None = None, *,
                        count_segmented: bool = False) -> pd.DataFrame:
    """`progress_rows` as a DataFrame (the dashboard's)."""
    return progress_rows(session, as_of, count_segmented=count_segmented).to_frame()


MISSING_COLUMNS = ["center", "pseudo_id", "item", "what", "reference", "reason", "detail"]
PENDING_REVIEW = "series_pending_review"


def missing_item_rows(session: Session, center: str | None = None) -> Rows:
    """What each center still owes, one row per (patient or series, item), sorted by center, item, pseudonym.

    Columns: center, pseudo_id, item (the code), what (the item in words, from the data dictionary),
    reference (a short identifier to search for: '…' and the last characters of the study or series UID),
    reason (why, in words: the QC reasons of the admission scan's series) and detail (the full UID, for
    exports and scripts).
    """
    patient_filter = [Center.code == center] if center else []
    base = select(Center.code.label("center"), Patient.pseudo_id, Patient.id).join(Patient.center).where(
        *patient_filter)
    items: list[tuple[str, str, str, str, str]] = []  # center, pseudo_id, item, reason, detail

    def add(item: str, query: Select, reason: str = "") -> None:
        with bulk_read():  # plain tuples by column position: looking absent keys up in row mappings cost more
            result = session.connection().execute(query)
            keys = list(result.keys())
            rows = result.all()
        at = {k: keys.index(k) for k in ("center", "pseudo_id", "reason", "detail") if k in keys}
        c, p, r, d = at["center"], at["pseudo_id"], at.get("reason"), at.get("detail")
        items.extend((row[c], row[p], item, reason if r is None else row[r], "" if d is None else row[d])
                     for row in rows)

    series_counts.refresh(session)  # the per-patient summaries read below, brought up to date
    with_ct = select(PatientSeriesCounts.patient_id).where(PatientSeriesCounts.series > 0)
    add("no_ct", base.where(Patient.id.not_in(with_ct)), "clinical data or outcome arrived, no CT series")
    add("no_clinical", base.where(Patient.id.not_in(select(ClinicalRecord.patient_id))), "no row in clinical.csv")
    add("no_outcome", base.where(Patient.id.not_in(select(Outcome.patient_id))), "no row in outcomes.csv")

    # The admission scan is the patient's earliest study (ties and undated last, then by study id); it owes a
    # QC-passed series. Read from the per-patient summaries (`series_counts.admission_scans` is the full query), so
    # only the owed studies come back, not one row per study or series of the registry.
    owed = _mappings(session, (
        select(Center.code.label("center"), Patient.pseudo_id, Study.id.label("study_id"), Study.study_instance_uid)
        .select_from(PatientSeriesCounts).join(Study, Study.id == PatientSeriesCounts.admission_study_id)
        .join(Patient, PatientSeriesCounts.patient_id == Patient.id).join(Center, Patient.center_id == Center.id)
        .where(PatientSeriesCounts.admission_passed == 0, *patient_filter)))
    why = _study_qc_reasons(session, [row["study_id"] for row in owed])
    items += [(row["center"], row["pseudo_id"], "no_qc_passed_admission_scan", why.get(row["study_id"], ""),
               row["study_instance_uid"]) for row in owed]

    add(PENDING_REVIEW,
        select(Center.code.label("center"), Patient.pseudo_id, Series.series_instance_uid.label("detail"),
               func.coalesce(Series.description, "").label("reason"))
        .join(Study, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
        .join(Center, Patient.center_id == Center.id)
        .where(Series.qc_status == QC_PENDING, *patient_filter))

    what = {item: dictionary.label(item) for item in {row[2] for row in items}}
    rows = []
    for center_code, pseudo_id, item, reason, detail in sorted(items, key=lambda r: (r[0], r[2], r[1])):
        detail = "" if detail is None else str(detail)
        pending = item == PENDING_REVIEW
        reference = f"{'series' if pending else 'study'} {dictionary.short_uid(detail)}" if detail else ""
        if pending:
            reason = "waiting for a reviewer" + (f" (series '{reason}')" if reason else "")
        rows.append((center_code, pseudo_id, item, what[item], reference, reason, detail))
    return Rows(tuple(MISSING_COLUMNS), rows)


def missing_items(session: Session, center: str | None = None) -> pd.DataFrame:
    """`missing_item_rows` as a DataFrame (the dashboard's)."""
    return missing_item_rows(session, center).to_frame()


def _mappings(session: Session, query: Select) -> list[Any]:
    """The rows of `query` as mappings, read through the session's connection (plain rows: no ORM row handling,
    which cost more than the query itself on tens of thousands of rows)."""
    with bulk_read():
        return session.connection().execute(query).mappings().all()


def _study_qc_reasons(session: Session, study_ids: list[int]) -> dict[int, str]:
    """Per study, why none of its series passed QC, in words: 'series …12345678 failed automatic checks: Too few
    slices; series …87654321 waiting for review'."""
    if not study_ids:
        return {}
    ids = bindparam("study_ids", [int(i) for i in study_ids], expanding=True, literal_execute=True)  # integers inline
    rows = session.connection().execute(
        select(Series.study_id, Series.series_instance_uid, Series.qc_status, Series.qc_reasons)
        .where(Series.study_id.in_(ids)).order_by(Series.study_id, Series.series_number, Series.id)).all()
    texts: dict[int, list[str]] = {}
    for study_id, uid, status, reasons in rows:
        words = {QC_AUTO_FAILED: "failed automatic checks", QC_FAILED: "failed by the reviewer",
                 QC_PENDING: "waiting for review"}.get(status, status)
        because = ", ".join(dictionary.label(r) for r in (reasons or []))
        texts.setdefault(study_id, []).append(f"series {dictionary.short_uid(uid)} {words}"
                                              + (f": {because}" if because else ""))
    return {k: "; ".join(v) for k, v in texts.items()}


def missing_summary_rows(items: Rows | pd.DataFrame) -> Rows:
    """Counts of missing items (`missing_item_rows`, or its frame) per center and item: one column per item of
    MISSING_ITEMS, centers sorted, and a TOTAL line."""
    counted = Counter(zip(items["center"], items["item"], strict=True))
    centers = sorted({center for center, _ in counted})
    rows = [(center, *(counted[center, item] for item in MISSING_ITEMS)) for center in centers]
    total = (TOTAL, *(sum(row[i] for row in rows) for i in range(1, len(MISSING_ITEMS) + 1)))
    return Rows(("center", *MISSING_ITEMS), [*rows, total])


def missing_summary(items: Rows | pd.DataFrame) -> pd.DataFrame:
    """`missing_summary_rows` as a DataFrame (the dashboard's)."""
    return missing_summary_rows(items).to_frame()
