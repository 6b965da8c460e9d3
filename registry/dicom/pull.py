"""`ctstudy registry pull`: ask a PACS what it has (C-FIND), fetch what the registry lacks (C-MOVE or C-GET).

For each query (a PatientID, AccessionNumber or StudyInstanceUID) the PACS is asked for the matching
studies, then for their instances; instances whose SOPInstanceUID the registry already holds are
counted "already present" and not fetched. The other series are retrieved, C-MOVE to a temporary
storage SCP of our own on `--port` (the PACS must know our AE title at this host and port) or C-GET
on the same association, into one spool batch that `registry.dicom.spool.ingest_batch` ingests: the
same judgement, de-identification and QC as every other route. Retrieved files are acknowledged only
once durably in the spool.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import Engine, select

from registry.db.engine import session_scope
from registry.db.models import Instance
from registry.dicom.contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from registry.dicom.senders import normalized_ae_title
from registry.dicom.spool import file_count, ingest_batch, instance_file_name, new_batch, seal, write_durably
from registry.home import Home

QUERY_KEYS = {"patient_id": "PatientID", "accession": "AccessionNumber", "study_uid": "StudyInstanceUID"}
PENDING = (0xFF00, 0xFF01)
TIMEOUT_S = 60


@dataclass(frozen=True)
class Pacs:
    ae_title: str
    host: str
    port: int


@dataclass
class PullReport:
    queries: int = 0
    studies_found: int = 0
    instances_found: int = 0
    already_present: int = 0
    fetched: int = 0
    retrieve_failures: list[str] = field(default_factory=list)
    ingest: object | None = None  # registry.ingest.report.IngestReport of the fetched batch


def parse_pacs(spec: str) -> Pacs:
    """`AET@HOST:PORT` -> Pacs; a clear error naming the expected form otherwise."""
    title, at, address = spec.partition("@")
    host, colon, port = address.rpartition(":")
    if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--pacs {spec!r} is not AET@HOST:PORT (for example ORTHANC@10.0.0.5:4242)")
    return Pacs(normalized_ae_title(title), host, int(port))


def queries_from_list(path: Path) -> list[tuple[str, str]]:
    """(key, value) queries from a CSV whose header is one of patient_id, accession, study_uid."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows or len(rows[0]) != 1 or rows[0][0].strip() not in QUERY_KEYS:
        raise ValueError(f"{path}: the first row must be one column header, one of {', '.join(QUERY_KEYS)}")
    key = rows[0][0].strip()
    values = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 1 or not row[0].strip():
            raise ValueError(f"{path}, row {number}: expected one non-empty value")
        values.append((key, row[0].strip()))
    if not values:
        raise ValueError(f"{path}: no {key} values below the header")
    return values


def pull(engine: Engine, home: Home, *, pacs: Pacs, ae_title: str, port: int, center: str,
         queries: list[tuple[str, str]], method: str = "move", actor: str = "pull",
         bind: str = "0.0.0.0") -> PullReport:
    """Find what the PACS holds for `queries`, retrieve what the registry lacks, and ingest it for `center`.

    `bind`: the address our temporary C-MOVE storage SCP listens on.
    """
    if method not in ("move", "get"):
        raise ValueError(f"--method {method!r}: give move or get")
    ours = normalized_ae_title(ae_title)
    report = PullReport(queries=len(queries))
    ae = _requestor(ours, method)
    batch = new_batch(home, center, "pull")
    lock = threading.Lock()

    def on_store(event: evt.Event) -> int:
        sop = str(event.request.AffectedSOPInstanceUID or "")
        if not sop:
            return 0xC000
        try:
            with lock:
                write_durably(batch.path, instance_file_name(sop), event.encoded_dataset())
                report.fetched += 1
        except OSError:
            return 0xA700
        return 0x0000

    scp = None
    try:
        if method == "move":
            scp_ae = AE(ae_title=ours)
            for sop in STORAGE_SOP_CLASSES:
                scp_ae.add_supported_context(sop, list(TRANSFER_SYNTAXES))
            scp = scp_ae.start_server((bind, port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        handlers = [(evt.EVT_C_STORE, on_store)] if method == "get" else []
        roles = [build_role(sop, scp_role=True) for sop in STORAGE_SOP_CLASSES] if method == "get" else []
        assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title, ext_neg=roles, evt_handlers=handlers)
        if not assoc.is_established:
            raise RuntimeError(f"the PACS {pacs.ae_title}@{pacs.host}:{pacs.port} did not accept an association "
                               f"from {ours}: check its address and that it knows our AE title")
        try:
            wanted = _missing_series(engine, assoc, queries, report)
            for study_uid, series_uid in wanted:
                _retrieve(assoc, method, ours, study_uid, series_uid, report)
        finally:
            assoc.release()
    finally:
        if scp is not None:
            scp.shutdown()
    if file_count(batch):
        report.ingest = ingest_batch(engine, home, seal(home, batch), actor=actor)
    else:
        batch.path.rmdir()
    return report


def _requestor(ours: str, method: str) -> AE:
    ae = AE(ae_title=ours)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    if method == "get":
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop in STORAGE_SOP_CLASSES:  # C-GET returns instances on this association: we are their SCP
            ae.add_requested_context(sop, list(TRANSFER_SYNTAXES))
    else:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    return ae


def _find(assoc, level: str, **keys: str) -> Iterator[Dataset]:  # noqa: ANN001 - pynetdicom Association
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "PatientID", "AccessionNumber"):
        setattr(query, keyword, keys.get(keyword, ""))
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if not status:
            raise RuntimeError("the PACS stopped answering the C-FIND (connection lost or timed out)")
        if status.Status in PENDING and identifier is not None:
            yield identifier
        elif status.Status not in PENDING and status.Status != 0x0000:
            raise RuntimeError(f"the PACS answered the C-FIND with status 0x{status.Status:04X}")


def _missing_series(engine: Engine, assoc, queries: list[tuple[str, str]],  # noqa: ANN001
                    report: PullReport) -> list[tuple[str, str]]:
    """(study, series) UIDs holding at least one instance the registry lacks; counts found/present."""
    studies: set[str] = set()
    for key, value in queries:
        if key not in QUERY_KEYS:
            raise ValueError(f"unknown query key {key!r}: one of {', '.join(QUERY_KEYS)}")
        studies.update(str(ds.StudyInstanceUID) for ds in _find(assoc, "STUDY", **{QUERY_KEYS[key]: value})
                       if ds.get("StudyInstanceUID"))
    report.studies_found = len(studies)
    wanted: list[tuple[str, str]] = []
    for study_uid in sorted(studies):
        by_series: dict[str, list[str]] = {}
        for ds in _find(assoc, "IMAGE", StudyInstanceUID=study_uid):
            by_series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(str(ds.get("SOPInstanceUID", "")))
        for series_uid, sops in sorted(by_series.items()):
            report.instances_found += len(sops)
            present = _present(engine, sops)
            report.already_present += len(present)
            if len(present) < len(set(sops)):
                wanted.append((study_uid, series_uid))
    return wanted


def _present(engine: Engine, sops: list[str]) -> set[str]:
    found: set[str] = set()
    with session_scope(engine) as session:
        for start in range(0, len(sops), 900):
            found.update(session.scalars(select(Instance.sop_instance_uid)
                                         .where(Instance.sop_instance_uid.in_(sops[start:start + 900]))))
    return found


def _retrieve(assoc, method: str, ours: str, study_uid: str, series_uid: str,  # noqa: ANN001
              report: PullReport) -> None:
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    if method == "get":
        responses = assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
    else:
        responses = assoc.send_c_move(query, ours, StudyRootQueryRetrieveInformationModelMove)
    final = None
    for status, _identifier in responses:
        if not status:
            final = None
            break
        final = status.Status
    if final not in (0x0000,):
        what = "no answer (connection lost or timed out)" if final is None else f"status 0x{final:04X}"
        report.retrieve_failures.append(f"series {series_uid}: C-{method.upper()} ended with {what}")
