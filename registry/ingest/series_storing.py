"""Storing one series in the caller's transaction: its checks, its files placed in the archive (or linked in
place), and its rows.

The checks, in order: the members agreeing with the series' majority, the registry's own de-identified copies
refused, the instances the registry does not know yet, the series' and study's UIDs owned by the same patient
and study, and, for a series a coordinator already decided on, its new files that are broken on their own.
A known SOPInstanceUID with different bytes is a conflict: reported and recorded, never overwritten.

Then the new files are placed (`registry.ingest.series_archive`), and the rows written: the study when new, the
series with its geometry, facts and automatic QC (extended series: the QC of all its files, stored and new),
its automatic QC decision, the instances and the audit event. A check that fails rolls back what the
transaction wrote and rejects the files with the reason.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
from sqlalchemy import Connection, Row, Select, bindparam, insert, select, update
from sqlalchemy.orm import Session

from registry.db.models import QC_FAILED, QC_PASSED, ClinicalRecord, Instance, Patient, QCDecision, Series, Study
from registry.db.store import AUTO_QC_ACTOR, center_id_by_code, days_between, insert_audit, patient_id_by_pseudo_id
from registry.deid.deidentified_header import remembered_mapped_uid
from registry.deid.pseudonym import pseudo_id
from registry.dicom_headers import InstanceHeader, RejectedFile, read_instance_header
from registry.home import Home
from registry.ingest.archive_copy import StagedCopy, fsync_files
from registry.ingest.report import (
    ARCHIVE_UNREADABLE,
    CONFLICT,
    DEFECTIVE_INSTANCE,
    REGISTRY_COPY,
    SERIES_CONFLICT,
    SERIES_INCONSISTENT,
    IngestReport,
    RejectedItem,
    reject_all,
)
from registry.ingest.series_archive import copy_into_archive, link_in_place, series_folder
from registry.ingest.series_facts import series_facts
from registry.instance_files import instance_file_paths
from registry.qc.series_qc import QCThresholds, SeriesSummary, own_reasons, summarize_series


def store_series(
    session: Session, home: Home, key: bytes, center_code: str, headers: list[InstanceHeader], *,
    in_place: bool, actor: str, report: IngestReport, thresholds: QCThresholds | None,
    writers: ProcessPoolExecutor | None = None, flusher: ThreadPoolExecutor | None = None,
    flushes: list[Future[None]] | None = None, staged: dict[str, StagedCopy] | None = None,
) -> None:
    """Store one series' new instances, geometry and automatic QC (the caller commits).

    The flush of the archive copies written is handed to `flusher` and appended to `flushes`, for the
    caller to await before committing (without a flusher, the copies are flushed here).
    """
    headers = _consistent_members(headers, report)
    first = headers[0]
    if _registry_copy(session, key, headers, report):
        return
    new = _new_instances(session, headers, report)
    if not new:
        return

    owners = _owners(session, key, center_code, first, new, report)
    if owners is None:
        session.rollback()
        return
    if owners.known is not None and owners.known.qc_status in (QC_PASSED, QC_FAILED):
        new = _addable_to_decided(new, first.series_instance_uid, owners.known.qc_status, report)
        if not new:
            session.rollback()
            return

    pseudonym = owners.pseudonym
    layout = series_folder(key, center_code, pseudonym, first.study_instance_uid, first.series_instance_uid)
    series_dir = (home.in_place_dir if in_place else home.archive_dir) / layout
    if in_place:
        stored = link_in_place(new, series_dir, key)
    else:
        stored = _copied_into_archive(new, series_dir, report, key, pseudonym, writers=writers, flusher=flusher,
                                      flushes=flushes, staged=staged)
        new = [h for h in new if h.sop_instance_uid in stored]
        if not new:
            session.rollback()
            return

    previous: list[InstanceHeader] = []
    if owners.known is not None:
        try:
            previous = _stored_headers(session, owners.known.id)
        except RejectedFile as exc:
            reject_all(new, report, ARCHIVE_UNREADABLE,
                       f"series {first.series_instance_uid} cannot be extended: a stored file is unreadable "
                       f"({exc.reason}); run `ctstudy registry ingest` on the original files again")
            session.rollback()
            return
    _write_rows(session, owners, first, new, previous, stored, series_dir, actor=actor, report=report,
                thresholds=thresholds)


@dataclass(frozen=True)
class _Owners:
    """The patient (and the pseudonym) and study a series belongs to, and its stored row (id, study_id,
    qc_status) when it has one."""

    pseudonym: str
    patient_id: int
    patient_created: bool
    study_id: int
    known: Row | None


def _owners(session: Session, key: bytes, center_code: str, first: InstanceHeader, new: list[InstanceHeader],
            report: IngestReport) -> _Owners | None:
    """The series' patient and study, the rows of those not registered yet written; None, with the `new` files
    rejected, when its StudyInstanceUID belongs to another patient or its SeriesInstanceUID to another study
    (the caller rolls back)."""
    connection = session.connection()
    uid = first.series_instance_uid
    center_id = center_id_by_code(session, center_code)
    pseudonym = pseudo_id(key, center_code, first.patient_id)
    patient_id, patient_created = patient_id_by_pseudo_id(session, center_id, pseudonym)
    study = connection.execute(select(Study.id, Study.patient_id)
                               .where(Study.study_instance_uid == first.study_instance_uid)).one_or_none()
    if study is not None and study.patient_id != patient_id:
        reject_all(new, report, SERIES_CONFLICT,
                   f"StudyInstanceUID {first.study_instance_uid} already belongs to another patient")
        return None
    known = connection.execute(select(Series.id, Series.study_id, Series.qc_status)
                               .where(Series.series_instance_uid == uid)).one_or_none()

    # Core statements with their values as parameters (one cached compiled form each, not a statement built for
    # each row): the ORM's unit of work, and values built into each statement, cost more than these few rows.
    study_id = study.id if study is not None else connection.execute(insert(Study), {
        "study_instance_uid": first.study_instance_uid, "patient_id": patient_id,
        "study_datetime": first.study_datetime, "description": first.study_description}).inserted_primary_key[0]
    if known is not None and known.study_id != study_id:
        reject_all(new, report, SERIES_CONFLICT, f"SeriesInstanceUID {uid} already belongs to another study")
        return None
    return _Owners(pseudonym, patient_id, patient_created, study_id, known)


def _addable_to_decided(new: list[InstanceHeader], uid: str, decision: str, report: IngestReport
                        ) -> list[InstanceHeader]:
    """The files that may join series `uid`, which a coordinator decided on (`decision`): those broken on their
    own (bad spacing, pixel data, no position, burned-in annotation...) are rejected one by one instead of
    resetting the decision."""
    broken = {h.sop_instance_uid: own_reasons(h) for h in new if own_reasons(h)}
    for h in new:
        if h.sop_instance_uid in broken:
            report.rejected.append(RejectedItem(
                h.path, DEFECTIVE_INSTANCE, f"not added to series {uid}, already {decision} by a coordinator: "
                f"{', '.join(broken[h.sop_instance_uid])}"))
    return [h for h in new if h.sop_instance_uid not in broken]


def _copied_into_archive(new: list[InstanceHeader], series_dir: Path, report: IngestReport, key: bytes,
                         pseudonym: str, *, writers: ProcessPoolExecutor | None, flusher: ThreadPoolExecutor | None,
                         flushes: list[Future[None]] | None, staged: dict[str, StagedCopy] | None,
                         ) -> dict[str, str]:
    """`copy_into_archive`, and the flush of what it wrote handed to `flusher` (appended to `flushes`), or done
    here without a flusher; {sop: archived path} of the files copied."""
    stored, written, moved = copy_into_archive(new, series_dir, report, key, pseudonym, writers, staged)
    if (written or moved) and flusher is not None and flushes is not None:
        flushes.append(flusher.submit(fsync_files, written, series_dir))
    elif written or moved:
        fsync_files(written, series_dir)
    return stored


def _write_rows(session: Session, owners: _Owners, first: InstanceHeader, new: list[InstanceHeader],
                previous: list[InstanceHeader], stored: dict[str, str], series_dir: Path, *, actor: str,
                report: IngestReport, thresholds: QCThresholds | None) -> None:
    """The series' row (its facts and automatic QC over `previous` + `new`), its automatic QC decision when
    new or changed, the `new` instances (at their `stored` paths) and the audit event; counted in `report`."""
    connection = session.connection()
    summary = summarize_series(previous + new, thresholds, extra_reasons=_undecodable(new))
    everyone = previous + new
    facts = series_facts(first, everyone, summary, series_dir)
    phi = set().union(*(h.phi_tags for h in everyone))
    auto = (summary.qc_status, summary.qc_reasons)
    created = owners.known is None
    if created:
        series_id = _inserted_series(connection, first, owners, facts, phi, auto)
        old_qc: tuple[str | None, list[str]] = (None, [])
        qc_status, phi_tags = auto[0], sorted(phi)
    else:
        series_id, old_qc, qc_status, phi_tags = _updated_series(session, owners, facts, phi, auto)
    if created or old_qc != auto:
        connection.execute(insert(QCDecision), {"series_id": series_id, "status": auto[0], "reasons": auto[1],
                                                "actor": AUTO_QC_ACTOR, "automatic": True,
                                                "note": "automatic checks at ingest"})
    _insert_instances(connection, series_id, new, stored, summary)
    before = None if created else {"instance_count": len(previous), "qc_status": old_qc[0], "qc_reasons": old_qc[1]}
    insert_audit(connection, actor=actor, action="series_ingested" if created else "series_extended",
                 entity_type="series", entity_id=first.series_instance_uid, before=before,
                 after={"instance_count": summary.instance_count, "instances_added": len(new), "qc_status": auto[0],
                        "qc_reasons": auto[1], "phi_tags": phi_tags, "ingest_run": report.run_id})

    report.new_instances += len(new)
    report.patients_new += int(owners.patient_created)
    report.series_new += int(created)
    report.series_updated += int(not created)
    report.qc[qc_status] += 1
    if old_qc[0] in (QC_PASSED, QC_FAILED) and not created:
        report.qc["manual_decision_reset"] += 1


def _injury(patient_id: int) -> Select:
    """The query of the patient's injury time (None when unknown or not recorded)."""
    return select(ClinicalRecord.injury_datetime).where(ClinicalRecord.patient_id == patient_id)


def _inserted_series(connection: Connection, first: InstanceHeader, owners: _Owners, facts: dict[str, object],
                     phi: set[str], auto: tuple[str, list[str]]) -> int:
    """A new series' row, written with its facts, then given its automatic verdict and days from injury; its id.

    Two writes, as the ORM's flushes of an extended series make them (`_updated_series`). The patient summaries'
    revision triggers (`registry.summary.revisions`) count each, so the registry's revisions are those of the
    ORM's writes (`bench/ingest_digest.py` compares every row).
    """
    series_id = connection.execute(insert(Series), {
        "series_instance_uid": first.series_instance_uid, "study_id": owners.study_id, "modality": "CT",
        "qc_reasons": [], "phi_tags": sorted(phi), **facts}).inserted_primary_key[0]
    days = days_between(connection.execute(_injury(owners.patient_id)).scalar_one_or_none(),
                        facts["acquisition_datetime"])
    connection.execute(_SERIES_VERDICT, {"id_": series_id, "days_from_injury": days, "qc_status": auto[0],
                                         "qc_reasons": auto[1]})
    return series_id


# A new series row given its automatic verdict and days from injury (`_inserted_series`).
_SERIES_VERDICT = update(Series).where(Series.id == bindparam("id_"))


def _updated_series(session: Session, owners: _Owners, facts: dict[str, object], phi: set[str],
                    auto: tuple[str, list[str]]) -> tuple[int, tuple[str | None, list[str]], str, list[str]]:
    """A stored series' row given the facts and automatic QC of all its files, through the ORM; its id, its QC
    before (status, reasons), and its QC status and PHI tags after."""
    series = session.get(Series, owners.known.id)
    old_qc = (series.qc_status, list(series.qc_reasons or []))
    for column, value in facts.items():
        setattr(series, column, value)
    series.phi_tags = sorted(phi.union(series.phi_tags or []))
    session.flush()
    series.days_from_injury = days_between(session.connection().execute(_injury(owners.patient_id))
                                           .scalar_one_or_none(), series.acquisition_datetime)
    # New slices change what a coordinator reviewed: their verdict gives way to the automatic one.
    if old_qc != auto:
        series.qc_status, series.qc_reasons = auto
    session.flush()
    return series.id, old_qc, series.qc_status, series.phi_tags


def _insert_instances(connection: Connection, series_id: int, new: list[InstanceHeader], stored: dict[str, str],
                      summary: SeriesSummary) -> None:
    """The `new` instances' rows, at their `stored` paths and the positions `summary` gave them."""
    # Core's executemany on the session's connection: the ORM's bulk insert adds per-row work and no value here.
    connection.execute(insert(Instance.__table__), [
        {"sop_instance_uid": h.sop_instance_uid, "series_id": series_id, "instance_number": h.instance_number,
         "position_z": summary.positions.get(h.sop_instance_uid), "file_path": stored[h.sop_instance_uid],
         "sha256": h.sha256, "file_size": h.file_size, "source_root_id": None}
        for h in new
    ])


def _registry_copy(session: Session, key: bytes, headers: list[InstanceHeader], report: IngestReport) -> bool:
    """Reject the series and return True when it is this registry's own de-identified copy of a series.

    Such a copy (read from the archive or an export) has keyed UIDs and the patient's pseudonym as PatientID:
    ingested, it would become a new patient, `pseudo_id(center, pseudonym)`, the same person twice. It is
    recognised by its header's marks (`InstanceHeader.ctstudy_copy`, on any of the series' files, which
    share their PatientID) and a PatientID that is a pseudonym of this registry's; the series it copies is the
    patient's whose keyed SeriesInstanceUID it carries. A file that only claims the marks (another registry's
    copy, a forged header) has no pseudonym of ours for PatientID, and is ingested like any other.
    """
    if not any(h.ctstudy_copy for h in headers):
        return False
    first = headers[0]
    patient = session.scalars(select(Patient).where(Patient.pseudo_id == first.patient_id.strip().lower())
                              ).one_or_none()
    if patient is None:
        return False
    registered = session.scalars(select(Series.series_instance_uid).join(Study, Series.study_id == Study.id)
                                 .where(Study.patient_id == patient.id)).all()
    copied = next((uid for uid in registered if remembered_mapped_uid(key, uid) == first.series_instance_uid), None)
    where = (f"as series {copied} of patient {patient.pseudo_id}" if copied else
             f"as patient {patient.pseudo_id} (the series it copies is no longer registered)")
    reject_all(headers, report, REGISTRY_COPY,
               f"this is a de-identified copy already in this registry {where}: ingested again it would make "
               "the same person a second patient; ingest the center's original files, not the archive or an export")
    return True


def _consistent_members(headers: list[InstanceHeader], report: IngestReport) -> list[InstanceHeader]:
    """Keep the instances agreeing with the series' majority (StudyInstanceUID, PatientID); reject the rest."""
    votes = Counter((h.study_instance_uid, h.patient_id) for h in headers)
    if len(votes) == 1:
        return headers
    (study, patient), _ = votes.most_common(1)[0]
    keep = []
    for h in headers:
        if (h.study_instance_uid, h.patient_id) == (study, patient):
            keep.append(h)
        else:
            report.rejected.append(RejectedItem(
                h.path, SERIES_INCONSISTENT,
                f"SeriesInstanceUID {h.series_instance_uid} is shared with files of another "
                f"StudyInstanceUID/PatientID; this file disagrees with the majority of its series"))
    return keep


def _new_instances(session: Session, headers: list[InstanceHeader], report: IngestReport) -> list[InstanceHeader]:
    """Headers whose SOPInstanceUID the registry does not know yet; duplicates and conflicts counted."""
    known: dict[str, tuple[str, str]] = {}
    sops = [h.sop_instance_uid for h in headers]
    connection = session.connection()  # a Core query: no ORM entities to build
    for start in range(0, len(sops), 900):
        for sop, sha, path in connection.execute(
            select(Instance.sop_instance_uid, Instance.sha256, Instance.file_path)
            .where(Instance.sop_instance_uid.in_(sops[start : start + 900]))
        ):
            known[sop] = (sha, path)
    new: list[InstanceHeader] = []
    seen: dict[str, InstanceHeader] = {}
    for h in headers:
        if h.sop_instance_uid in known:
            sha, path = known[h.sop_instance_uid]
            if sha == h.sha256:
                report.already_present += 1
            else:
                report.conflicts.append(RejectedItem(
                    h.path, CONFLICT, f"SOPInstanceUID {h.sop_instance_uid} is already registered with other "
                    f"bytes (sha256 {sha[:12]}...); the stored instance is kept"))
        elif h.sop_instance_uid in seen:
            twin = seen[h.sop_instance_uid]
            if twin.sha256 == h.sha256:
                report.already_present += 1
            else:
                report.conflicts.append(RejectedItem(
                    h.path, CONFLICT, f"SOPInstanceUID {h.sop_instance_uid} also in another file of this run with "
                    "other bytes; the first file is kept"))
        else:
            seen[h.sop_instance_uid] = h
            new.append(h)
    return new


_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _undecodable(headers: list[InstanceHeader]) -> list[str]:
    """['undecodable_pixel_data'] when the first compressed file of these cannot be decoded here, else [].

    One file per series keeps ingest fast (decoding all would cost as much as the naive way); the
    installed decoders (pylibjpeg with its openjpeg, libjpeg and rle plugins, pyjpegls) cover JPEG,
    JPEG-LS, JPEG 2000 and RLE, so what fails here cannot be read by the pipeline either.
    """
    compressed = next((h for h in headers if h.transfer_syntax and h.transfer_syntax not in _NATIVE_SYNTAXES), None)
    if compressed is None:
        return []
    try:
        pydicom.dcmread(compressed.path).pixel_array  # noqa: B018 - decoding is the check
    except Exception:  # noqa: BLE001 - any decoder failure means the same: no usable pixels
        return ["undecodable_pixel_data"]
    return []


def _stored_headers(session: Session, series_id: int) -> list[InstanceHeader]:
    """Headers of a series' stored instances, re-read from their files (geometry needs all of them)."""
    return [read_instance_header(p, with_hash=False) for p in instance_file_paths(session, series_id)]
