"""Small CT series written with pydicom inside the tests, with the broken variants ingest must survive.

(Named with a `registry_` prefix: test folders have no __init__.py, so helper module names must be
unique across the whole test tree.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = "1.2.826.0.1.3680043.10.1289."  # a private test root, so UIDs never look like a real site's


def uid(name: str) -> str:
    """A stable UID for a test name (same name, same UID)."""
    return generate_uid(prefix=ROOT, entropy_srcs=[name])


def ct_slice(
    *,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    index: int,
    z: float,
    rows: int = 8,
    columns: int = 8,
    thickness: float = 5.0,
    pixel_spacing: float = 0.5,
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    y_shift: float = 0.0,
    modality: str = "CT",
    image_type: str = "ORIGINAL\\PRIMARY\\AXIAL",
    acquisition: str = "20240306093000",
    gantry_tilt: float | None = None,
    phi: dict[str, object] | None = None,
    fill: int = 0,
) -> Dataset:
    """One CT slice dataset (uncompressed 16-bit pixels) at slice-normal position `z`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    ds.Modality = modality
    ds.ImageType = image_type
    ds.StudyDate, ds.StudyTime = acquisition[:8], acquisition[8:]
    ds.AcquisitionDateTime = acquisition
    ds.SeriesNumber = 2
    ds.InstanceNumber = index + 1
    ds.SeriesDescription = "HEAD"
    ds.Manufacturer = "TESTCO"
    ds.ManufacturerModelName = "Phantom 64"
    ds.ConvolutionKernel = "H30s"
    ds.SliceThickness = thickness
    ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    ds.ImageOrientationPatient = list(orientation)
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    position = normal * z + np.array([0.0, y_shift, 0.0])
    ds.ImagePositionPatient = [round(float(v), 4) for v in position]
    if gantry_tilt is not None:
        ds.GantryDetectorTilt = gantry_tilt
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = np.full((rows, columns), fill, dtype=np.int16).tobytes()
    for keyword, value in (phi or {}).items():
        setattr(ds, keyword, value)
    return ds


def write_series(
    folder: Path,
    name: str,
    *,
    patient_id: str = "IT064-0001",
    study: str | None = None,
    n_slices: int = 24,
    thickness: float = 5.0,
    skip: tuple[int, ...] = (),
    duplicate: tuple[int, ...] = (),
    matrix: dict[int, tuple[int, int]] | None = None,
    tilt_deg: float = 0.0,
    gantry_tilt_tag: float | None = None,
    acquisition: str = "20240306093000",
    **slice_kwargs: object,
) -> list[Path]:
    """Write a series of `n_slices` slices `thickness` mm apart under `folder`; returns the files.

    `skip` leaves slice indices out (missing slices), `duplicate` adds a second slice at those positions, `matrix` gives
    some slices another (rows, columns), `tilt_deg` shears the stack along y as a tilted gantry does.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = uid(study or f"study-{patient_id}-{acquisition}")
    series_uid = uid(f"series-{name}")
    paths = []
    shift_per_mm = math.tan(math.radians(tilt_deg))
    slices = [(i, f"{name}-{i}") for i in range(n_slices) if i not in skip]
    slices += [(i, f"{name}-{i}-again") for i in duplicate]
    for i, sop_name in slices:
        z = i * thickness
        rows, columns = (matrix or {}).get(i, (slice_kwargs.get("rows", 8), slice_kwargs.get("columns", 8)))
        kwargs = {**slice_kwargs, "rows": rows, "columns": columns}
        ds = ct_slice(
            patient_id=patient_id, study_uid=study_uid, series_uid=series_uid, sop_uid=uid(sop_name),
            index=i, z=z, thickness=thickness, y_shift=z * shift_per_mm, acquisition=acquisition,
            gantry_tilt=gantry_tilt_tag, **kwargs,
        )
        path = folder / f"{sop_name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def series_uid_of(name: str) -> str:
    return uid(f"series-{name}")


def write_non_dicom(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("patient list, not an image\n")
    return path


def write_truncated(source: Path, path: Path, drop_bytes: int = 64) -> Path:
    """A copy of `source` with its last `drop_bytes` bytes cut (inside the pixel data: headers still parse)."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:-drop_bytes])
    return path


def write_without(source: Path, path: Path, keyword: str) -> Path:
    """A copy of `source` with one attribute removed (e.g. SOPInstanceUID)."""
    ds = pydicom.dcmread(source)
    delattr(ds, keyword)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=False)
    return path
