"""A coordinator's decision against late files broken on their own, and burned-in annotation, on SQLite and
PostgreSQL: such a file is rejected alone (defective_instance) and the decision stands; a series whose
images carry BurnedInAnnotation=YES waits for a coordinator, out of segmentation and exports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from registry_dicom_factory import ct_slice, series_uid_of, uid
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging.store import series_to_segment
from registry.clinical.patient_table import patient_table
from registry.db.engine import make_engine, session_scope
from registry.db.models import Instance, QCDecision, Series
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

Mutation = Callable[[Dataset], None]


def write_slices(folder: Path, name: str, indices: range, mutate: Mutation | None = None) -> list[Path]:
    """Slices `indices` of a head series named `name` (5 mm apart), each edited by `mutate` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in indices:
        ds = ct_slice(patient_id="IT064-0001", study_uid=uid(f"study-{name}"), series_uid=series_uid_of(name),
                      sop_uid=uid(f"{name}-{i}"), index=i, z=5.0 * i)
        if mutate is not None:
            mutate(ds)
        path = folder / f"{name}-{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _without(keyword: str) -> Mutation:
    return lambda ds: delattr(ds, keyword)


def _nan_position(ds: Dataset) -> None:
    import pydicom

    elem = ds["ImagePositionPatient"]
    ds["ImagePositionPatient"] = pydicom.DataElement(elem.tag, elem.VR, b"nan\\nan\\nan ")


def _burned_in(value: str) -> Mutation:
    def mutate(ds: Dataset) -> None:
        ds.BurnedInAnnotation = value
    return mutate


def _series(engine, name: str) -> tuple[str, list[str], int, list[str]]:  # noqa: ANN001
    with session_scope(engine) as s:
        series = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of(name))).one()
        n = len(s.scalars(select(Instance.id).where(Instance.series_id == series.id)).all())
        decisions = list(s.scalars(select(QCDecision.status).where(QCDecision.series_id == series.id)
                                   .order_by(QCDecision.id)))
        return series.qc_status, list(series.qc_reasons or []), n, decisions


@pytest.mark.parametrize(("late", "reason"), [
    (_without("ImagePositionPatient"), "missing_geometry"),
    (_without("ImageOrientationPatient"), "missing_geometry"),
    (_nan_position, "invalid_position"),
    (_burned_in("YES"), "burned_in_annotation"),
], ids=["no-position", "no-orientation", "nan-position", "burned-in"])
def test_a_late_file_broken_on_its_own_leaves_a_decided_series_as_decided(
        any_home: Home, tmp_path: Path, late: Mutation, reason: str) -> None:
    engine = make_engine(any_home.db_url)
    write_slices(tmp_path / "first" / "IT064" / "p1", "head", range(24))
    ingest_directory(engine, any_home, tmp_path / "first")
    with session_scope(engine) as s:
        record_qc_decision(s, series_uid_of("head"), "passed", None, "dr.coordinator")
    before = _series(engine, "head")
    assert before[0] == "passed"

    stray = write_slices(tmp_path / "late" / "IT064" / "p1", "head", range(24, 25), late)
    report = ingest_directory(engine, any_home, tmp_path / "late")

    assert [(Path(r.path), r.reason) for r in report.rejected] == [(stray[0], "defective_instance")]
    assert reason in report.rejected[0].detail and "passed" in report.rejected[0].detail
    assert _series(engine, "head") == before
    engine.dispose()


def test_burned_in_annotation_holds_a_series_back_until_a_coordinator_passes_it(any_home: Home,
                                                                               tmp_path: Path) -> None:
    engine = make_engine(any_home.db_url)
    write_slices(tmp_path / "in" / "IT064" / "p1", "burned", range(24), _burned_in("YES"))
    write_slices(tmp_path / "in" / "IT064" / "p1", "clean", range(24), _burned_in("NO"))
    write_slices(tmp_path / "in" / "IT064" / "p1", "unknown", range(24))  # the attribute absent
    ingest_directory(engine, any_home, tmp_path / "in")

    assert _series(engine, "burned")[:2] == ("auto_failed", ["burned_in_annotation"])
    assert _series(engine, "clean")[:2] == ("pending", [])
    assert _series(engine, "unknown")[:2] == ("pending", [])
    with session_scope(engine) as s:
        record_qc_decision(s, series_uid_of("clean"), "passed", None, "dr.coordinator")
        to_segment = {x.series_instance_uid for x in series_to_segment(s, include_pending=True)}
        assert series_uid_of("burned") not in to_segment and series_uid_of("clean") in to_segment
        assert patient_table(s)["n_series_qc_passed"].tolist() == [1]
    seg = CliRunner().invoke(app, ["--home", str(any_home.root), "--db-url", any_home.db_url, "imaging",
                                   "export-seg", series_uid_of("burned"), "--out", str(tmp_path / "seg.dcm")])
    assert seg.exit_code != 0 and "auto_failed (burned_in_annotation)" in seg.output
    assert not (tmp_path / "seg.dcm").exists()

    with session_scope(engine) as s:
        record_qc_decision(s, series_uid_of("burned"), "passed", None, "dr.coordinator")
        assert series_uid_of("burned") in {x.series_instance_uid for x in series_to_segment(s)}
        assert patient_table(s)["n_series_qc_passed"].tolist() == [2]
    engine.dispose()



def test_flag_burned_in_gives_series_stored_without_the_flag_their_reason(any_home: Home, tmp_path: Path) -> None:
    engine = make_engine(any_home.db_url)
    write_slices(tmp_path / "in" / "IT064" / "p1", "old-burned", range(24), _burned_in("YES"))
    write_slices(tmp_path / "in" / "IT064" / "p1", "passed-burned", range(24), _burned_in("YES"))
    write_slices(tmp_path / "in" / "IT064" / "p1", "clean", range(24))
    ingest_directory(engine, any_home, tmp_path / "in")
    with session_scope(engine) as s:  # as stored by an ingest that did not read the attribute
        old = s.scalars(select(Series).where(Series.series_instance_uid == series_uid_of("old-burned"))).one()
        old.qc_status, old.qc_reasons = "pending", []
        record_qc_decision(s, series_uid_of("passed-burned"), "passed", None, "dr.coordinator")
    cli = ["--home", str(any_home.root), "--db-url", any_home.db_url, "registry", "flag-burned-in"]

    result = CliRunner().invoke(app, cli, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "1 flagged" in result.output and series_uid_of("passed-burned") in result.output
    assert _series(engine, "old-burned")[:2] == ("auto_failed", ["burned_in_annotation"])
    assert _series(engine, "passed-burned")[:2] == ("passed", [])
    assert _series(engine, "clean")[:2] == ("pending", [])
    again = CliRunner().invoke(app, cli, terminal_width=300)
    assert again.exit_code == 0 and "0 flagged" in again.output
    assert _series(engine, "old-burned")[3].count("auto_failed") == 2  # ingest's, and this one's only
    engine.dispose()
