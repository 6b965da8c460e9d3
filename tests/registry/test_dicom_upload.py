"""Dashboard uploads on the registry side: DICOM files and zips through the spool and the one ingest, the size
limit, and tables restricted to a coordinator's center."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from registry_dicom_factory import series_uid_of, write_non_dicom, write_series
from sqlalchemy import func, select

from registry.db.engine import make_engine, session_scope
from registry.db.models import Center, Outcome, Patient, Series, Study
from registry.dicom.spool import spool_root
from registry.home import Home
from registry.intake.dicom_upload import UploadTooLarge, ingest_upload, spool_upload
from registry.intake.table_upload import OutsideCenter, import_uploaded_table

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def zipped(files: list[Path], root: Path, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, str(path.relative_to(root)))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_and_loose_files_are_ingested_for_the_center_with_a_verdict_per_file(home: Home, tmp_path: Path) -> None:
    in_zip = write_series(tmp_path / "cd" / "DICOM", "up-zip", patient_id="IT064-0009", n_slices=10)
    loose = write_series(tmp_path / "loose", "up-loose", patient_id="IT064-0010", n_slices=6)
    notes = write_non_dicom(tmp_path / "notes.txt")
    uploads = [("export.zip", zipped(in_zip, tmp_path / "cd", {"__MACOSX/._x": b"fork", ".DS_Store": b"x"})),
               *[(p.name, p.read_bytes()) for p in loose], ("notes.txt", notes.read_bytes())]
    engine = make_engine(home.db_url)
    batch, names = spool_upload(home, "IT064", uploads, limit_bytes=50 << 20)
    assert len(names) == 10 + 6 + 1  # the resource fork and hidden file are not uploads
    seen: list[tuple[str, int, int]] = []
    result = ingest_upload(engine, home, batch, names, actor="dashboard:coord",
                           progress=lambda phase, done, total: seen.append((phase, done, total)))
    verdicts = {f.name: f.verdict for f in result.files}
    assert verdicts.pop("notes.txt") == "not_dicom"
    assert set(verdicts.values()) == {"stored"} and "export.zip/DICOM/up-zip-0.dcm" in verdicts
    assert result.new_instances == 16 and result.series_new == 2
    assert ("series", 2, 2) in seen
    with session_scope(engine) as s:
        rows = s.execute(select(Center.code, Series.series_instance_uid, Series.instance_count)
                         .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
                         .join(Series, Series.study_id == Study.id)).all()
    assert sorted(rows) == sorted([("IT064", series_uid_of("up-zip"), 10), ("IT064", series_uid_of("up-loose"), 6)])
    again = ingest_upload(engine, home, *spool_upload(home, "IT064", uploads[1:2], limit_bytes=50 << 20),
                          actor="dashboard:coord")
    assert (again.new_instances, again.already_present) == (0, 1)
    engine.dispose()
    assert not any(spool_root(home).rglob("*.dcm"))


def test_upload_over_the_limit_is_refused_whole_and_leaves_no_spool_batch(home: Home, tmp_path: Path) -> None:
    files = write_series(tmp_path / "big", "up-big", n_slices=8, rows=64, columns=64)
    data = zipped(files, tmp_path / "big")
    with pytest.raises(UploadTooLarge, match="upload limit"):
        spool_upload(home, "IT064", [("big.zip", data)], limit_bytes=3 * 64 * 64 * 2)
    assert not any(p.is_file() for p in spool_root(home).rglob("*"))


def test_coordinator_table_with_another_centers_row_imports_nothing(home: Home, tmp_path: Path) -> None:
    header = "center,patient_id,gos_6m,died,days_to_death_or_censor"
    mixed = "\n".join([header, "IT064,P1,5,0,183", "GR001,P2,4,0,183", ""]).encode()
    engine = make_engine(home.db_url)
    with pytest.raises(OutsideCenter, match=r"line\(s\) 3 name another center than IT064") as caught:
        import_uploaded_table(engine, home, "outcomes.csv", mixed, "outcomes", center_scope="IT064",
                              actor="dashboard:coord", create=True)
    assert caught.value.lines == [3]
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Outcome)) == 0
    own = "\n".join([header, "it064,P1,5,0,183", ""]).encode()
    report = import_uploaded_table(engine, home, "outcomes.csv", own, "outcomes", center_scope="IT064",
                                   actor="dashboard:coord", create=True)
    assert report.created == 1
    admin = import_uploaded_table(engine, home, "outcomes.csv", mixed, "outcomes", center_scope=None,
                                  actor="dashboard:admin", create=True)
    assert admin.created == 1 and admin.unchanged == 1
    engine.dispose()
    assert not any((spool_root(home) / "tables").iterdir())
