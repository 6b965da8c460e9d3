"""Series stored while the other centers' files are still read leave the registry and the archive that
storing every series after reading leaves: the same rows in the same order (ids included), the same
rejections, the same archive files byte for byte; a center with a zip archive, and every center after it,
waits for the end of reading."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from registry_dicom_factory import write_non_dicom, write_series
from sqlalchemy import DateTime, select
from test_deidentified_copy import _home_with_key

import registry.ingest.directory as ingest_module
import registry.ingest.reading as ingest_reading
from registry.db.engine import make_engine, session_scope
from registry.db.models import Base
from registry.home import Home
from registry.ingest.centers_read import CentersRead
from registry.ingest.directory import ingest_directory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _folder(root: Path) -> None:
    """Five centers: two plain, one with a series split over two folders and a broken file, one with a zip."""
    write_series(root / "IT001" / "a", "r-a", patient_id="IT001-1", n_slices=6)
    write_series(root / "IT001" / "b", "r-b", patient_id="IT001-1", n_slices=5, acquisition="20240309120000")
    write_series(root / "IT002" / "x", "r-x", patient_id="IT002-7", n_slices=4, skip=(1,))
    write_series(root / "IT003" / "part1", "r-split", patient_id="IT003-2", n_slices=3)
    write_series(root / "IT003" / "part2", "r-split", patient_id="IT003-2", n_slices=6, skip=(0, 1, 2))
    write_non_dicom(root / "IT003" / "notes.txt")
    zipped = write_series(root.parent / "export", "r-zip", patient_id="IT004-3", n_slices=3)
    write_series(root / "IT004" / "plain", "r-zip-plain", patient_id="IT004-3", n_slices=3)
    with zipfile.ZipFile(root / "IT004" / "cd.zip", "w") as zf:
        for path in zipped:
            zf.write(path, f"CT/{path.name}")
    write_series(root / "IT005" / "y", "r-y", patient_id="IT005-9", n_slices=4)


def _dump(engine, home: Home) -> dict[str, list[tuple]]:
    """Every table's rows by primary key, the times of writing and the home's own folder left out."""
    tables = {}
    with session_scope(engine) as s:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns
                       if not (isinstance(c.type, DateTime) and (c.default is not None or c.name == "finished_at"))]
            rows = s.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(str(v).replace(str(home.root), "HOME") if isinstance(v, str) else v
                                        for v in row) for row in rows]
    return tables


def _archive(home: Home) -> dict[str, str]:
    return {str(p.relative_to(home.archive_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.archive_dir.rglob("*")) if p.is_file()}


def test_storing_while_reading_leaves_the_rows_and_copies_of_storing_after(
        home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _folder(tmp_path / "in")
    for module in (ingest_reading, ingest_module):  # two reader (and writer) processes, as in a large run
        monkeypatch.setattr(module, "ARCHIVE_PARALLEL_MIN_FILES", 1)
    events: list[tuple[str, int, int]] = []
    stored_while_reading: list[str] = []
    real_store = ingest_reading._store_centers_read

    def recording_store(storer, groups, codes, read):
        stored_while_reading.extend(code for code in codes if code not in read.held)
        return real_store(storer, groups, codes, read)
    monkeypatch.setattr(ingest_reading, "_store_centers_read", recording_store)
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "in", workers=2,
                              progress=lambda *event: events.append(event))
    assert report.series_new == 7 and report.rejected_by_reason == {"not_dicom": 1}
    # IT001 to IT003 were stored while reading went on; IT004 holds a zip, so it and IT005 waited.
    assert stored_while_reading == ["IT001", "IT002", "IT003"]
    files_done = max(n for n, event in enumerate(events) if event[0] == "files")
    assert any(event[0] == "series" for event in events[:files_done])
    assert events[-1] == ("series", 7, 7)

    after = _home_with_key(tmp_path / "after", home)
    monkeypatch.setattr(ingest_reading, "_store_centers_read", lambda *args: None)  # everything after reading
    after_engine = make_engine(after.db_url)
    after_report = ingest_directory(after_engine, after, tmp_path / "in", workers=2)

    assert after_report.counts() == report.counts()
    assert [(r.path, r.reason, r.detail) for r in after_report.rejected] == [
        (r.path, r.reason, r.detail) for r in report.rejected]
    assert _dump(after_engine, after) == _dump(engine, home)
    assert _archive(after) == _archive(home) and len(_archive(home)) == report.new_instances
    assert not any(home.staging_dir.iterdir())
    engine.dispose()
    after_engine.dispose()


def test_centers_are_ready_in_sorted_order_once_read_unless_held() -> None:
    read = CentersRead(["B", "B", "A", "C", "D", "D"])
    assert read.read("B") == []
    assert read.read("B") == []  # B is read, but A sorts first and is not
    assert read.read("A") == ["A", "B"]
    read.hold("D")
    assert read.read("D") == []
    assert read.read("C") == ["C"]
    assert read.read("D") == []  # held until reading ends
    with pytest.raises(ValueError, match="more files read"):
        read.read("A")
    stopped = CentersRead(["A", "B"])
    stopped.stop()
    assert stopped.read("A") == [] and stopped.read("B") == []
