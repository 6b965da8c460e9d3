"""CT series written as real DICOM files inside the tests (no patient data, no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_ct_series(
    out: Path,
    hu: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (5.0, 0.9, 0.9),
    origin: Sequence[float] = (-115.0, -115.0, 0.0),
    positions: Sequence[Sequence[float]] | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    padding_value: int | None = None,
    file_order: Sequence[int] | None = None,
    instance_numbers: Sequence[int] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    patient_id: str = "TEST-0001",
) -> list[Path]:
    """Write `hu` (z, y, x) as one axial CT series; returns the file paths (in `file_order`)."""
    out.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = generate_uid()
    nz = hu.shape[0]
    dz, dy, dx = spacing
    if positions is None:
        positions = [(origin[0], origin[1], origin[2] + k * dz) for k in range(nz)]
    order = list(file_order) if file_order is not None else list(range(nz))
    numbers = list(instance_numbers) if instance_numbers is not None else [k + 1 for k in range(nz)]
    paths = []
    for name_index, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = out / f"IM{name_index:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientID = patient_id
        ds.PatientName = ""
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate = "20240305"
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "ctstudy-tests"
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = int(numbers[k])
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [float(v) for v in positions[k]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "HU"
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        stored = np.round((hu[k] - intercept) / slope).astype(np.int16)
        if padding_value is not None:
            ds.PixelPaddingValue = padding_value
        ds.PixelData = stored.tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def head_phantom(nz: int = 8, ny: int = 64, nx: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A crude head: air, skull ring, brain, one hematoma and its edema. Returns (hu, labels)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    r = np.hypot((y - ny / 2) / (ny * 0.42), (x - nx / 2) / (nx * 0.36))
    hu = np.full((nz, ny, nx), -1000.0)
    hu[r < 1.0] = 900.0
    hu[r < 0.88] = 35.0
    lesion = np.hypot(np.hypot((y - ny * 0.4) / (ny * 0.1), (x - nx * 0.6) / (nx * 0.09)), (z - nz / 2) / 2.2)
    labels = np.zeros(hu.shape, np.uint8)
    labels[(lesion < 1.6) & (r < 0.88)] = 3  # edema (vocabulary.labels)
    labels[lesion < 1.0] = 1  # IPH
    hu[labels == 3] = 18.0
    hu[labels == 1] = 70.0
    hu += rng.normal(0, 3, hu.shape) * (r < 1.0)
    return hu.astype(np.float32), labels
