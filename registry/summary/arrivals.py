"""Each patient's series per day, by when they were scanned and when they were received, and the patient's first
such day: the Collection page's arrival curves, stored per patient (`PatientArrivalDay`) with the patient's
series counts (`series_counts`).

`per_patient_days` is the full query: series counted per study and day first (one pass over the series table,
no join), an undated series taking its study's date when scanned, then summed per patient and day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from registry.db.models import PatientArrivalDay, Series, Study
from registry.summary import revisions

BASES = ("scanned", "received")


def per_patient_days(basis: str, patients: Sequence[int] | None = None) -> Select:
    """Per patient (of `patients` only, when given) and day: patient_id, day, series (how many arrived that day);
    `basis` "scanned" (acquired, else the study's date; undated left out) or "received" (ingested)."""
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, not {basis!r}")
    scanned = basis == "scanned"
    day = func.date(Series.acquisition_datetime if scanned else Series.ingested_at)
    per_study_day = select(Series.study_id, day.label("day"), func.count().label("n")).group_by(Series.study_id, day)
    if patients is not None:
        per_study_day = per_study_day.where(Series.study_id.in_(
            revisions.restricted(select(Study.id), Study.patient_id, patients)))
    per_study_day = per_study_day.subquery()
    dated = func.coalesce(per_study_day.c.day, func.date(Study.study_datetime)) if scanned else per_study_day.c.day
    return (select(Study.patient_id, dated.label("day"), func.sum(per_study_day.c.n).label("series"))
            .join(Study, Study.id == per_study_day.c.study_id).where(dated.is_not(None))
            .group_by(Study.patient_id, dated))


def _date(value: object) -> dt.date:
    """SQL date() as a date: SQLite gives 'YYYY-MM-DD' text, PostgreSQL a date."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def store(session: Session, stale: dict[int, int], patients: Sequence[int] | None) -> None:
    """Replace the stored days of the `stale` patients (ids -> revision) by the full query's (`patients`: the ids
    to compute for, None for every patient)."""
    connection = session.connection()
    ids = list(stale)
    for start in range(0, len(ids), revisions.WHOLE_REGISTRY_ABOVE):  # IN lists of bounded length
        connection.execute(delete(PatientArrivalDay).where(
            PatientArrivalDay.patient_id.in_(ids[start:start + revisions.WHOLE_REGISTRY_ABOVE])))
    rows = []
    for basis in BASES:
        days: dict[int, list[tuple[dt.date, int]]] = {}
        for r in connection.execute(per_patient_days(basis, patients)):
            if r.patient_id in stale:
                days.setdefault(r.patient_id, []).append((_date(r.day), int(r.series)))
        for patient_id, counted in days.items():
            first = min(day for day, _ in counted)
            rows += [{"patient_id": patient_id, "basis": basis, "day": day, "series": n, "first_day": int(day == first)}
                     for day, n in counted]
    if rows:
        connection.execute(PatientArrivalDay.__table__.insert(), rows)
