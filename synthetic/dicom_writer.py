"""Write a rendered series as CT Image Storage DICOM files (pydicom 3, explicit VR little endian).

Each center stores pixels its own way (see synthetic.centers): signed int16 with intercept
-1024 or -1000, or unsigned 12-bit with intercept -1024; GE-like centers pad the corners outside
the reconstruction circle with PixelPaddingValue; some send the slices vertex first.
UIDs are deterministic: `uid(...)` hashes the seed and the object's place in the study.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element, write_file_meta_info
from pydicom.tag import BaseTag, Tag
from pydicom.uid import PYDICOM_ROOT_UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from synthetic.centers import CenterProfile

PADDING_STORED_SIGNED = -2000  # stored value outside the reconstruction circle (GE style: HU -3024)
# The elements that differ between the files of one series; every other element is encoded once per series.
PER_SLICE_KEYWORDS = ("SOPInstanceUID", "AcquisitionTime", "ContentTime", "InstanceNumber", "ImagePositionPatient",
                      "SliceLocation", "PixelData")
PER_SLICE_TAGS = frozenset(Tag(k) for k in PER_SLICE_KEYWORDS)


def uid(*parts: object) -> str:
    """A deterministic UID under pydicom's root from the parts naming an object in the study.

    (generate_uid ignores entropy_srcs when prefix is None, so the root must be given.)
    """
    return generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=[str(p) for p in parts])


@dataclass
class SeriesHeader:
    """What the files of one series say about the patient, study and series."""

    patient_id: str
    patient_sex: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    study_datetime: dt.datetime
    series_number: int
    study_id: str
    series_description: str
    center: CenterProfile
    patient_name: str | None = None  # None: the PatientID itself (already de-identified)
    extra: dict[str, object] = field(default_factory=dict)  # keyword -> value, e.g. PHI left by a site
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    modality: str = "CT"
    sop_seed: str = ""


def stored_pixels(hu: np.ndarray, center: CenterProfile) -> np.ndarray:
    """HU -> stored integers with the center's intercept, range and signedness."""
    raw = np.rint(hu - center.rescale_intercept)
    if center.pixel_representation == 0:
        return np.clip(raw, 0, 2**center.bits_stored - 1).astype(np.uint16)
    return np.clip(raw, -(2**15), 2**15 - 1).astype(np.int16)


def _base_dataset(h: SeriesHeader, rows: int, columns: int, pixel_spacing: tuple[float, float],
                  slice_thickness: float) -> Dataset:
    c = h.center
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage if h.modality == "CT" else MRImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(h.image_type)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    date, time = h.study_datetime.strftime("%Y%m%d"), h.study_datetime.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = time
    ds.AccessionNumber = ""
    ds.Modality = h.modality
    ds.Manufacturer = c.manufacturer
    ds.InstitutionName = c.institution
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT HEAD" if h.modality == "CT" else "MR BRAIN"
    ds.SeriesDescription = h.series_description
    ds.ManufacturerModelName = c.model
    ds.PatientName = h.patient_name if h.patient_name is not None else h.patient_id
    ds.PatientID = h.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = h.patient_sex
    ds.BodyPartExamined = "HEAD"
    ds.SliceThickness = f"{slice_thickness:g}"
    if h.modality == "CT":
        ds.KVP = f"{c.kvp:g}"
        ds.ConvolutionKernel = c.kernel
        ds.XRayTubeCurrent = c.mA
        ds.GantryDetectorTilt = "0"
    else:
        ds.MagneticFieldStrength = "1.5"
        ds.RepetitionTime = "2000"
        ds.EchoTime = "90"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = h.study_instance_uid
    ds.SeriesInstanceUID = h.series_instance_uid
    ds.StudyID = h.study_id
    ds.SeriesNumber = h.series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = h.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.PixelSpacing = [f"{pixel_spacing[0]:.6g}", f"{pixel_spacing[1]:.6g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = c.bits_stored
    ds.HighBit = c.bits_stored - 1
    ds.PixelRepresentation = c.pixel_representation
    if h.modality == "CT":
        ds.WindowCenter = "40"
        ds.WindowWidth = "80"
        ds.RescaleIntercept = f"{c.rescale_intercept:g}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
    for keyword, value in h.extra.items():
        setattr(ds, keyword, value)
    return ds


def write_series(hu: np.ndarray, affine: np.ndarray, header: SeriesHeader, folder: Path,
                 orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)) -> list[Path]:
    """Write `hu` (z, y, x) as one file per slice under `folder`; returns the paths in instance order.

    `affine` maps (column, row, slice) to LPS mm; the default orientation is axial (rows along +y).
    """
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, columns = hu.shape
    dx, dy = float(np.linalg.norm(affine[:3, 0])), float(np.linalg.norm(affine[:3, 1]))
    dz = float(np.linalg.norm(affine[:3, 2])) if n > 1 else float(header.extra.get("SliceThickness", 5.0))
    ds = _base_dataset(header, rows, columns, (dy, dx), dz)
    ds.ImageOrientationPatient = [f"{v:g}" for v in orientation]
    center = header.center
    stored = stored_pixels(hu, center) if header.modality == "CT" else np.clip(hu, 0, 4095).astype(np.uint16)
    if header.modality == "CT" and center.pad_outside_fov and center.pixel_representation == 1:
        # Scanners leave the corners outside the reconstruction circle at a padding value, not air.
        yy, xx = np.mgrid[0:rows, 0:columns]
        outside = (yy - (rows - 1) / 2) ** 2 + (xx - (columns - 1) / 2) ** 2 > (min(rows, columns) / 2) ** 2
        stored[:, outside] = PADDING_STORED_SIGNED
        ds.PixelPaddingValue = PADDING_STORED_SIGNED
    order = range(n - 1, -1, -1) if center.descending else range(n)
    encoder = SeriesEncoder()
    paths = []
    normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))
    for number, k in enumerate(order, start=1):
        pos = affine @ np.array([0.0, 0.0, float(k), 1.0])
        sop = uid(header.sop_seed, header.series_instance_uid, k)
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [f"{v:.4f}" for v in pos[:3]]
        ds.SliceLocation = f"{float(np.dot(pos[:3], normal)):.4f}"
        t = header.study_datetime + dt.timedelta(seconds=0.5 * k)
        ds.AcquisitionTime = ds.ContentTime = t.strftime("%H%M%S.%f")[:13]
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = folder / f"IM{number:04d}.dcm"
        path.write_bytes(encoder.file_bytes(ds))
        paths.append(path)
    return paths


class SeriesEncoder:
    """The bytes of `ds.save_as(path, enforce_file_format=True)` for the files of one series, faster.

    pydicom encodes every element of every file (and copies and checks the dataset first): 65 elements per
    slice, of which only `PER_SLICE_TAGS` change within a series. This encoder keeps the bytes of each other
    element from the first file and encodes only the changing ones, with pydicom's own element writer, so the
    files are byte for byte those of `save_as` (tests/synthetic/test_dicom_writer.py) at about half the cost
    of writing a study's DICOM (bench/synth_bench.py). Explicit VR little endian only, as this module writes.
    """

    def __init__(self) -> None:
        self._constant: dict[BaseTag, bytes] = {}

    @staticmethod
    def _encoded(ds: Dataset, tag: BaseTag) -> bytes:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = False, True
        elem = correct_ambiguous_vr_element(ds[tag], ds, True)  # e.g. PixelData OB/OW, PixelPaddingValue US/SS
        write_data_element(fp, elem, ds.get("SpecificCharacterSet", "iso8859"))
        return fp.getvalue()

    def file_bytes(self, ds: Dataset) -> bytes:
        if ds.file_meta.TransferSyntaxUID != ExplicitVRLittleEndian:
            raise ValueError(f"SeriesEncoder writes explicit VR little endian, not {ds.file_meta.TransferSyntaxUID}")
        meta = DicomBytesIO()
        meta.is_implicit_VR, meta.is_little_endian = False, True
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        parts = [b"\x00" * 128, b"DICM", meta.getvalue()]
        for tag in sorted(ds.keys()):
            if tag in PER_SLICE_TAGS:
                parts.append(self._encoded(ds, tag))
            else:
                if tag not in self._constant:
                    self._constant[tag] = self._encoded(ds, tag)
                parts.append(self._constant[tag])
        return b"".join(parts)
