"""`registry ingest`: a folder of DICOM files from centers -> patients, studies, series, instances.

The files under the folder, and the members of the zip archives among them (`registry.ingest.files`), are read
and grouped into series (`registry.ingest.reading`); bad files are set aside with their reason
(`registry.ingest.report`), one bad file never stopping the run. Each series is stored in its own transaction
(`registry.ingest.series_storing`): files are placed in the archive first (`registry.ingest.series_archive`),
then instances, series geometry and automatic QC are committed together. A series never spans two centers, so
the series of a center whose files have all been read are stored while the next centers' files are read, in
the order, and with the rows, of storing everything after reading. An ingest killed at any point and run again
therefore ends with exactly the records of one clean run: committed series are found "already present", the
interrupted one is redone from scratch. A failure while storing one series (a database error included) rejects
that series' files with the reason and the run goes on.

No name from the operator's folders reaches the registry (`registry.deid.stored_names`): the ingested folder
is kept as a keyed token, a rejected file as its center code and a keyed token
(`registry.ingest.report.stored_rejection_path`); the full path is shown to whoever runs the ingest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from registry.db.engine import run_in_transaction, session_scope
from registry.db.models import INGEST_DONE, INGEST_RUNNING, Center, IngestRun, Rejection, utcnow
from registry.db.store import audit
from registry.deid.stored_names import folder_token
from registry.dicom_headers import ZIP_ARCHIVE, InstanceHeader
from registry.home import Home
from registry.identifiers import normalized_center
from registry.ingest.archive_copy import StagedCopy, flush_filesystem
from registry.ingest.files import dicom_candidate_files, named_by_archive, unpack_zips
from registry.ingest.reading import (
    ARCHIVE_PARALLEL_MIN_FILES,
    FlushesWhileReading,
    ProgressCallback,
    Stager,
    read_and_group,
)
from registry.ingest.report import (
    CENTER_NAMES_PATIENT,
    STORE_FAILED,
    IngestReport,
    RejectedItem,
    reject_all,
    stored_rejection_path,
)
from registry.ingest.runs import (
    die_with_parent,
    mark_interrupted_runs,
    process_alive,
    remove_archive_debris,
    this_host,
)
from registry.ingest.series_storing import store_series
from registry.qc.series_qc import QCThresholds

if TYPE_CHECKING:
    from cluster.executor import Executor


def ingest_directory(
    engine: Engine,
    home: Home,
    root: Path | str,
    *,
    center: str | None = None,
    in_place: bool = False,
    actor: str = "cli",
    progress: ProgressCallback | None = None,
    thresholds: QCThresholds | None = None,
    workers: int = min(2, os.cpu_count() or 1),
    executor: Executor | None = None,
) -> IngestReport:
    """Ingest every DICOM file under `root`; the center is `center` or each file's first folder below root.

    With `in_place`, the files stay under `root`; the registry stores the data home's links to them.
    With a distributed `executor` (`--scheduler`) the headers are read and hashed on the Dask workers,
    which must see `root` at the same path (shared storage); storing stays here, one transaction per
    series, retried when a concurrent ingest of the same files wins a race (`registry.db.engine.run_in_transaction`).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    key = home.secret()
    source = folder_token(key, str(root))
    # Tidy what killed runs left, record this run's process.
    with session_scope(engine) as session:
        interrupted = mark_interrupted_runs(session)
        run = IngestRun(kind="dicom", source=source, actor=actor, counts={}, status=INGEST_RUNNING,
                        pid=os.getpid(), host=this_host())
        session.add(run)
        session.flush()
        report = IngestReport(run_id=run.id, interrupted_runs=interrupted)
        known_centers = frozenset(session.scalars(select(Center.code)))
    if interrupted:
        # Half-written `*.tmp<PID>` files are what a run killed while writing leaves, and every run is recorded
        # before it writes: the archive (every archived file) is searched only when such a run was just found.
        report.debris_removed = sum(len(remove_archive_debris(folder))
                                    for folder in (home.archive_dir, home.in_place_dir))
    _remove_dead_ingests_folders(home.unpack_dir)
    _remove_dead_ingests_folders(home.staging_dir)
    with ExitStack() as cleanup:
        _ingest_files(engine, home, key, root, report, cleanup, center=center, in_place=in_place, actor=actor,
                      progress=progress, thresholds=thresholds, workers=workers, executor=executor,
                      known_centers=known_centers)

    with session_scope(engine) as session:
        run = session.get(IngestRun, report.run_id)
        run.finished_at = utcnow()
        run.status = INGEST_DONE
        run.counts = report.counts()
        items = [*report.rejected, *report.conflicts]
        if items:
            session.execute(insert(Rejection), [
                {"ingest_run_id": run.id, "path": stored_rejection_path(key, root, r.path,
                                                                        report.centers_naming_patients, center),
                 "reason": r.reason, "detail": r.detail} for r in items
            ])
        audit(session, actor=actor, action="ingest_dicom", entity_type="ingest_run", entity_id=str(run.id),
              after={"source": source, "in_place": in_place, **report.counts()})
    return report


def _ingest_files(
    engine: Engine, home: Home, key: bytes, root: Path, report: IngestReport, cleanup: ExitStack, *,
    center: str | None, in_place: bool, actor: str, progress: ProgressCallback | None,
    thresholds: QCThresholds | None, workers: int, executor: Executor | None, known_centers: frozenset[str],
) -> None:
    """Read, group and store every file under `root` and the members of the zip archives among them.

    `known_centers`: the codes of the centers registered when the run began (a new code that names a
    patient of its files is refused: `_SeriesStorer`)."""
    unreadable: list[RejectedItem] = []
    files = list(dicom_candidate_files(root, unreadable))
    report.rejected.extend(unreadable)
    report.files_seen = len(files)
    # The de-identified copies are made while the files are read, except on a cluster (whose workers
    # read the files but do not hold the home key).
    stager: Stager | None = None
    if not in_place and not (executor is not None and executor.distributed):
        stager = Stager(key, cleanup.enter_context(tempfile.TemporaryDirectory(
            prefix=f"{os.getpid()}-", dir=_made(home.staging_dir))), str(home.archive_dir))
    staged: dict[str, StagedCopy] = {}
    # A series' copies are flushed to disk in this thread (fsync waits on the disk, not the CPU), and the
    # staged copies already while the files are read; every flush is awaited before the rows commit.
    flusher = cleanup.enter_context(ThreadPoolExecutor(max_workers=1)) if not in_place else None
    early = FlushesWhileReading(flusher, stager.folder) if stager is not None and flusher is not None else None
    storer = _SeriesStorer(engine, home, key, report, in_place=in_place, actor=actor, thresholds=thresholds,
                           flusher=flusher, stager=stager, staged=staged, progress=progress,
                           known_centers=known_centers, center_option=center is not None)
    groups = read_and_group(files, root, center, report, progress, workers, executor, stager, staged, early,
                            storer=storer)
    origins: dict[str, tuple[str, int]] = {}
    if not in_place and any(r.reason == ZIP_ARCHIVE for r in report.rejected):
        unpack_root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(
            prefix=f"{os.getpid()}-", dir=_made(home.unpack_dir))))
        members = unpack_zips(report, root, center, unpack_root, origins)
        before = report.files_seen
        report.files_seen += len(members)

        def member_progress(phase: str, done: int, total: int) -> None:
            if progress:
                progress(phase, before + done, before + total)
        # Members are read here, not on a cluster: they lie in this machine's data home.
        for group, headers in read_and_group(members, unpack_root, None, report, member_progress, workers,
                                             stager=stager, staged=staged, early=early).items():
            groups[group].extend(headers)

    rest = {group: headers for group, headers in groups.items() if group not in storer.stored}
    # Copies not staged while reading are written by worker processes (`registry.ingest.series_archive.
    # copy_into_archive`) when there are enough of them to pay for starting the pool.
    unstaged = sum(h.path not in staged for headers in rest.values() for h in headers)
    if not in_place and workers > 1 and unstaged >= ARCHIVE_PARALLEL_MIN_FILES:
        storer.writers = cleanup.enter_context(ProcessPoolExecutor(max_workers=workers,
                                                                   initializer=die_with_parent))
    storer.store(sorted(rest.items()), total=len(groups))
    storer.merge_into(report)
    if origins:
        for items in (report.rejected, report.conflicts, report.normalized):
            items[:] = [named_by_archive(item, origins) for item in items]


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _remove_dead_ingests_folders(parent: Path) -> None:
    """Remove the unpacking or staging folders (`<PID>-*`) of ingests whose process is gone (killed before
    cleaning up)."""
    if not parent.is_dir():
        return
    for folder in parent.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class _SeriesStorer:
    """Stores groups of series, each in its own transaction (`registry.ingest.series_storing.store_series`), and keeps
    what each did for `merge_into`, which adds it to the run's report in the order of storing once reading has
    ended (so that the report, and the rejections it records, come out as if every series were stored after
    reading).

    Series are stored while the files are still read when their center's files have all been read
    (`registry.ingest.centers_read`) and all their copies were staged; the rest after reading. Either way every
    series of a center is in one `store` call.

    A center code not among `known_centers` that names a patient of its files (`InstanceHeader.
    center_names_patient`) is refused: every file under it is rejected, those of the other patients too (the
    center would be created by their series and show the name just the same). A registered center keeps
    its code whatever its patients are called.
    """

    def __init__(self, engine: Engine, home: Home, key: bytes, report: IngestReport, *, in_place: bool, actor: str,
                 thresholds: QCThresholds | None, flusher: ThreadPoolExecutor | None, stager: Stager | None,
                 staged: dict[str, StagedCopy], progress: ProgressCallback | None,
                 known_centers: frozenset[str] = frozenset(), center_option: bool = False) -> None:
        self.engine, self.home, self.key, self.run_id = engine, home, key, report.run_id
        self.in_place, self.actor, self.thresholds = in_place, actor, thresholds
        self.flusher, self.stager, self.staged, self.progress = flusher, stager, staged, progress
        self.known_centers, self.center_option = known_centers, center_option
        self.writers: ProcessPoolExecutor | None = None
        self.stored: set[tuple[str, str]] = set()
        self.outcomes: list[IngestReport] = []

    def ready(self, headers: list[InstanceHeader]) -> bool:
        """Whether these files' series can be stored while reading goes on: linked in place, or every copy
        staged (a copy to make from the source file waits for the writer processes, started after reading)."""
        return self.in_place or all(h.path in self.staged for h in headers)

    def store(self, groups: list[tuple[tuple[str, str], list[InstanceHeader]]], total: int) -> None:
        """Store `groups` ((center code, SeriesInstanceUID), headers) in this order; `total`: the series known."""
        staged_flush: Future[None] | None = None
        if self.flusher is not None and self.stager is not None and any(
                h.path in self.staged for _group, headers in groups for h in headers):
            # The staged copies are made durable together (those flushed while reading already were), before
            # the first series' flush (the flusher runs its work in order), so that each series only flushes
            # the folder its copies were moved into.
            staged_flush = self.flusher.submit(flush_filesystem, self.stager.folder)
        refused = {code for (code, _uid), headers in groups
                   if normalized_center(code) not in self.known_centers and any(h.center_names_patient
                                                                                for h in headers)}
        for group, headers in groups:
            if group[0] in refused:
                self.outcomes.append(self._refuse(group[0], headers))
            else:
                self.outcomes.append(self._store_one(group[0], headers, staged_flush))
            self.stored.add(group)
            if self.progress:
                self.progress("series", len(self.stored), max(total, len(self.stored)))

    def _store_one(self, center_code: str, headers: list[InstanceHeader],
                   staged_flush: Future[None] | None) -> IngestReport:
        def store_one(session: Session) -> IngestReport:
            attempt = IngestReport(run_id=self.run_id)
            flushes: list[Future[None]] = []
            try:
                store_series(session, self.home, self.key, center_code, headers, in_place=self.in_place,
                             actor=self.actor, report=attempt, thresholds=self.thresholds, writers=self.writers,
                             flusher=self.flusher, flushes=flushes, staged=self.staged)
            finally:
                for flush in [staged_flush, *flushes] if staged_flush is not None else flushes:
                    flush.result()  # the copies are on disk before their rows commit
            return attempt

        try:
            return run_in_transaction(self.engine, store_one)
        except Exception as exc:  # noqa: BLE001 - one series' failure (a database error too) must not end the run
            # Our own ValueError/LookupError messages name no identifier; a database error's text holds the
            # statement's values, so only its type is kept.
            why = str(exc) if isinstance(exc, ValueError | LookupError) else type(exc).__name__
            failed = IngestReport(run_id=self.run_id)
            reject_all(headers, failed, STORE_FAILED, f"series could not be stored ({why}); nothing of it was "
                                                      "kept: ingest again, and report this if it persists")
            return failed

    def _refuse(self, center_code: str, headers: list[InstanceHeader]) -> IngestReport:
        """The rejections of a series under a new center code that names a patient (never the code or the name)."""
        refused = IngestReport(run_id=self.run_id, centers_naming_patients={normalized_center(center_code)})
        where = "the --center code" if self.center_option else "the center folder's name"
        todo = ("give the center's study code to --center (letters, digits, '-', '_', e.g. IT064)"
                if self.center_option else "rename the folder to the center's study code (letters, digits, '-', "
                "'_', e.g. IT064) or give --center CODE")
        for h in headers:
            whose = ("the patient's name/ID in the file's header" if h.center_names_patient
                     else "the name/ID of another patient whose files are under it")
            refused.rejected.append(RejectedItem(
                h.path, CENTER_NAMES_PATIENT,
                f"{where} matches {whose}: as a new center code it would show an identifier on every screen and "
                f"export; {todo}, and ingest again (a center already registered under a code keeps it)"))
        return refused

    def merge_into(self, report: IngestReport) -> None:
        for outcome in self.outcomes:
            report.merge(outcome)
        self.outcomes = []

