"""The series that await a coordinator's QC decision, and finding a series by the short reference people see.

Screens and tables show a series as '…16578426' (`vocabulary.dictionary.short_uid`, the UID's last characters);
`ctstudy registry qc` takes that reference as well as the full SeriesInstanceUID, and `registry qc-queue` lists
what still needs a decision (waiting for review, or failed the automatic checks), oldest first.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import QC_AUTO_FAILED, QC_PENDING, Center, Patient, Series, Study
from registry.db.rows import Rows
from vocabulary import dictionary

NEEDS_DECISION = (QC_PENDING, QC_AUTO_FAILED)
QUEUE_COLUMNS = ("reference", "center", "pseudo_id", "days_from_injury", "description", "slices", "qc_status",
                 "qc_reasons", "series_uid")
# How a short reference may be written: the ellipsis the screens show, or three dots typed on a keyboard.
_REFERENCE_PREFIXES = ("…", "...")


class SeriesReferenceError(LookupError):
    """A series reference that names no series, or more than one."""


def resolve_series_uid(session: Session, reference: str, center: str | None = None) -> str:
    """The SeriesInstanceUID that `reference` names: the full UID, or its last characters ('…16578426',
    '...16578426' or '16578426'). Raises SeriesReferenceError when it names no series or several (listing them)."""
    text = reference.strip()
    for prefix in _REFERENCE_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if not text:
        raise SeriesReferenceError("no series reference given: pass the SeriesInstanceUID or its last characters "
                                   "as shown in the QC queue (e.g. …16578426)")
    scope = select(Series.series_instance_uid).join(Study, Series.study_id == Study.id).join(
        Patient, Study.patient_id == Patient.id).join(Center, Patient.center_id == Center.id)
    if center is not None:
        scope = scope.where(Center.code == center)
    exact = session.scalar(scope.where(Series.series_instance_uid == text))
    if exact is not None:
        return exact
    # A UID holds digits and dots only, so the reference cannot carry LIKE wildcards; the query still escapes them.
    matches = list(session.scalars(scope.where(Series.series_instance_uid.endswith(text, autoescape=True))
                                   .order_by(Series.series_instance_uid).limit(6)))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SeriesReferenceError(f"no series whose UID ends in {text!r}" + (f" in center {center}" if center else "")
                                   + ": check the reference (`ctstudy registry qc-queue` lists the series awaiting "
                                   "a decision)")
    shown = ", ".join(matches[:5]) + (" and more" if len(matches) > 5 else "")
    raise SeriesReferenceError(f"{reference.strip()!r} matches several series ({shown}): give more of the UID")


def qc_queue_rows(session: Session, center: str | None = None) -> Rows:
    """The series awaiting a QC decision (waiting for review, or failed the automatic checks), oldest first.

    Columns QUEUE_COLUMNS: reference (the short reference), center, pseudo_id, days_from_injury, description,
    slices, qc_status (code), qc_reasons (automatic reason codes, comma-separated) and series_uid (the full UID).
    """
    stmt = (select(Series.series_instance_uid, Center.code, Patient.pseudo_id, Series.days_from_injury,
                   Series.description, Series.instance_count, Series.qc_status, Series.qc_reasons)
            .join(Study, Series.study_id == Study.id).join(Patient, Study.patient_id == Patient.id)
            .join(Center, Patient.center_id == Center.id)
            .where(Series.qc_status.in_(NEEDS_DECISION))
            .order_by(Series.ingested_at, Series.id))
    if center is not None:
        stmt = stmt.where(Center.code == center)
    rows = []
    for uid, code, pseudo_id, day, description, slices, status, reasons in session.execute(stmt):
        rows.append((dictionary.short_uid(uid), code, pseudo_id, day, description or "", slices, status,
                     ", ".join(reasons or []), uid))
    return Rows(QUEUE_COLUMNS, rows)
