"""The registry's small database operations shared by ingest, imports, QC and the dashboard.

Every function takes a SQLAlchemy `Session` and leaves committing to the caller, so that a caller
can make several of them one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from registry.db.models import (
    QC_FAILED,
    QC_PASSED,
    AuditEvent,
    Center,
    ClinicalRecord,
    Patient,
    QCDecision,
    Series,
    Study,
)
from registry.identifiers import normalized_center

AUTO_QC_ACTOR = "auto-qc"
MANUAL_QC_STATUSES = (QC_PASSED, QC_FAILED)


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record who did what to which entity, with the state before and after (JSON-safe values)."""
    event = AuditEvent(**_audit_row(actor, action, entity_type, entity_id, before, after))
    session.add(event)
    return event


def insert_audit(
    connection: Connection,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """`audit`'s row written by one Core INSERT on `connection` (the same columns and values, no ORM object, the
    values passed as parameters): for writers of many rows, where the ORM's unit of work costs more than the row."""
    connection.execute(insert(AuditEvent), _audit_row(actor, action, entity_type, entity_id, before, after))


def _audit_row(actor: str, action: str, entity_type: str, entity_id: str | None, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> dict[str, Any]:
    """An audit event's column values, the states made JSON-safe."""
    return {"actor": actor, "action": action, "entity_type": entity_type, "entity_id": entity_id,
            "before": _jsonable(before), "after": _jsonable(after)}


def center_id_by_code(session: Session, code: str) -> int:
    """`center_by_code(session, code).id` in Core statements on the session's connection (no ORM object)."""
    code = normalized_center(code)
    query = select(Center.id).where(Center.code == code)
    found = session.connection().execute(query).scalar_one_or_none()
    if found is None:
        insert_unless_present(session, Center, {"code": code}, ("code",))
        found = session.connection().execute(query).scalar_one()
    return found


def patient_id_by_pseudo_id(session: Session, center_id: int, pseudo: str) -> tuple[int, bool]:
    """`patient_by_pseudo_id` in Core statements on the session's connection: (the patient's id, created)."""
    query = select(Patient.id, Patient.center_id).where(Patient.pseudo_id == pseudo)
    found = session.connection().execute(query).one_or_none()
    created = False
    if found is None:
        created = insert_unless_present(session, Patient, {"pseudo_id": pseudo, "center_id": center_id},
                                        ("pseudo_id",))
        found = session.connection().execute(query).one()
    if found.center_id != center_id:
        raise ValueError(f"pseudonym {pseudo} already belongs to another center")
    return found.id, created


def center_by_code(session: Session, code: str, *, create: bool = True) -> Center | None:
    """The center with this code (normalized: `registry.identifiers`), created if new unless `create=False`
    (safe when another ingest creates it at the same moment)."""
    code = normalized_center(code)
    center = session.scalars(select(Center).where(Center.code == code)).one_or_none()
    if center is None and create:
        insert_unless_present(session, Center, {"code": code}, ("code",))
        center = session.scalars(select(Center).where(Center.code == code)).one()
    return center


def patient_by_pseudo_id(session: Session, center: Center, pseudo: str) -> tuple[Patient, bool]:
    """The patient with this pseudonym, created under `center` if new; (patient, created).

    Safe under concurrency: two ingests meeting the same new patient both end with the one row.
    """
    patient = session.scalars(select(Patient).where(Patient.pseudo_id == pseudo)).one_or_none()
    created = False
    if patient is None:
        created = insert_unless_present(session, Patient, {"pseudo_id": pseudo, "center_id": center.id},
                                        ("pseudo_id",))
        patient = session.scalars(select(Patient).where(Patient.pseudo_id == pseudo)).one()
    if patient.center_id != center.id:
        raise ValueError(f"pseudonym {pseudo} already belongs to another center")
    return patient, created


def insert_unless_present(session: Session, model: type, values: dict[str, Any], unique: tuple[str, ...]) -> bool:
    """INSERT ... ON CONFLICT (unique) DO NOTHING; True when this call inserted the row.

    The get-or-create of rows that concurrent runs may create at the same moment (a center, a
    patient): a plain SELECT-then-INSERT lets both runs insert and the second fail on the unique
    constraint. PostgreSQL waits for the other transaction and then skips the duplicate; SQLite
    serialises writers, so the row is either there or ours.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - ctstudy supports SQLite and PostgreSQL only
        raise RuntimeError(f"unsupported database {dialect}: use SQLite or PostgreSQL")
    result = session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=list(unique)))
    return bool(result.rowcount)


def repeated_qc_decision(session: Session, series_uid: str, status: str, reason: str | None) -> QCDecision | None:
    """The reviewer decision this one would repeat (same verdict, same reason, and still the series' status),
    or None. A repeat is not recorded again: no second row, no second audit event."""
    reason = (reason or "").strip() or None
    latest = session.scalars(
        select(QCDecision).join(Series, QCDecision.series_id == Series.id)
        .where(Series.series_instance_uid == series_uid, QCDecision.automatic.is_(False))
        .order_by(QCDecision.id.desc()).limit(1)).one_or_none()
    if latest is None or latest.status != status or latest.series.qc_status != status:
        return None
    return latest if (latest.note or None) == reason else None


def record_qc_decision(
    session: Session, series_uid: str, status: str, reason: str | None, actor: str
) -> QCDecision:
    """A coordinator's QC verdict (`passed` or `failed`, a reason required to fail) on one series.

    Sets `Series.qc_status`, keeps the decision in QCDecision next to the automatic one, and audits
    the change with before/after. The dashboard's QC page calls this. The same decision again (see
    `repeated_qc_decision`) returns the stored one and writes nothing.
    """
    if status not in MANUAL_QC_STATUSES:
        raise ValueError(f"QC status must be one of {', '.join(MANUAL_QC_STATUSES)}, not {status!r}")
    reason = (reason or "").strip() or None
    if status == QC_FAILED and not reason:
        raise ValueError("failing a series needs a reason (--reason TEXT)")
    if not actor or not actor.strip():
        raise ValueError("a QC decision needs an actor (who decided)")
    series = session.scalars(select(Series).where(Series.series_instance_uid == series_uid)).one_or_none()
    if series is None:
        raise LookupError(f"no series with SeriesInstanceUID {series_uid} in the registry")
    repeated = repeated_qc_decision(session, series_uid, status, reason)
    if repeated is not None:  # the same decision twice (a double click, a re-run): keep the first, add nothing
        return repeated
    before = {"qc_status": series.qc_status, "qc_reasons": list(series.qc_reasons or [])}
    series.qc_status = status
    series.qc_reasons = [reason] if status == QC_FAILED else []
    decision = QCDecision(series_id=series.id, status=status, reasons=[reason] if reason else [], note=reason,
                          actor=actor.strip(), automatic=False)
    session.add(decision)
    audit(session, actor=actor.strip(), action="qc_decision", entity_type="series", entity_id=series_uid,
          before=before, after={"qc_status": status, "qc_reasons": series.qc_reasons})
    session.flush()
    return decision


def days_between(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    """Days from `start` to `end` (fractional, 3 decimals), None when either is unknown."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 86400.0, 3)


def update_days_from_injury(session: Session, patient_ids: Iterable[int]) -> int:
    """Recompute `Series.days_from_injury` of these patients' series; returns how many changed.

    Called after clinical data arrive (the injury time may come after the images) and after ingest.
    """
    ids = list(set(patient_ids))
    changed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(Series, ClinicalRecord.injury_datetime)
            .join(Study, Series.study_id == Study.id)
            .outerjoin(ClinicalRecord, ClinicalRecord.patient_id == Study.patient_id)
            .where(Study.patient_id.in_(chunk))
        ).all()
        for series, injury in rows:
            days = days_between(injury, series.acquisition_datetime)
            if days != series.days_from_injury:
                series.days_from_injury = days
                changed += 1
    return changed


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
