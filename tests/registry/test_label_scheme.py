"""Manual annotations in the four-class label map; older two-class masks importable with the documented mapping.

On SQLite and PostgreSQL: the importer reads the scheme from ctstudy's NIfTI header marker or from
`--label-scheme`, stores every mask four-class, records the scheme; migration 0002 converts the
two-class masks a registry already holds, and its downgrade points back to the originals.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from registry_dicom_factory import series_uid_of, write_series
from sqlalchemy import select, text
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.annotations import LPS_TO_RAS, import_annotations
from registry.db.engine import downgrade, make_engine, session_scope, upgrade
from registry.db.models import AuditEvent, ManualAnnotation
from registry.home import Home
from registry.ingest.directory import ingest_directory
from vocabulary import labels as L

SHAPE = (4, 8, 8)  # (z, y, x) of the test series: 4 slices of 8 x 8, 0.5 mm pixels, 5 mm apart
AFFINE_LPS = np.diag([0.5, 0.5, 5.0, 1.0])


def _mask(labels: np.ndarray, path: Path, marker: bool = False) -> Path:
    img = nib.Nifti1Image(np.ascontiguousarray(labels.astype(np.uint8).transpose(2, 1, 0)), LPS_TO_RAS @ AFFINE_LPS)
    if marker:
        img.header["descrip"] = L.NIFTI_DESCRIPTION
        img.header.set_intent("label", name=L.NIFTI_INTENT_NAME)
    nib.save(img, path)
    return path


def _stored(path: str) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj).transpose(2, 1, 0)


@pytest.fixture()
def registered(any_home: Home, tmp_path: Path):
    write_series(tmp_path / "in" / "IT064" / "p1", "ann", n_slices=SHAPE[0])
    engine = make_engine(any_home.db_url)
    ingest_directory(engine, any_home, tmp_path / "in")
    yield any_home, engine, series_uid_of("ann")
    engine.dispose()


def _two_class() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:3, 2:5, 2:5] = 2  # edema rim ...
    labels[1:3, 3, 3] = 1  # ... around a small hematoma
    return labels


def test_two_class_masks_are_converted_and_the_scheme_recorded(registered, tmp_path: Path) -> None:
    home, engine, uid = registered
    src = tmp_path / "ann"
    src.mkdir()
    _mask(_two_class(), src / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester", label_scheme=L.TWO_CLASS)
    assert report.imported == [uid] and not report.warnings
    with session_scope(engine) as session:
        ann = session.scalars(select(ManualAnnotation)).one()
        assert ann.label_scheme == "two-class"
        stored = _stored(ann.mask_path)
        assert nib.load(ann.mask_path).header["descrip"].item().decode().startswith("ctstudy label map four-class")
    expected = _two_class()
    assert np.array_equal(stored == L.IPH, expected == 1) and np.array_equal(stored == L.EDEMA, expected == 2)
    assert not (stored == L.EAH).any()
    assert Path(src / f"{uid}.nii.gz").exists()  # the source is never changed


def test_default_four_class_warns_on_a_mask_that_looks_two_class_and_a_reimport_relabels_it(registered, tmp_path):
    home, engine, uid = registered
    src = tmp_path / "ann"
    src.mkdir()
    _mask(_two_class(), src / f"{uid}.nii.gz")
    runner = CliRunner()
    first = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "registry", "import-annotations",
                                str(src)])
    assert first.exit_code == 0, first.output
    assert "1 imported" in first.output and "--label-scheme two-class" in " ".join(first.output.split())
    again = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "registry", "import-annotations",
                                str(src), "--label-scheme", "two-class"])
    assert again.exit_code == 0, again.output
    with session_scope(engine) as session:
        ann = session.scalars(select(ManualAnnotation)).one()  # the same annotation, relabelled
        assert ann.label_scheme == "two-class" and (_stored(ann.mask_path) == L.EDEMA).any()
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "relabel_annotation")).one()


def test_the_header_marker_wins_and_a_contradicting_option_is_refused(registered, tmp_path: Path) -> None:
    home, engine, uid = registered
    four = np.zeros(SHAPE, np.uint8)
    four[0, :2, :] = L.EAH
    four[2, 4:6, 4:6] = L.IVH
    src = tmp_path / "ann"
    src.mkdir()
    _mask(four, src / f"{uid}.nii.gz", marker=True)
    with session_scope(engine) as session:
        refused = import_annotations(session, src, home.masks_dir, "tester", label_scheme=L.TWO_CLASS)
    assert refused.imported == [] and "says it is a four-class mask" in refused.rejected[0][2]
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester")
    assert report.imported == [uid]
    with session_scope(engine) as session:
        ann = session.scalars(select(ManualAnnotation)).one()
        assert ann.label_scheme == "four-class" and np.array_equal(_stored(ann.mask_path), four)


def test_two_class_mask_with_labels_outside_it_is_rejected_by_name(registered, tmp_path: Path) -> None:
    home, engine, uid = registered
    bad = _two_class()
    bad[0, 0, 0] = 3
    src = tmp_path / "ann"
    src.mkdir()
    _mask(bad, src / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester", label_scheme=L.TWO_CLASS)
    (path, reason, detail), = report.rejected
    assert path.endswith(f"{uid}.nii.gz") and reason == "unreadable_mask" and "[3]" in detail and "two-class" in detail


def test_a_partial_mask_is_stored_as_drawn_and_reported_with_its_annotated_share(registered,
                                                                                   tmp_path: Path) -> None:
    """255 (`UNANNOTATED`) means "not annotated": an annotator who labelled only some slices brings that in."""
    home, engine, uid = registered
    partial = np.zeros(SHAPE, np.uint8)
    partial[1, 3, 3] = L.IPH
    partial[2:] = L.UNANNOTATED  # the annotator left the last two of four slices out
    src = tmp_path / "ann"
    src.mkdir()
    _mask(partial, src / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester")
    assert report.imported == [uid] and not report.rejected and report.partial == {uid: 0.5}
    with session_scope(engine) as session:
        ann = session.scalars(select(ManualAnnotation)).one()
        assert np.array_equal(_stored(ann.mask_path), partial)
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "import_annotation")).one()
        assert event.after["annotated_fraction"] == 0.5 and event.after["iph_voxels"] == 1


def test_a_whole_mask_is_not_reported_partial(registered, tmp_path: Path) -> None:
    home, engine, uid = registered
    whole = np.zeros(SHAPE, np.uint8)
    whole[1, 3, 3] = L.IPH
    src = tmp_path / "ann"
    src.mkdir()
    _mask(whole, src / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester")
    assert report.imported == [uid] and report.partial == {}


@pytest.mark.parametrize("scheme", [L.FOUR_CLASS, L.TWO_CLASS])
def test_labels_outside_the_map_are_refused_naming_the_file_and_the_label(registered, tmp_path: Path,
                                                                          scheme: str) -> None:
    home, engine, uid = registered
    bad = np.zeros(SHAPE, np.uint8)
    bad[1, 3, 3] = 7
    bad[3] = L.UNANNOTATED  # allowed: only the 7 is wrong
    src = tmp_path / "ann"
    src.mkdir()
    _mask(bad, src / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester", label_scheme=scheme)
        assert session.scalars(select(ManualAnnotation)).all() == []
    (path, reason, detail), = report.rejected
    assert path.endswith(f"{uid}.nii.gz") and reason == "unreadable_mask" and "[7]" in detail
    assert "255" in detail and not report.imported


def test_a_partial_two_class_mask_keeps_its_unannotated_voxels(registered, tmp_path: Path) -> None:
    home, engine, uid = registered
    partial = _two_class()
    partial[3] = L.UNANNOTATED
    src = tmp_path / "ann"
    src.mkdir()
    _mask(partial, src / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester", label_scheme=L.TWO_CLASS)
    assert report.imported == [uid] and report.partial == {uid: 0.75}
    with session_scope(engine) as session:
        stored = _stored(session.scalars(select(ManualAnnotation)).one().mask_path)
    assert (stored[3] == L.UNANNOTATED).all() and (stored[1:3] == L.EDEMA).any() and not (stored[:3] == 255).any()


def test_migration_0002_converts_stored_two_class_masks_and_downgrade_restores_them(registered,
                                                                                    tmp_path: Path) -> None:
    home, engine, uid = registered
    downgrade(home.db_url, "0001")
    engine.dispose()
    legacy = _mask(_two_class(), tmp_path / "legacy.nii.gz")  # a mask a registry imported before 0002
    with engine.begin() as conn:
        series_id = conn.execute(text("SELECT id FROM series WHERE series_instance_uid = :u"), {"u": uid}).scalar_one()
        conn.execute(text("INSERT INTO manual_annotation (series_id, mask_path, sha256, imported_at) "
                          "VALUES (:s, :p, 'x', CURRENT_TIMESTAMP)"), {"s": series_id, "p": str(legacy)})
    engine.dispose()
    upgrade(home.db_url)
    with engine.connect() as conn:
        scheme, path = conn.execute(text("SELECT label_scheme, mask_path FROM manual_annotation")).one()
    engine.dispose()
    assert scheme == "two-class" and path != str(legacy)
    assert np.array_equal(_stored(path) == L.EDEMA, _two_class() == 2)
    assert np.array_equal(_stored(path) == L.IPH, _two_class() == 1)
    assert np.array_equal(_stored(str(legacy)), _two_class())  # the original stays
    downgrade(home.db_url, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT mask_path FROM manual_annotation")).scalar_one() == str(legacy)
    engine.dispose()
    upgrade(home.db_url)


def test_annotation_import_stores_no_name_of_the_operators_folders(registered, tmp_path: Path) -> None:
    home, engine, uid = registered
    src = tmp_path / "Rossi_Mario_19610312"
    src.mkdir()
    _mask(_two_class(), src / f"{uid}.nii.gz", marker=True)
    (src / "Rossi_Mario.nii.gz").write_bytes(b"not a mask")  # a file named after the patient, rejected
    with session_scope(engine) as session:
        report = import_annotations(session, src, home.masks_dir, "tester", key=home.secret())
    assert report.imported == [uid]
    assert [p for p, _, _ in report.rejected] == [str(src / "Rossi_Mario.nii.gz")]  # for the operator's terminal
    with session_scope(engine) as session:
        stored = [str(v) for table in ("ingest_run", "rejection", "audit_event")
                  for row in session.execute(text(f"SELECT * FROM {table}")) for v in row if v is not None]
    assert stored and not [v for v in stored if "Rossi" in v or "19610312" in v]
