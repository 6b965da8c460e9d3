"""Ingest's readers convert values with pydicom's own value checks off (`values_unchecked_by_pydicom`).

In pydicom's default mode those checks only warn: a file with values pydicom finds invalid reads into the
same header facts and the same de-identified copy either way. A mode whose checks refuse values (RAISE)
is left as it is, and the mode set before is back afterwards.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pydicom.config
import pytest
from pydicom.dataelem import DataElement
from registry_dicom_factory import write_series

from registry.deid.deidentified_copy import deidentified_copy
from registry.deid.profile import deidentified_bytes_reencoded
from registry.dicom_headers import parse_instance, values_unchecked_by_pydicom

KEY = b"k" * 32


def _invalid_values(folder: Path) -> list[Path]:
    """Files whose UIDs, decimal strings and names pydicom's checks call invalid."""
    files = write_series(folder, "invalid", patient_id="IT064-0020", n_slices=3)
    for path in files:
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds["FrameOfReferenceUID"] = DataElement(0x00200052, "UI", "1.2.abc.04")  # letters, a leading zero
            ds["SliceLocation"] = DataElement(0x00201041, "DS", "12.50000000000000001")  # over 16 characters
            ds["SeriesDescription"] = DataElement(0x0008103E, "LO", "HEAD\\" + "x" * 70)  # a value over 64
        ds.save_as(path, enforce_file_format=True)
    return files


def test_files_pydicom_calls_invalid_read_and_copy_alike_without_its_checks(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN
    invalid_uid = "Invalid value for VR UI"
    for path in _invalid_values(tmp_path):
        caplog.clear()
        with values_unchecked_by_pydicom():
            parsed = parse_instance(path)
            copy = deidentified_copy(parsed, KEY, "PSEUDO-1")
        assert not any(invalid_uid in r.getMessage() for r in caplog.records)
        assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN
        caplog.clear()
        # The same file read with the checks on: the reference copy (pydicom's own writer), the header facts.
        reference = deidentified_bytes_reencoded(parsed.data, KEY, "PSEUDO-1")
        assert any(invalid_uid in r.getMessage() for r in caplog.records)  # the checks ran, and only warned
        assert copy == reference
        assert parse_instance(path).header == parsed.header


def test_refusing_checks_stay_on() -> None:
    settings = pydicom.config.settings
    before = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.RAISE
    try:
        with values_unchecked_by_pydicom():
            assert settings.reading_validation_mode == pydicom.config.RAISE
    finally:
        settings.reading_validation_mode = before
