"""One DICOM file -> the header facts the registry keeps, or the reason it is rejected.

Pure: a path in, an `InstanceHeader` (or `RejectedFile` raised) out; no database. Only the header
is parsed (`stop_before_pixels`): the pixels are never decoded, yet a file cut short inside its
pixel data is still caught by comparing the pixel data element's length with what the header
promises (Rows x Columns x BitsAllocated/8 x SamplesPerPixel x NumberOfFrames).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

# Rejection reason codes (Rejection.reason); `not_ct` is also the first QC code (registry.series_qc).
NOT_DICOM = "not_dicom"
UNREADABLE = "unreadable"
TRUNCATED = "truncated"
MISSING_SOP_UID = "missing_sop_instance_uid"
MISSING_SERIES_UID = "missing_series_instance_uid"
MISSING_STUDY_UID = "missing_study_instance_uid"
MISSING_PATIENT_ID = "missing_patient_id"
NOT_CT = "not_ct"

# Direct identifiers that de-identified headers should not carry (after the DICOM PS3.15 Annex E
# basic profile, patient module). PatientName is special-cased: empty or equal to PatientID is fine.
DIRECT_IDENTIFIER_TAGS = (
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "MedicalRecordLocator",
    "PatientInsurancePlanCodeSequence",
    "ResponsiblePerson",
)

PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF


class RejectedFile(Exception):
    """A file ingest cannot use; `reason` is a code, `detail` names the tag or the problem."""

    def __init__(self, path: Path | str, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[RejectedFile], tuple[str, str, str]]:
        # Rejections come back from reader processes: pickle by the constructor's arguments.
        return (RejectedFile, (self.path, self.reason, self.detail))


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """What the registry keeps of one instance (no patient name, no birth date: only tag names of PHI)."""

    path: str
    sha256: str
    file_size: int
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    modality: str
    image_type: str | None
    series_number: int | None
    series_description: str | None
    study_description: str | None
    study_datetime: dt.datetime | None
    acquisition_datetime: dt.datetime | None
    manufacturer: str | None
    manufacturer_model: str | None
    institution: str | None
    convolution_kernel: str | None
    instance_number: int | None
    rows: int | None
    columns: int | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, ...] | None
    gantry_detector_tilt: float | None
    phi_tags: tuple[str, ...]


def read_instance_header(path: Path | str, *, with_hash: bool = True) -> InstanceHeader:
    """Parse one file's header (pixels skipped) and hash its bytes; raises `RejectedFile`."""
    path = Path(path)
    # One read serves both the hash and the parse: the file is touched once.
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest() if with_hash else ""
    fp = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise RejectedFile(path, NOT_DICOM, f"no DICOM preamble/prefix ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of a corrupt header is the same verdict
        raise RejectedFile(path, UNREADABLE, f"header cannot be parsed: {type(exc).__name__}: {exc}") from None
    pixel_offset = fp.tell()

    try:
        header = _header_from_dataset(ds, path, digest, len(data))
    except RejectedFile:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed value (e.g. DS 'abc') names its tag below
        raise RejectedFile(path, UNREADABLE, f"malformed header value: {type(exc).__name__}: {exc}") from None
    _check_pixel_data_complete(ds, data, pixel_offset, path)
    return header


def _header_from_dataset(ds: pydicom.Dataset, path: Path, digest: str, size: int) -> InstanceHeader:
    sop = _text(ds, "SOPInstanceUID")
    if not sop:
        raise RejectedFile(path, MISSING_SOP_UID, "SOPInstanceUID (0008,0018) missing or empty")
    series = _text(ds, "SeriesInstanceUID")
    if not series:
        raise RejectedFile(path, MISSING_SERIES_UID, "SeriesInstanceUID (0020,000E) missing or empty")
    study = _text(ds, "StudyInstanceUID")
    if not study:
        raise RejectedFile(path, MISSING_STUDY_UID, "StudyInstanceUID (0020,000D) missing or empty")
    modality = _text(ds, "Modality") or ""
    if modality.upper() != "CT":
        raise RejectedFile(path, NOT_CT, f"Modality (0008,0060) is {modality or 'empty'!r}, not 'CT'")
    patient_id = _text(ds, "PatientID")
    if not patient_id:
        raise RejectedFile(path, MISSING_PATIENT_ID, "PatientID (0010,0020) missing or empty")

    image_type = _text(ds, "ImageType")
    spacing = _floats(ds, "PixelSpacing", 2)
    return InstanceHeader(
        path=str(path),
        sha256=digest,
        file_size=size,
        sop_instance_uid=sop,
        series_instance_uid=series,
        study_instance_uid=study,
        patient_id=patient_id,
        modality="CT",
        image_type=image_type or None,
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        study_description=_text(ds, "StudyDescription"),
        study_datetime=_datetime(_text(ds, "StudyDate"), _text(ds, "StudyTime")),
        acquisition_datetime=_acquisition_datetime(ds),
        manufacturer=_text(ds, "Manufacturer"),
        manufacturer_model=_text(ds, "ManufacturerModelName"),
        institution=_text(ds, "InstitutionName"),
        convolution_kernel=_text(ds, "ConvolutionKernel"),
        instance_number=_int(ds, "InstanceNumber"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        slice_thickness=_float(ds, "SliceThickness"),
        image_position=_floats(ds, "ImagePositionPatient", 3),
        image_orientation=_floats(ds, "ImageOrientationPatient", 6),
        gantry_detector_tilt=_float(ds, "GantryDetectorTilt"),
        phi_tags=phi_tags_found(ds),
    )


def phi_tags_found(ds: pydicom.Dataset) -> tuple[str, ...]:
    """Names (never values) of direct identifiers present and non-empty in the header."""
    found = []
    name = _text(ds, "PatientName")
    if name and name != _text(ds, "PatientID"):
        found.append("PatientName")
    present = set(ds.keys())
    for keyword in DIRECT_IDENTIFIER_TAGS:
        if _tag(keyword) not in present:
            continue
        value = _raw(ds, keyword)
        empty = value.strip(b" \0") == b"" if isinstance(value, bytes) else not str(value).strip(" []")
        if not empty:
            found.append(keyword)
    return tuple(found)


def _check_pixel_data_complete(ds: pydicom.Dataset, data: bytes, offset: int, path: Path) -> None:
    """Raise TRUNCATED when the pixel data element is shorter than declared or than the image needs.

    Hand-written because pydicom offers no length check short of decoding the pixels, which is what
    ingest avoids: we read only the 8- or 12-byte element header at the offset where parsing stopped.
    """
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if offset >= len(data):
        # pydicom stops quietly at the end of the data: a file cut inside its header looks complete
        # but lacks the pixels every CT image carries.
        raise RejectedFile(path, TRUNCATED, "file ends before PixelData (7FE0,0010): truncated or no image")
    transfer_syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    little = True if transfer_syntax is None else transfer_syntax.is_little_endian
    implicit = False if transfer_syntax is None else transfer_syntax.is_implicit_VR
    endian = "<" if little else ">"
    head = data[offset : offset + 12]
    if len(head) < 8:
        raise RejectedFile(path, TRUNCATED, f"file ends inside the PixelData element header at byte {offset}")
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | element) != PIXEL_DATA_TAG:
        return  # float / double pixel data or trailing elements: not the case this check is for
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        value_start = offset + 8
    else:
        if len(head) < 12:
            raise RejectedFile(path, TRUNCATED, f"file ends inside the PixelData element header at byte {offset}")
        (length,) = struct.unpack(endian + "I", head[8:12])
        value_start = offset + 12
    available = len(data) - value_start
    if length == UNDEFINED_LENGTH:
        # Encapsulated (compressed) frames: complete files end with a Sequence Delimitation Item.
        if data[-8:-4] != struct.pack(endian + "HH", 0xFFFE, 0xE0DD):
            raise RejectedFile(path, TRUNCATED, "encapsulated PixelData (7FE0,0010) has no sequence delimiter")
        return
    if available < length:
        raise RejectedFile(path, TRUNCATED,
                           f"PixelData (7FE0,0010) declares {length} bytes but only {available} are present")
    bits = _int(ds, "BitsAllocated") or 0
    samples = _int(ds, "SamplesPerPixel") or 1
    frames = _int(ds, "NumberOfFrames") or 1
    if rows and columns and bits:
        expected = rows * columns * samples * frames * bits // 8
        if length < expected:
            raise RejectedFile(
                path, TRUNCATED,
                f"PixelData (7FE0,0010) holds {length} bytes; Rows {rows} x Columns {columns} x "
                f"BitsAllocated {bits}/8 x SamplesPerPixel {samples} x frames {frames} needs {expected}",
            )


# Values are read from the raw (still undecoded) elements: pydicom's per-element conversion through
# Dataset.get costs tens of microseconds each, which for ~40 attributes dominated ingest time. Text is
# decoded here when it is plain ASCII (UIDs, codes, numbers always are); anything else goes through
# pydicom so that SpecificCharacterSet is honoured.
_US_KEYWORDS = {"Rows", "Columns", "BitsAllocated", "SamplesPerPixel"}
_TAG_CACHE: dict[str, int] = {}


def _tag(keyword: str) -> int:
    tag = _TAG_CACHE.get(keyword)
    if tag is None:
        tag = _TAG_CACHE[keyword] = pydicom.datadict.tag_for_keyword(keyword)
    return tag


def _raw(ds: pydicom.Dataset, keyword: str) -> object | None:
    elem = ds.get_item(_tag(keyword))
    return None if elem is None else elem.value


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = _raw(ds, keyword)
    if value is None:
        return None
    if isinstance(value, bytes):
        if keyword in _US_KEYWORDS:
            return str(_int(ds, keyword))
        text = value.decode("ascii") if value.isascii() else str(ds[_tag(keyword)].value)
    elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.strip(" \0")
    return text or None


def _int(ds: pydicom.Dataset, keyword: str) -> int | None:
    value = _raw(ds, keyword)
    if value is None:
        return None
    if keyword in _US_KEYWORDS and isinstance(value, bytes):
        if len(value) < 2:
            return None
        little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
        return struct.unpack(("<" if little else ">") + "H", value[:2])[0]
    text = _text(ds, keyword)
    return None if text is None else int(float(text.split("\\")[0]))


def _float(ds: pydicom.Dataset, keyword: str) -> float | None:
    text = _text(ds, keyword)
    return None if text is None else float(text.split("\\")[0])


def _floats(ds: pydicom.Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    text = _text(ds, keyword)
    if text is None:
        return None
    values = tuple(float(v) for v in text.split("\\"))
    if len(values) != n:
        raise ValueError(f"{keyword} has {len(values)} values, expected {n}")
    return values


def _datetime(date: str | None, time: str | None) -> dt.datetime | None:
    """DICOM DA + TM -> datetime (fractions and UTC offsets dropped: DICOM times are local wall time)."""
    if not date or len(date) < 8 or not date[:8].isdigit():
        return None
    try:
        day = dt.datetime(int(date[:4]), int(date[4:6]), int(date[6:8]))
    except ValueError:
        return None
    if time:
        digits = time.split(".")[0].replace(":", "")
        if digits.isdigit() and len(digits) >= 2:
            hh, mm, ss = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
            if hh < 24 and mm < 60 and ss < 60:
                day = day.replace(hour=hh, minute=mm, second=ss)
    return day


def _acquisition_datetime(ds: pydicom.Dataset) -> dt.datetime | None:
    """AcquisitionDateTime, else AcquisitionDate+Time, else SeriesDate+Time, else StudyDate+Time."""
    adt = _text(ds, "AcquisitionDateTime")
    if adt:
        digits = adt.split("+")[0].split("-")[0]
        found = _datetime(digits[:8], digits[8:] or None)
        if found:
            return found
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                             ("StudyDate", "StudyTime")):
        found = _datetime(_text(ds, date_kw), _text(ds, time_kw))
        if found:
            return found
    return None
