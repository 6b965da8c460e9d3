"""The pure parts: one file's header (or why it is rejected), series QC reasons, pseudonyms."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from registry_dicom_factory import write_non_dicom, write_series, write_truncated, write_without

from registry.deid.pseudonym import PSEUDO_ID_LENGTH, pseudo_id
from registry.dicom_headers import RejectedFile, read_instance_header
from registry.qc.series_qc import QCThresholds, summarize_series


def headers_of(paths: list[Path]):
    return [read_instance_header(p) for p in paths]


def test_header_facts_and_hash(tmp_path: Path) -> None:
    files = write_series(tmp_path, "s", n_slices=3, thickness=2.5, patient_id="IT064-0007")
    h = read_instance_header(files[1])
    assert h.patient_id == "IT064-0007" and h.modality == "CT"
    assert h.slice_thickness == 2.5 and h.rows == 8 and h.pixel_spacing == (0.5, 0.5)
    assert h.image_position == (0.0, 0.0, 2.5)
    assert h.acquisition_datetime.isoformat() == "2024-03-06T09:30:00"
    assert h.convolution_kernel == "H30s" and h.manufacturer == "TESTCO"
    assert len(h.sha256) == 64 and h.file_size == files[1].stat().st_size
    assert h.phi_tags == ()  # PatientName equal to PatientID is not an identifier


@pytest.mark.parametrize(
    ("make", "reason", "names"),
    [
        (lambda src, dst: write_non_dicom(dst), "not_dicom", "DICOM"),
        (lambda src, dst: write_truncated(src, dst), "truncated", "PixelData"),
        (lambda src, dst: write_truncated(src, dst, drop_bytes=400), "truncated", "PixelData"),
        (lambda src, dst: write_without(src, dst, "SOPInstanceUID"), "missing_sop_instance_uid", "(0008,0018)"),
        (lambda src, dst: write_without(src, dst, "SeriesInstanceUID"), "missing_series_instance_uid", "(0020,000E)"),
    ],
)
def test_broken_files_are_rejected_with_reason(tmp_path: Path, make, reason: str, names: str) -> None:
    source = write_series(tmp_path / "ok", "s", n_slices=1)[0]
    bad = make(source, tmp_path / "bad" / "file.dcm")
    with pytest.raises(RejectedFile) as caught:
        read_instance_header(bad)
    assert caught.value.reason == reason
    assert names in caught.value.detail and str(bad) == caught.value.path


def test_non_ct_modality_is_rejected(tmp_path: Path) -> None:
    mr = write_series(tmp_path, "mr", n_slices=1, modality="MR")[0]
    with pytest.raises(RejectedFile, match="'MR', not 'CT'") as caught:
        read_instance_header(mr)
    assert caught.value.reason == "not_ct"


def test_phi_tags_are_named_never_valued(tmp_path: Path) -> None:
    f = write_series(tmp_path, "phi", n_slices=1, phi={"PatientName": "Rossi^Mario", "PatientBirthDate": "19700101",
                                                        "OtherPatientIDs": "H-123", "PatientAddress": ""})[0]
    h = read_instance_header(f)
    assert h.phi_tags == ("PatientName", "PatientBirthDate", "OtherPatientIDs")  # empty address is fine
    assert "Rossi" not in repr(h) and "1970" not in repr(h)


def test_clean_head_series_is_pending_review(tmp_path: Path) -> None:
    s = summarize_series(headers_of(write_series(tmp_path, "ok", n_slices=24, thickness=5.0)))
    assert s.qc_reasons == [] and s.qc_status == "pending"
    assert s.slice_spacing == 5.0 and s.coverage_mm == 120.0 and s.gantry_tilt == 0.0
    assert s.z_positions == [5.0 * i for i in range(24)] and s.instance_count == 24


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"skip": (7, 8)}, ["missing_slices"]),
        ({"duplicate": (10,)}, ["duplicate_positions"]),
        ({"matrix": {3: (10, 10)}}, ["mixed_matrix"]),
        ({"tilt_deg": 15.0}, ["gantry_tilt"]),
        ({"gantry_tilt_tag": -12.0}, ["gantry_tilt"]),
        ({"n_slices": 12}, ["insufficient_coverage"]),
        ({"n_slices": 6, "thickness": 20.0}, ["too_few_slices"]),
        ({"n_slices": 1, "image_type": "ORIGINAL\\PRIMARY\\LOCALIZER"},
         ["localizer", "too_few_slices", "insufficient_coverage"]),
    ],
)
def test_qc_reasons(tmp_path: Path, kwargs: dict, expected: list[str]) -> None:
    s = summarize_series(headers_of(write_series(tmp_path, "s", **kwargs)))
    assert s.qc_reasons == expected and s.qc_status == "auto_failed"


def test_nonuniform_spacing_and_localizer_planes(tmp_path: Path) -> None:
    base = headers_of(write_series(tmp_path, "s", n_slices=24))
    z = [5.0 * i + (1.5 if i >= 12 else 0.0) for i in range(24)]  # one step of 6.5 mm among 5 mm ones
    uneven = [replace(h, image_position=(0.0, 0.0, zi)) for h, zi in zip(base, z, strict=True)]
    assert summarize_series(uneven).qc_reasons == ["nonuniform_spacing"]
    three_planes = [replace(base[0], image_orientation=(0, 1, 0, 0, 0, -1)), *base[1:]]
    assert "localizer" in summarize_series(three_planes).qc_reasons
    assert summarize_series(base, QCThresholds(min_coverage_mm=150)).qc_reasons == ["insufficient_coverage"]


def test_pseudonym_is_stable_keyed_and_center_bound() -> None:
    a = pseudo_id(b"k1", "IT064", "0012")
    assert a == pseudo_id(b"k1", " IT064", "0012 ") and len(a) == PSEUDO_ID_LENGTH
    assert a != pseudo_id(b"k2", "IT064", "0012")  # another key, another pseudonym
    assert a != pseudo_id(b"k1", "IT100", "0012")  # the same local ID at another center is another patient
    assert "0012" not in a
    with pytest.raises(ValueError):
        pseudo_id(b"k1", "IT064", " ")
