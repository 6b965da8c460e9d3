"""Which patients' summaries are out of date, and storing recomputed ones (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, or_, select
from sqlalchemy.orm import Session

from registry.db.models import PatientRevision

# Above this many out-of-date patients a summary is recomputed for every patient in one pass (no IN list):
# cheaper than a long list of ids, and the list's length has limits on SQLite.
WHOLE_REGISTRY_ABOVE = 2000


def stale_patients(session: Session, summary: type, *also_stale: ColumnElement[bool]) -> dict[int, int]:
    """Patient id -> current revision, for every patient whose `summary` row is missing, was computed at another
    revision, or matches any of `also_stale` (e.g. made under other definitions).

    On PostgreSQL their revision rows stay locked until the caller's transaction ends: a second reader refreshing
    the same patients waits and then finds them current, and a write to one of them waits for the refresh (its
    new revision then makes the row out of date again). SQLite serialises writers by itself.
    """
    rows = session.connection().execute(
        select(PatientRevision.patient_id, PatientRevision.revision)
        .outerjoin(summary, summary.patient_id == PatientRevision.patient_id)
        .where(or_(summary.revision.is_(None), summary.revision != PatientRevision.revision, *also_stale))
        .order_by(PatientRevision.patient_id).with_for_update(of=PatientRevision.__table__)).all()
    return dict(rows)


def restricted(stmt: Select, patient_id: ColumnElement[int], patients: Sequence[int]) -> Select:
    """`stmt` limited to `patients` (by the column `patient_id`), or unchanged when they are many: the caller keeps
    the rows of the patients it asked for."""
    if len(patients) > WHOLE_REGISTRY_ABOVE:
        return stmt
    ids = bindparam("summary_patients", [int(p) for p in patients], expanding=True, literal_execute=True)
    return stmt.where(patient_id.in_(ids))


def store(session: Session, summary: type, rows: list[dict[str, Any]]) -> None:
    """Insert or replace `rows` (dicts of `summary`'s columns, `patient_id` and `revision` among them), in patient
    order (two concurrent refreshes then lock rows in the same order)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - ctstudy supports SQLite and PostgreSQL only
        raise RuntimeError(f"unsupported database {dialect}: use SQLite or PostgreSQL")
    stmt = insert(summary.__table__)
    columns = [c.name for c in summary.__table__.columns if c.name != "patient_id"]
    stmt = stmt.on_conflict_do_update(index_elements=["patient_id"], set_={c: stmt.excluded[c] for c in columns})
    session.connection().execute(stmt, sorted(rows, key=lambda r: r["patient_id"]))
