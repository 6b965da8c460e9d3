"""Whatever ingest accepts, the imaging pipeline reads: DICOM files without the 128-byte preamble, indexed in place."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from imaging_dicom_factory import head_phantom, write_ct_series
from sqlalchemy import select

from imaging.dicom_seg import segmentation_dataset
from imaging.store import load_series_volume, patient_pseudo_id
from registry.db.engine import make_engine, session_scope
from registry.db.models import Series
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory


def without_preamble(paths: list[Path]) -> None:
    """Rewrite each file without its preamble: every other one keeps its file meta, the rest start at the dataset."""
    for i, path in enumerate(paths):
        raw = path.read_bytes()
        (meta_length,) = struct.unpack("<I", raw[140:144])
        path.write_bytes(raw[132:] if i % 2 else raw[144 + meta_length:])


def test_preambleless_files_indexed_in_place_are_segmentable(home: Home, tmp_path: Path) -> None:
    hu, _ = head_phantom(nz=6, ny=32, nx=32)
    paths = write_ct_series(tmp_path / "src" / "IT064" / "p", hu, patient_id="IT064-0001")
    without_preamble(paths)
    engine = make_engine(home.db_url)
    report = ingest_directory(engine, home, tmp_path / "src", in_place=True)
    assert report.new_instances == len(paths) and report.rejected == []
    with session_scope(engine) as s:
        series = s.scalars(select(Series)).one()
        record_qc_decision(s, series.series_instance_uid, "passed", None, "dr.coordinator")
        volume = load_series_volume(s, series)
        pseudonym = patient_pseudo_id(s, series)
    np.testing.assert_allclose(volume.hu, hu, atol=1.0)
    mask = np.zeros(volume.hu.shape, dtype=np.uint8)
    mask[2, 10:14, 10:14] = 1
    seg = segmentation_dataset(sorted(paths), mask, volume.sop_instance_uids, "phantom", "0" * 64,
                               identity=(home.secret(), pseudonym))
    assert seg.PatientID == pseudonym and seg.Modality == "SEG"
    engine.dispose()
