"""The DICOM SEG export, de-identified, checked against the standard's IOD by `dciodvfy` (dicom3tools).

`dciodvfy` is an external peer (Debian `dicom3tools`, installed by `make test-peers`): absent, the test
skips with the reason, except under CTSTUDY_REQUIRE_DICOM_PEERS=1 (CI), where its absence fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from imaging_dicom_factory import head_phantom, write_ct_series

from imaging.dicom_seg import segmentation_dataset
from imaging.volume import load_series
from registry.deid.profile import is_mapped_uid

KEY, PSEUDONYM = b"home-key", "0123456789abcdef0123"


def dciodvfy() -> str:
    found = shutil.which("dciodvfy")
    if found is None:
        problem = "dciodvfy is not installed (`make test-peers` or `apt-get install dicom3tools`)"
        if os.environ.get("CTSTUDY_REQUIRE_DICOM_PEERS") == "1":
            pytest.fail(f"DICOM peers required (CTSTUDY_REQUIRE_DICOM_PEERS=1): {problem}")
        pytest.skip(problem)
    return found


def test_exported_seg_has_no_iod_errors(tmp_path: Path) -> None:
    tool = dciodvfy()
    hu, labels = head_phantom(nz=6, ny=32, nx=32)
    paths = write_ct_series(tmp_path / "ct", hu, spacing=(5.0, 0.9, 0.9), patient_id="IT064-0001")
    for path in paths:  # identifiers the export must not carry
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.InstitutionName, ds.PatientBirthDate = "Rossi^Mario", "Ospedale San Gerardo", "19610312"
        ds.save_as(path, enforce_file_format=True)
    vol = load_series(paths)
    mask = np.zeros(vol.hu.shape, dtype=np.uint8)
    mask[2:4, 10:16, 10:16] = 1
    seg = segmentation_dataset(paths, mask, vol.sop_instance_uids, "phantom", "0" * 64, identity=(KEY, PSEUDONYM))
    out = tmp_path / "seg.dcm"
    seg.save_as(out)

    done = subprocess.run([tool, str(out)], capture_output=True, text=True, timeout=120)
    report = done.stdout + done.stderr
    errors = [line for line in report.splitlines() if re.match(r"^\s*Error", line)]
    assert errors == [], report
    written = pydicom.dcmread(out)
    assert written.PatientID == PSEUDONYM == written.PatientName and "InstitutionName" not in written
    assert b"Rossi" not in out.read_bytes() and is_mapped_uid(KEY, written.StudyInstanceUID)
    referenced = [ref.ReferencedSOPInstanceUID for item in written.ReferencedSeriesSequence
                  for ref in item.ReferencedInstanceSequence]
    assert referenced and all(is_mapped_uid(KEY, uid) for uid in referenced)
