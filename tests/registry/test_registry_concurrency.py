"""Two runs at once on one registry (SQLite and PostgreSQL): both succeed, the end state is one clean run's."""

from __future__ import annotations

import multiprocessing
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from registry_dicom_factory import write_series
from sqlalchemy import func, select

from imaging.segment import segment_registered_series
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import (
    AuditEvent,
    Center,
    ClinicalRecord,
    Instance,
    Patient,
    QCDecision,
    SegmentationRun,
    Series,
    Study,
)
from registry.home import Home
from registry.ingest.directory import ingest_directory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def build_folder(root: Path) -> int:
    """Two centers, five patients, eight series, so two ingests meet on centers, patients and studies alike."""
    n = 0
    for center, patients in (("IT064", 3), ("SI009", 2)):
        for p in range(patients):
            pid = f"{center}-{p:04d}"
            write_series(root / center / pid / "adm", f"{pid}-adm", patient_id=pid, n_slices=6)
            n += 6
            if p < 2:
                write_series(root / center / pid / "fu", f"{pid}-fu", patient_id=pid, n_slices=6,
                             acquisition="20240309120000")
                n += 6
    return n


def snapshot(db_url: str) -> dict[str, object]:
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        content = {
            "centers": sorted(s.scalars(select(Center.code))),
            "patients": sorted(s.scalars(select(Patient.pseudo_id))),
            "studies": sorted(s.scalars(select(Study.study_instance_uid))),
            "series": sorted(s.execute(select(Series.series_instance_uid, Series.instance_count, Series.qc_status,
                                              Series.coverage_mm)).all()),
            "instances": sorted(s.execute(select(Instance.sop_instance_uid, Instance.sha256, Instance.file_path,
                                                 Instance.position_z)).all()),
            "auto_qc": s.scalar(select(func.count()).select_from(QCDecision)),
            "series_audits": s.scalar(select(func.count()).select_from(AuditEvent)
                                      .where(AuditEvent.action.in_(["series_ingested", "series_extended"]))),
        }
    engine.dispose()
    return content


def _ingest_in_child(db_url: str, home_root: str, folder: str, barrier, results) -> None:  # noqa: ANN001
    engine = make_engine(db_url)
    home = Home.resolve(Path(home_root), db_url)
    barrier.wait(timeout=60)  # both start storing at the same moment: the race is the point
    report = ingest_directory(engine, home, folder, workers=1)
    results.put((report.new_instances, report.already_present, report.patients_new, len(report.rejected)))
    engine.dispose()


def test_two_ingests_at_once_both_succeed_and_equal_one_clean_ingest(any_home: Home, tmp_path: Path) -> None:
    files = build_folder(tmp_path / "in")
    ctx = multiprocessing.get_context("fork")  # the children share this process's imports: no start-up cost
    barrier, results = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_ingest_in_child,
                            args=(any_home.db_url, str(any_home.root), str(tmp_path / "in"), barrier, results))
                for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
    assert [c.exitcode for c in children] == [0, 0]  # both runs succeeded
    reports = [results.get(timeout=5) for _ in children]
    assert sum(r[0] for r in reports) == files  # every instance stored by exactly one of them...
    assert sum(r[1] for r in reports) == files  # ...and found already present by the other
    assert sum(r[2] for r in reports) == 5 and all(r[3] == 0 for r in reports)

    reference = Home.resolve(tmp_path / "reference")
    reference.ensure()
    shutil.copy(any_home.secret_path, reference.secret_path)
    upgrade(reference.db_url)
    engine = make_engine(reference.db_url)
    ingest_directory(engine, Home.resolve(any_home.root, reference.db_url), tmp_path / "in", workers=1)
    engine.dispose()
    assert snapshot(any_home.db_url) == snapshot(reference.db_url)


class CountingSegmenter:
    """A stand-in model (the test is about the registry, not the network): labels a fixed block."""

    name, version, members, device = "stub", "0" * 64, ["stub"], torch.device("cpu")

    def __init__(self) -> None:
        self.calls = 0

    def segment(self, volume):  # noqa: ANN001, ANN201
        self.calls += 1
        labels = np.zeros(volume.shape, np.uint8)
        labels[:, :2, :2] = 1
        return labels, {"total_s": 0.0}


def test_two_segment_runs_at_once_keep_one_result_per_series(any_home: Home, tmp_path: Path) -> None:
    build_folder(tmp_path / "in")
    engine = make_engine(any_home.db_url)
    ingest_directory(engine, any_home, tmp_path / "in", workers=1)
    with session_scope(engine) as s:
        uids = sorted(s.scalars(select(Series.series_instance_uid)))
    barrier = threading.Barrier(2)
    reports, segmenters = [], [CountingSegmenter(), CountingSegmenter()]

    def run(segmenter: CountingSegmenter) -> None:
        barrier.wait(timeout=60)
        reports.append(segment_registered_series(engine, any_home.masks_dir, segmenter, uids))

    threads = [threading.Thread(target=run, args=(seg,)) for seg in segmenters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(reports) == 2 and not any(r.failed for r in reports)
    with session_scope(engine) as s:
        runs = s.execute(select(SegmentationRun.series_id, func.count(), func.min(SegmentationRun.status))
                         .group_by(SegmentationRun.series_id)).all()
    assert len(runs) == len(uids) and all(n == 1 and status == "done" for _, n, status in runs)  # one result each
    assert set(reports[0].done) | set(reports[1].done) == set(uids)
    assert sum(s.calls for s in segmenters) >= len(uids)
    engine.dispose()


CLINICAL_HEADER = ("center,patient_id,injury_datetime,age,sex,gcs_total,gcs_motor,pupils_unreactive,hypoxia,"
                   "hypotension,glucose_mmol_l,hemoglobin_g_dl,marshall_ct,tsah,edh,major_extracranial_injury")
NEW_PATIENTS = 30


def _import_in_child(db_url: str, home_root: str, csv: str, barrier, results) -> None:  # noqa: ANN001
    from registry.clinical.csv_import import import_table

    engine = make_engine(db_url)
    home = Home.resolve(Path(home_root), db_url)
    barrier.wait(timeout=60)
    report = import_table(engine, home, csv, "clinical", create=True)
    results.put((report.created, report.unchanged, report.patients_new, report.centers_new))
    engine.dispose()


def test_two_clinical_imports_of_the_same_new_patients_both_succeed(any_home: Home, tmp_path: Path) -> None:
    """Two `import-clinical --create` runs at once, each creating the same new center and patients."""
    rows = [f"IT777,IT777-{i:04d},2024-03-05T14:30,{20 + i % 60},M,8,4,1,0,1,7.5,13.1,3,1,0,0"
            for i in range(NEW_PATIENTS)]
    csv = tmp_path / "clinical.csv"
    csv.write_text("\n".join([CLINICAL_HEADER, *rows]) + "\n")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_import_in_child, args=(any_home.db_url, str(any_home.root), str(csv), barrier,
                                                           results)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
    assert [c.exitcode for c in children] == [0, 0]
    reports = [results.get(timeout=5) for _ in children]
    assert sum(r[0] for r in reports) == NEW_PATIENTS  # each record created by exactly one of them...
    assert sum(r[1] for r in reports) == NEW_PATIENTS  # ...and found unchanged by the other
    assert sum(r[2] for r in reports) == NEW_PATIENTS and sum(r[3] for r in reports) == 1
    engine = make_engine(any_home.db_url)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == NEW_PATIENTS
        assert s.scalar(select(func.count()).select_from(ClinicalRecord)) == NEW_PATIENTS
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "clinical_created")) == NEW_PATIENTS
    engine.dispose()
