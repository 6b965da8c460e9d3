"""Burned-in annotation in series already in the registry: their stored files' BurnedInAnnotation read again.

Ingest flags a series whose images carry BurnedInAnnotation=YES (automatic QC reason
`burned_in_annotation`, registry.dicom_headers). Series stored before that check existed carry no flag;
this pass reads their stored headers (pixels skipped) and gives the reason to every undecided
(`pending` or `auto_failed`) series that has such an image: it turns `auto_failed` and stays out of
segmentation, exports and SEG until a coordinator passes it. A series a coordinator already passed or
failed keeps the decision and is listed for a second look. Each change is a QCDecision and an audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from registry.db.models import QC_AUTO_FAILED, QC_FAILED, QC_PASSED, QCDecision, Series
from registry.db.store import AUTO_QC_ACTOR, audit
from registry.dicom_headers import BURNED_IN_ANNOTATION, has_burned_in_annotation
from registry.instance_files import instance_file_paths
from registry.qc.series_qc import QC_REASONS

RECHECK_NOTE = "automatic check of the stored files: BurnedInAnnotation YES"


@dataclass
class BurnedInReport:
    """Series UIDs: newly flagged, already decided by a coordinator (left as decided), files unreadable."""

    flagged: list[str] = field(default_factory=list)
    decided: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    checked: int = 0


def flag_burned_in_series(engine: Engine, actor: str = "cli") -> BurnedInReport:
    """Give `burned_in_annotation` to every stored series whose files say BurnedInAnnotation=YES and that has
    no such reason yet; one transaction per series."""
    report = BurnedInReport()
    with Session(engine) as session:
        candidates = session.execute(select(Series.id, Series.series_instance_uid, Series.qc_reasons)
                                     .order_by(Series.id)).all()
    for series_id, uid, reasons in candidates:
        if BURNED_IN_ANNOTATION in (reasons or []):
            continue
        report.checked += 1
        with Session(engine) as session, session.begin():
            try:
                burned = any(_burned_in(path) for path in instance_file_paths(session, series_id))
            except (OSError, InvalidDicomError):
                report.unreadable.append(uid)
                continue
            if burned:
                _flag(session, series_id, actor, report)
    return report


def _burned_in(path: Path) -> bool:
    return has_burned_in_annotation(
        pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["BurnedInAnnotation"], force=True))


def _flag(session: Session, series_id: int, actor: str, report: BurnedInReport) -> None:
    series = session.get(Series, series_id, with_for_update=True)
    if series is None or BURNED_IN_ANNOTATION in (series.qc_reasons or []):
        return  # removed, or flagged by a concurrent ingest meanwhile
    if series.qc_status in (QC_PASSED, QC_FAILED):
        report.decided.append(series.series_instance_uid)
        return
    before = {"qc_status": series.qc_status, "qc_reasons": list(series.qc_reasons or [])}
    reasons = set(before["qc_reasons"]) | {BURNED_IN_ANNOTATION}
    series.qc_status = QC_AUTO_FAILED
    series.qc_reasons = [code for code in QC_REASONS if code in reasons]
    session.add(QCDecision(series_id=series.id, status=QC_AUTO_FAILED, reasons=series.qc_reasons,
                           actor=AUTO_QC_ACTOR, automatic=True, note=RECHECK_NOTE))
    audit(session, actor=actor, action="qc_recheck", entity_type="series", entity_id=series.series_instance_uid,
          before=before, after={"qc_status": QC_AUTO_FAILED, "qc_reasons": series.qc_reasons})
    report.flagged.append(series.series_instance_uid)
