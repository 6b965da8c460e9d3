"""The per-patient summaries equal the full queries after every kind of write, on SQLite and PostgreSQL.

The registry is the scale bench's synthetic one (small, with undated series, several studies a patient, re-runs
and a second feature source; `test_scale_queries_match_reference._fill`). The summaries are read once, then
each kind of write the registry sees is made the way the product makes it (ingest, a QC decision, a
segmentation run, a feature extraction, days from injury recomputed, a study moved to another patient, a series
deleted and its files ingested again), and after each one every summary is compared with its full query.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from registry_dicom_factory import write_series
from sqlalchemy import delete, distinct, func, select, text, update
from sqlalchemy.orm import Session
from test_scale_queries_match_reference import _fill

from biomarkers import patient_summary
from biomarkers.store import MaskJob, patient_features_by_id, save_features
from imaging.store import record_run
from registry.collection.progress import _series_counts
from registry.db.engine import make_engine
from registry.db.models import (
    AuditEvent,
    Base,
    Instance,
    Patient,
    PatientArrivalDay,
    PatientSeriesCounts,
    QCDecision,
    SegmentationRun,
    Series,
    SeriesFeatures,
    Study,
)
from registry.db.store import record_qc_decision, update_days_from_injury
from registry.home import Home
from registry.ingest.directory import ingest_directory
from registry.summary import arrivals, series_counts


def _rows(session: Session, stmt) -> set[tuple]:  # noqa: ANN001
    return {tuple(r) for r in session.connection().execute(stmt).all()}


def assert_summaries_are_the_full_queries(engine) -> None:  # noqa: ANN001
    """Every summary, brought up to date as a read does, equals its full query over every row."""
    with Session(engine) as s, s.begin():
        series_counts.refresh(s)
        patient_summary.refresh(s)
    with Session(engine) as s:
        assert _rows(s, series_counts.per_center()) == _rows(s, _series_counts(None, True))
        stored = {(p, a, n) for p, a, n in s.execute(
            select(PatientSeriesCounts.patient_id, PatientSeriesCounts.admission_study_id,
                   PatientSeriesCounts.admission_passed).where(PatientSeriesCounts.series > 0))}
        assert stored == _rows(s, series_counts.admission_scans())
        for basis in arrivals.BASES:
            days = {(p, str(d)[:10], n, first) for p, d, n, first in s.execute(
                select(PatientArrivalDay.patient_id, PatientArrivalDay.day, PatientArrivalDay.series,
                       PatientArrivalDay.first_day).where(PatientArrivalDay.basis == basis))}
            full = {(p, str(d)[:10], n) for p, d, n in _rows(s, arrivals.per_patient_days(basis))}
            first = {}
            for p, d, _ in full:
                first[p] = min(first.get(p, d), d)
            assert days == {(p, d, n, int(d == first[p])) for p, d, n in full}, basis
        for with_ct in (False, True):  # the admission CT classifications are stored beside the features
            features = patient_summary.read(s, with_ct_classes=with_ct).sort_index()
            full = patient_features_by_id(s, with_ct_classes=with_ct).sort_index()
            pd.testing.assert_frame_equal(features, full, check_names=False)


@pytest.fixture()
def registry(any_home: Home) -> Home:
    _fill(any_home.db_url)
    if any_home.db_url.startswith("postgresql"):  # the rows came with their ids: the sequences start after them
        engine = make_engine(any_home.db_url)
        with engine.begin() as conn:
            for table in Base.metadata.sorted_tables:
                if "id" in table.columns and table.columns["id"].autoincrement is not False:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                                      f"(SELECT coalesce(max(id), 0) + 1 FROM \"{table.name}\"), false)"))
        engine.dispose()
    return any_home


def _series(session: Session, **where) -> Series:  # noqa: ANN003
    return session.scalars(select(Series).filter_by(**where).order_by(Series.id).limit(1)).one()


def test_summaries_follow_every_kind_of_write(registry: Home, tmp_path: Path) -> None:
    engine = make_engine(registry.db_url)
    try:
        assert_summaries_are_the_full_queries(engine)  # every patient computed once, as after the migration

        # Ingest: a new patient with two series on two days, and a series of an existing study's patient.
        incoming = tmp_path / "incoming"
        write_series(incoming / "C01" / "a", "summary-a", patient_id="C01-SUM-001", study="summary-study-1")
        write_series(incoming / "C01" / "b", "summary-b", patient_id="C01-SUM-001", study="summary-study-2")
        report = ingest_directory(engine, registry, incoming, workers=1)
        assert report.new_instances > 0
        assert_summaries_are_the_full_queries(engine)

        with Session(engine) as s, s.begin():  # a coordinator passes a pending series and fails another
            record_qc_decision(s, _series(s, qc_status="pending").series_instance_uid, "passed", None, "coord")
            record_qc_decision(s, _series(s, qc_status="passed").series_instance_uid, "failed", "motion", "coord")
        assert_summaries_are_the_full_queries(engine)

        with Session(engine) as s, s.begin():  # a series segmented, one segmentation failed
            unsegmented = s.scalars(select(Series).where(Series.id.not_in(select(SegmentationRun.series_id)))
                                    .order_by(Series.id).limit(2)).all()
            now = dt.datetime(2025, 1, 1)
            for series, status in zip(unsegmented, ("done", "failed"), strict=True):
                record_run(s, series, model_name="unet2d", model_version="c" * 64, device="cpu", status=status,
                           mask_path=Path("/masks/x.nii.gz") if status == "done" else None, seconds=1.0,
                           timings=None, error=None if status == "done" else "out of memory", started_at=now)
        assert_summaries_are_the_full_queries(engine)

        with Session(engine) as s, s.begin():  # features extracted for a series without, and one re-extracted
            fresh = s.scalars(select(Series).where(Series.id.not_in(select(SeriesFeatures.series_id)))
                              .order_by(Series.id).limit(1)).one()
            featured = s.scalars(select(SeriesFeatures).where(SeriesFeatures.source == "segmentation")
                                 .order_by(SeriesFeatures.id).limit(1)).one()
            old = s.get(Series, featured.series_id)
            values = {"hematoma_ml": 41.5, "edema_ml": 12.25, "lesion_count": 2, "midline_shift_mm": 3.5,
                      "largest_lesion_ml": 30.0, "largest_lesion_left": 1.0,
                      # the CT classifications (text components beside numbers) are summarised too
                      "marshall_ct_class": 6, "marshall_ct_class_missing": None, "rotterdam_ct_score": 4,
                      "helsinki_ct_score": 5, "ct_edh": 0, "ct_edh_source": "measured", "ct_tsah": None,
                      "ct_tsah_source": "unknown"}
            for series in (fresh, old):
                job = MaskJob(series.id, series.series_instance_uid, "segmentation", Path("/masks/y.nii.gz"))
                save_features(s, job, "f" * 64, values, pd.DataFrame())
            old_study = old.study_id
        assert_summaries_are_the_full_queries(engine)

        with Session(engine) as s, s.begin():  # the injury time arrives: days from injury recomputed
            patient = s.get(Study, old_study).patient_id
            for series in s.scalars(select(Series).join(Study).where(Study.patient_id == patient)):
                series.acquisition_datetime = (series.acquisition_datetime or dt.datetime(2024, 5, 1)) \
                    + dt.timedelta(days=3)
            s.flush()
            assert update_days_from_injury(s, [patient]) > 0
        assert_summaries_are_the_full_queries(engine)

        with Session(engine) as s, s.begin():  # a study filed under the wrong patient moved to the right one
            study = s.scalars(select(Study).order_by(Study.id.desc()).limit(1)).one()
            other = s.scalars(select(Patient.id).where(Patient.id != study.patient_id).order_by(Patient.id)
                              .limit(1)).one()
            s.execute(update(Study).where(Study.id == study.id).values(patient_id=other))
        assert_summaries_are_the_full_queries(engine)

        # A series deleted with everything hanging from it, then its files ingested again.
        with Session(engine) as s, s.begin():
            gone = s.scalars(select(Series).where(Series.series_instance_uid.like("%summary-a%"))).one_or_none() \
                or s.scalars(select(Series).join(Instance).order_by(Series.id).limit(1)).one()
            uid = gone.series_instance_uid
            for table in (Instance, QCDecision, SeriesFeatures, SegmentationRun):
                s.execute(delete(table).where(table.series_id == gone.id))
            s.execute(delete(AuditEvent).where(AuditEvent.entity_id == uid))
            s.execute(delete(Series).where(Series.id == gone.id))
        assert_summaries_are_the_full_queries(engine)
        report = ingest_directory(engine, registry, incoming, workers=1)
        assert report.new_instances > 0
        with Session(engine) as s:
            assert s.scalars(select(Series.id).where(Series.series_instance_uid == uid)).one_or_none()
        assert_summaries_are_the_full_queries(engine)
    finally:
        engine.dispose()


def test_a_summary_read_recomputes_only_the_patients_written_to(registry: Home) -> None:
    """After one QC decision only that patient's summaries are recomputed (the rest are read as stored)."""
    engine = make_engine(registry.db_url)
    try:
        with Session(engine) as s, s.begin():
            assert series_counts.refresh(s) == s.scalar(select(func.count(distinct(Study.patient_id))))
            assert patient_summary.refresh(s) > 0
            assert series_counts.refresh(s) == 0 and patient_summary.refresh(s) == 0
        with Session(engine) as s, s.begin():
            series = _series(s, qc_status="pending")
            record_qc_decision(s, series.series_instance_uid, "passed", None, "coord")
        with Session(engine) as s, s.begin():
            assert series_counts.refresh(s) == 1 and patient_summary.refresh(s) == 1
    finally:
        engine.dispose()


def test_features_stored_under_other_definitions_are_recomputed(registry: Home, monkeypatch) -> None:  # noqa: ANN001
    engine = make_engine(registry.db_url)
    try:
        with Session(engine) as s, s.begin():
            n = patient_summary.refresh(s)
        monkeypatch.setattr(patient_summary, "DEFINITIONS", "another definition of the patient features")
        with Session(engine) as s, s.begin():
            assert patient_summary.refresh(s) == n
            assert np.isfinite(patient_summary.read(s)["n_scans"]).all()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_readers_refreshing_at_once_both_finish_with_the_full_queries(registry: Home) -> None:
    """Two dashboard reads that find the same patients out of date: the second waits for the first's refresh
    (row locks on PostgreSQL) instead of failing on the rows the first inserted."""
    if not registry.db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers by itself")
    import threading

    engine = make_engine(registry.db_url)
    try:
        started, errors = threading.Barrier(2), []

        def read() -> None:
            try:
                with Session(engine) as s, s.begin():
                    started.wait(timeout=30)
                    series_counts.refresh(s)
                    patient_summary.refresh(s)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert_summaries_are_the_full_queries(engine)
    finally:
        engine.dispose()
