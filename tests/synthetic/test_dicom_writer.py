"""The synthetic study's DICOM files: byte for byte what pydicom's `save_as` writes, however they are encoded."""

from __future__ import annotations

import datetime as dt
from io import BytesIO

import numpy as np
import pydicom
import pytest

from synthetic.centers import CATALOGUE
from synthetic.dicom_writer import SeriesEncoder, SeriesHeader, uid, write_series


def header(center, **changes) -> SeriesHeader:
    base = dict(patient_id="P0001", patient_sex="F", study_instance_uid=uid("t", "study"),
                series_instance_uid=uid("t", center.code, "series"), frame_of_reference_uid=uid("t", "frame"),
                study_datetime=dt.datetime(2024, 3, 1, 14, 5, 9), series_number=2, study_id="1",
                series_description=f"Head 5mm {center.kernel}", center=center, sop_seed="0")
    return SeriesHeader(**{**base, **changes})


@pytest.mark.parametrize("center", CATALOGUE, ids=lambda c: c.code)
def test_series_files_are_the_bytes_pydicom_save_as_writes(tmp_path, monkeypatch, center) -> None:
    """Every center's storage (signed / unsigned, corner padding, slice order) and a header with a latin-1 name."""
    written_by_pydicom: list[bytes] = []
    encode = SeriesEncoder.file_bytes

    def alongside_save_as(self, ds):  # noqa: ANN001, ANN202
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        written_by_pydicom.append(buffer.getvalue())
        return encode(self, ds)

    monkeypatch.setattr(SeriesEncoder, "file_bytes", alongside_save_as)
    rng = np.random.default_rng(0)
    hu = rng.normal(30, 200, (4, 24, 24)).astype(np.float32)
    affine = np.array([[0.9, 0, 0, -10.0], [0, 0.9, 0, -12.0], [0, 0, 5.0, -40.0], [0, 0, 0, 1]])
    h = header(center, patient_name="Müller^Zoë", extra={"PatientBirthDate": "19770312"})
    paths = write_series(hu, affine, h, tmp_path / center.code)
    assert len(paths) == 4
    assert [p.read_bytes() for p in paths] == written_by_pydicom
    first = pydicom.dcmread(paths[0])
    assert first.PatientName == "Müller^Zoë"
    k = 3 if center.descending else 0  # the first file holds the slice the center sends first
    expected = np.rint(hu[k] - center.rescale_intercept)
    stored = first.pixel_array.astype(np.float64)
    inside = stored != first.get("PixelPaddingValue", np.inf)
    np.testing.assert_array_equal(stored[inside], np.clip(expected, -(2**15), 2**center.bits_stored - 1)[inside])
