"""Each patient's series counted as the Collection page and `registry progress` count them: series by QC status,
series with a finished segmentation, studies with a series passed or pending QC (two make a follow-up), and
the admission scan with its QC-passed series (`registry missing` lists the patients whose has none).

`per_patient_counts` and `admission_scans` are the full queries (every series, aggregated per study first: one
pass over the series table, no join before grouping); `refresh` stores their rows in `PatientSeriesCounts` for
the patients whose revision moved (with their arrivals per day, `arrivals`), and `per_center` sums the stored
rows per center.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from registry.db.models import (
    QC_AUTO_FAILED,
    QC_FAILED,
    QC_PASSED,
    QC_PENDING,
    RUN_DONE,
    Center,
    Patient,
    PatientSeriesCounts,
    QCDecision,
    SegmentationRun,
    Series,
    Study,
)
from registry.summary import arrivals, revisions

STATUS_COUNTS = ("series", "qc_passed", "qc_failed_auto", "qc_failed_manual", "qc_pending")


def series_status(cutoff: dt.datetime | None, patients: Sequence[int] | None = None) -> Select:
    """One row per series arrived by `cutoff` (of `patients` only, when given): series id, study id and the QC
    status then (no join when `cutoff` and `patients` are None)."""
    base = select(Series.id.label("series_id"), Series.study_id)
    if patients is not None:
        base = base.where(Series.study_id.in_(studies_of(patients)))
    if cutoff is None:
        return base.add_columns(Series.qc_status.label("status"))
    # The status as of the date is that of the latest decision taken by then (every series gets an
    # automatic one at ingest); decision ids grow with time, so max(id) is the latest.
    latest = (
        select(QCDecision.series_id, func.max(QCDecision.id).label("decision_id"))
        .where(QCDecision.decided_at < cutoff)
        .group_by(QCDecision.series_id)
        .subquery()
    )
    return (
        base.add_columns(func.coalesce(QCDecision.status, literal(QC_PENDING)).label("status"))
        .outerjoin(latest, latest.c.series_id == Series.id)
        .outerjoin(QCDecision, QCDecision.id == latest.c.decision_id)
        .where(Series.ingested_at < cutoff)
    )


def studies_of(patients: Sequence[int]) -> Select:
    """The ids of the studies of `patients` (patient ids)."""
    return revisions.restricted(select(Study.id), Study.patient_id, patients)


def per_patient_counts(cutoff: dt.datetime | None = None, count_segmented: bool = True,
                       patients: Sequence[int] | None = None) -> Select:
    """Per patient with a series (arrived by `cutoff`; of `patients` only, when given): patient_id, the
    STATUS_COUNTS, `segmented` when asked, and `usable_studies` (studies with a series passed or pending QC)."""
    status = series_status(cutoff, patients).subquery()

    def n_status(*values: str):  # noqa: ANN202 - a SQL expression
        return func.sum(case((status.c.status.in_(values), 1), else_=0))

    per_study = (select(status.c.study_id, func.count().label("series"),
                        n_status(QC_PASSED).label("qc_passed"), n_status(QC_AUTO_FAILED).label("qc_failed_auto"),
                        n_status(QC_FAILED).label("qc_failed_manual"), n_status(QC_PENDING).label("qc_pending"),
                        func.max(case((status.c.status.in_((QC_PASSED, QC_PENDING)), 1), else_=0)).label("usable"))
                 .group_by(status.c.study_id))
    if count_segmented:
        done = select(SegmentationRun.series_id).where(SegmentationRun.status == RUN_DONE).distinct().subquery()
        per_study = (per_study.add_columns(func.count(done.c.series_id).label("segmented"))
                     .outerjoin(done, done.c.series_id == status.c.series_id))
    per_study = per_study.subquery()
    counted = [*STATUS_COUNTS, *(["segmented"] if count_segmented else [])]
    return (select(Study.patient_id, *(func.sum(per_study.c[c]).label(c) for c in counted),
                   func.sum(per_study.c.usable).label("usable_studies"))
            .join(per_study, per_study.c.study_id == Study.id).group_by(Study.patient_id))


def admission_scans(center: str | None = None, patients: Sequence[int] | None = None) -> Select:
    """Per patient with a series (of `center`, or of `patients`, when given): patient_id, the admission scan's
    study_id and `passed`, how many of its series passed QC.

    The admission scan is the patient's earliest study (ties and undated last, then by study id). Ranked in SQL (a
    window over per-study aggregates). The series are aggregated per study first (one pass, no join): a study's
    date is its earliest series' acquisition, or the study's own date where that is earlier and some series is
    undated (what the earliest of each series' acquisition-else-study date is).
    """
    counted = (select(Series.study_id, func.sum(case((Series.qc_status == QC_PASSED, 1), else_=0)).label("passed"),
                      func.min(Series.acquisition_datetime).label("first_acquired"),
                      func.sum(case((Series.acquisition_datetime.is_(None), 1), else_=0)).label("undated"))
               .group_by(Series.study_id))
    if center:  # one center's series only, found through the indexes
        counted = counted.where(Series.study_id.in_(
            select(Study.id).join(Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id)
            .where(Center.code == center)))
    if patients is not None:
        counted = counted.where(Series.study_id.in_(studies_of(patients)))
    counted = counted.subquery()
    when = case((and_(counted.c.undated > 0, Study.study_datetime.is_not(None),
                      or_(counted.c.first_acquired.is_(None), Study.study_datetime < counted.c.first_acquired)),
                 Study.study_datetime), else_=counted.c.first_acquired)
    per_study = (
        select(Study.patient_id, Study.id.label("study_id"), counted.c.passed,
               func.row_number().over(partition_by=Study.patient_id,
                                      order_by=(when.asc().nulls_last(), Study.id)).label("rank"))
        .join(counted, counted.c.study_id == Study.id)
    )
    if center:
        per_study = per_study.join(Patient, Study.patient_id == Patient.id).join(
            Center, Patient.center_id == Center.id).where(Center.code == center)
    ranked = per_study.subquery()
    return select(ranked.c.patient_id, ranked.c.study_id, ranked.c.passed).where(ranked.c.rank == 1)


def refresh(session: Session) -> int:
    """Recompute and store the counts, admission scan and arrivals per day (`arrivals`) of every patient whose
    revision moved; how many were recomputed."""
    stale = revisions.stale_patients(session, PatientSeriesCounts)
    if not stale:
        return 0
    patients = list(stale) if len(stale) <= revisions.WHOLE_REGISTRY_ABOVE else None  # None: every patient
    connection = session.connection()
    counted = {row["patient_id"]: row for row in connection.execute(
        per_patient_counts(patients=patients)).mappings()}
    admission = {row["patient_id"]: row for row in connection.execute(
        admission_scans(patients=patients)).mappings()}
    zero = dict.fromkeys([*STATUS_COUNTS, "segmented", "usable_studies"], 0)
    rows = []
    for patient_id, revision in stale.items():
        found = counted.get(patient_id, zero)  # every series of theirs gone: counted as none
        first = admission.get(patient_id)
        rows.append({"patient_id": patient_id, "revision": revision, **{c: int(found[c] or 0) for c in zero},
                     "admission_study_id": first["study_id"] if first else None,
                     "admission_passed": int(first["passed"] or 0) if first else 0})
    revisions.store(session, PatientSeriesCounts, rows)
    arrivals.store(session, stale, patients)
    return len(rows)


def per_center(count_segmented: bool = True) -> Select:
    """Per center id, from the stored counts (`refresh` first): with_ct, the STATUS_COUNTS, `segmented` when asked
    and with_follow_up (patients with two or more usable studies): what the full query gives per center."""
    c = PatientSeriesCounts
    counted = [*STATUS_COUNTS, *(["segmented"] if count_segmented else [])]
    return (select(Patient.center_id, func.count().label("with_ct"), *(func.sum(c.__table__.c[n]).label(n)
                                                                       for n in counted),
                   func.sum(case((c.usable_studies >= 2, 1), else_=0)).label("with_follow_up"))
            .join(Patient, Patient.id == c.patient_id).where(c.series > 0).group_by(Patient.center_id))
