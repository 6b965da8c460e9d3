"""One DICOM file -> the header facts the registry keeps, or the reason it is rejected.

Pure: a path in, an `InstanceHeader` (or `RejectedFile` raised) out; no database. Only the header
is parsed (`stop_before_pixels`): the pixels are never decoded, yet a file cut short inside its
pixel data is still caught by comparing the pixel data element's length with what the header
promises (Rows x Columns x BitsAllocated/8 x SamplesPerPixel x NumberOfFrames).

Every file is judged alone: whatever is wrong with it becomes a `RejectedFile` with a reason code and
a detail naming the tag, never an exception that ends the run. Values are checked against their VR
(`registry.qc.header_validation`) before they leave this module, and geometry or pixel facts that make
the image unusable are kept as per-instance `defects` (automatic QC reason codes), so that the series
is stored and fails QC with its reasons instead of reaching a coordinator as "pending".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from registry.deid.center_names import center_names_patient
from registry.deid.phi_text import cleaned_text
from registry.deid.profile import METHOD
from registry.qc.header_validation import (
    InvalidValue,
    finite,
    normalized_text,
    tag_label,
    valid_identifier,
    valid_uid,
)

# Rejection reason codes (Rejection.reason); `not_ct` is also the first QC code (registry.qc.series_qc).
NOT_DICOM = "not_dicom"
UNREADABLE = "unreadable"
TRUNCATED = "truncated"
MISSING_SOP_UID = "missing_sop_instance_uid"
MISSING_SERIES_UID = "missing_series_instance_uid"
MISSING_STUDY_UID = "missing_study_instance_uid"
MISSING_PATIENT_ID = "missing_patient_id"
NOT_CT = "not_ct"
UNKNOWN_TRANSFER_SYNTAX = "unknown_transfer_syntax"
INVALID_VALUE = "invalid_value"
ZIP_ARCHIVE = "zip_archive"
COMPRESSED_FILE = "compressed_file"

# Per-instance defects: automatic QC reason codes (registry.qc.series_qc lists their wording).
INVALID_PIXEL_SPACING = "invalid_pixel_spacing"
INVALID_SLICE_THICKNESS = "invalid_slice_thickness"
INVALID_MATRIX = "invalid_matrix"
PIXEL_DATA_MISMATCH = "pixel_data_mismatch"
UNSUPPORTED_BITS_ALLOCATED = "unsupported_bits_allocated"
INVALID_ORIENTATION = "invalid_orientation"
INVALID_POSITION = "invalid_position"
IMPLAUSIBLE_DATE = "implausible_date"
BURNED_IN_ANNOTATION = "burned_in_annotation"

# Plausible ranges: a CT pixel is well under 5 mm, a slice under 20 mm, a patient within 10 m of the
# scanner's origin; DICOM dates of this study lie between 1900 and next year.
MAX_PIXEL_SPACING_MM = 5.0
MAX_SLICE_THICKNESS_MM = 20.0
MAX_POSITION_MM = 10_000.0
SUPPORTED_BITS_ALLOCATED = (8, 16, 32)
EARLIEST_YEAR = 1900

# Free-text tags scanned for names and dates (the tag name is reported, never the text).
FREE_TEXT_TAGS = ("SeriesDescription", "StudyDescription", "ImageComments", "PatientComments",
                  "AdditionalPatientHistory", "RequestedProcedureDescription", "PerformedProcedureStepDescription")

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
    transfer_syntax: str | None = None
    defects: tuple[str, ...] = ()  # automatic QC reason codes of this instance alone
    notes: tuple[str, ...] = ()  # values normalized to fit their VR ("<tag>: <what was done>")
    # The center code the file was read under is its PatientID or a part of its PatientName
    # (`registry.deid.center_names`): the name itself goes no further than the reader.
    center_names_patient: bool = False
    # The header marks it as a copy ctstudy de-identified (PatientIdentityRemoved YES, DeidentificationMethod
    # starting with ctstudy's first value): ingest checks whether its PatientID is one of this registry's pseudonyms.
    ctstudy_copy: bool = False


@dataclass(frozen=True, slots=True)
class ParsedInstance:
    """One file read once: its header facts, the dataset parsed up to Pixel Data, its bytes and where
    Pixel Data starts (what an archive copy is made from without reading or parsing the file again)."""

    header: InstanceHeader
    dataset: pydicom.Dataset
    data: bytes
    pixel_offset: int


@contextmanager
def values_unchecked_by_pydicom() -> Iterator[None]:
    """pydicom's checks of the values it converts while reading (`config.settings.reading_validation_mode`)
    off, and back as they were after: in pydicom's default mode they only warn, never change a value, and
    the registry checks the values it keeps itself (`registry.qc.header_validation`). Converting a file's UIDs,
    numbers and names with the checks (a regular expression each) costs about a tenth of ingest's reading."""
    settings = pydicom.config.settings
    mode = settings.reading_validation_mode
    if mode == pydicom.config.RAISE:  # checks that refuse a value decide what is read: they stay
        yield
        return
    settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode = mode


def read_instance_header(path: Path | str, *, with_hash: bool = True, center_code: str | None = None
                         ) -> InstanceHeader:
    """Parse one file's header (pixels skipped) and hash its bytes; raises `RejectedFile`.

    With `center_code` (the center the file is ingested under), `InstanceHeader.center_names_patient`
    says whether that code is the patient's ID or name."""
    return parse_instance(path, with_hash=with_hash, center_code=center_code).header


def parse_instance(path: Path | str, *, with_hash: bool = True, center_code: str | None = None) -> ParsedInstance:
    """`read_instance_header`'s one read and parse of `path`, with the dataset and bytes it was made from."""
    path = Path(path)
    # One read serves both the hash and the parse: the file is touched once.
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest() if with_hash else ""
    fp = io.BytesIO(data)
    ds = _parse(fp, data, path)
    pixel_offset = fp.tell()
    transfer_syntax = _transfer_syntax(ds, path)
    if pixel_offset >= len(data):
        # pydicom stops quietly at the end of the data: a file cut inside its header parses into a dataset
        # without pixels, often without UIDs or with a half value. Any verdict on it but "not CT" is
        # really "truncated".
        try:
            _header_from_dataset(ds, path, digest, len(data))
        except RejectedFile as exc:
            if exc.reason == NOT_CT:
                raise
        except Exception:  # noqa: BLE001, S110 - whatever the half header breaks, the verdict is below
            pass
        raise RejectedFile(path, TRUNCATED, f"file ends after {len(data)} bytes, before PixelData (7FE0,0010): "
                                            "truncated or no image")
    # The pixel data check first: a file cut inside its pixels is "truncated", whatever else it lacks.
    mismatch = _check_pixel_data_complete(ds, data, pixel_offset, path)
    try:
        header = _header_from_dataset(ds, path, digest, len(data), transfer_syntax, mismatch, center_code)
    except RejectedFile:
        raise
    except InvalidValue as exc:
        raise RejectedFile(path, INVALID_VALUE, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a malformed value (e.g. DS 'abc') of a tag outside the geometry checks
        raise RejectedFile(path, UNREADABLE, f"malformed header value: {type(exc).__name__}") from None
    return ParsedInstance(header, ds, data, pixel_offset)


def _parse(fp: io.BytesIO, data: bytes, path: Path) -> pydicom.Dataset:
    """The dataset up to the pixel data; files without the 128-byte preamble are read when they are DICOM."""
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError:
        _refuse_packed(data, path)
        if not starts_like_a_dataset(data):
            raise RejectedFile(path, NOT_DICOM, "not a DICOM file: no 'DICM' prefix at byte 128 and no DICOM "
                                                "data elements at the start") from None
        fp.seek(0)
        try:
            # The file starts with plausible data elements (a DICOM file written without its preamble and
            # file meta, as some old exporters do): read it as such.
            return pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        except Exception as exc:  # noqa: BLE001 - any parse failure of such a file is the same verdict
            raise RejectedFile(path, UNREADABLE, f"no preamble, and the data elements cannot be parsed "
                                                 f"({type(exc).__name__})") from None
    except (EOFError, struct.error) as exc:
        raise RejectedFile(path, TRUNCATED, f"file ends after {len(data)} bytes, inside a data element: "
                                            f"truncated ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of a corrupt header is the same verdict
        if len(data) < 2048 and "end of" in str(exc).lower():
            raise RejectedFile(path, TRUNCATED, f"file ends after {len(data)} bytes: truncated") from None
        raise RejectedFile(path, UNREADABLE, f"header cannot be parsed: {type(exc).__name__}") from None


# Leading bytes of packed files coordinators receive instead of a folder (tar: "ustar" at byte 257).
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_PACKED_MAGICS = ((b"\x1f\x8b", "gzip-compressed (.gz)"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
                  (b"Rar!\x1a\x07", "a RAR archive"), (b"BZh", "bzip2-compressed (.bz2)"),
                  (b"\xfd7zXZ\x00", "xz-compressed (.xz)"))


def _refuse_packed(data: bytes, path: Path) -> None:
    """Raise the rejection of a zip archive or another packed file, which is no DICOM file but holds some."""
    if data.startswith(_ZIP_MAGICS):
        raise RejectedFile(path, ZIP_ARCHIVE, "a zip archive, not a DICOM file: ingest reads the members of zip "
                                              "archives it finds, but not inside another archive or in place; "
                                              "unzip it and ingest the folder")
    what = next((name for magic, name in _PACKED_MAGICS if data.startswith(magic)), None)
    if what is None and data[257:262] == b"ustar":
        what = "a tar archive"
    if what is not None:
        raise RejectedFile(path, COMPRESSED_FILE, f"{what}, not a DICOM file: unpack it first (7-Zip, or tar / "
                                                  "gunzip) and ingest the unpacked folder")


_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
        b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
        b"UR", b"US", b"UT", b"UV"}


def starts_like_a_dataset(data: bytes) -> bool:
    """True when the first bytes are a little-endian data element of group 0002 or 0008 (explicit or implicit VR).

    Hand-written: pydicom's `force=True` parses anything (a text file included) into a dataset of garbage
    elements, so the decision to force must be taken on the bytes first.
    """
    if len(data) < 8:
        return False
    group, element = struct.unpack("<HH", data[:4])
    if group not in (0x0002, 0x0008) or element > 0x1FFF:
        return False
    if data[4:6] in _VRS:
        return True
    (length,) = struct.unpack("<I", data[4:8])
    return length < min(len(data), 1 << 16)


def _transfer_syntax(ds: pydicom.Dataset, path: Path) -> str | None:
    meta = getattr(ds, "file_meta", None)
    raw = meta.get("TransferSyntaxUID") if meta is not None else None
    if raw is None:
        return None
    try:
        uid = valid_uid("TransferSyntaxUID", str(raw))
    except InvalidValue as exc:
        raise RejectedFile(path, UNKNOWN_TRANSFER_SYNTAX, str(exc)) from None
    if uid is None:
        return None
    if not UID(uid).is_transfer_syntax:
        raise RejectedFile(path, UNKNOWN_TRANSFER_SYNTAX, f"{tag_label('TransferSyntaxUID')} {uid} is not a "
                                                          "transfer syntax of the DICOM standard: the file cannot "
                                                          "be decoded; ask the center to re-export it")
    return uid


def _header_from_dataset(ds: pydicom.Dataset, path: Path, digest: str, size: int, transfer_syntax: str | None = None,
                         pixel_defect: str | None = None, center_code: str | None = None) -> InstanceHeader:
    sop = valid_uid("SOPInstanceUID", _text(ds, "SOPInstanceUID"))
    if not sop:
        raise RejectedFile(path, MISSING_SOP_UID, "SOPInstanceUID (0008,0018) missing or empty")
    series = valid_uid("SeriesInstanceUID", _text(ds, "SeriesInstanceUID"))
    if not series:
        raise RejectedFile(path, MISSING_SERIES_UID, "SeriesInstanceUID (0020,000E) missing or empty")
    study = valid_uid("StudyInstanceUID", _text(ds, "StudyInstanceUID"))
    if not study:
        raise RejectedFile(path, MISSING_STUDY_UID, "StudyInstanceUID (0020,000D) missing or empty")
    modality = (_text(ds, "Modality") or "").strip(" \0")
    if modality.upper() != "CT":
        shown = modality if len(modality) <= 16 and modality.isalnum() else "not a modality code"
        raise RejectedFile(path, NOT_CT, f"Modality (0008,0060) is {shown or 'empty'!r}, not 'CT'")
    patient_id = valid_identifier("PatientID", _text(ds, "PatientID"))
    if not patient_id:
        raise RejectedFile(path, MISSING_PATIENT_ID, "PatientID (0010,0020) missing or empty")

    notes: list[str] = []
    defects: list[str] = [pixel_defect] if pixel_defect else []
    phi = list(phi_tags_found(ds))
    texts: dict[str, str | None] = {}
    for keyword in ("SeriesDescription", "StudyDescription"):
        cleaned, dropped = cleaned_text(normalized_text(keyword, _text(ds, keyword), "LO", notes))
        texts[keyword] = cleaned
        if dropped:
            phi.append(keyword)
    for keyword in FREE_TEXT_TAGS[2:]:
        if cleaned_text(_safe_text(ds, keyword))[1]:
            phi.append(keyword)

    spacing = _geometry(ds, "PixelSpacing", 2, defects, INVALID_PIXEL_SPACING, required=True,
                        low=0.0, high=MAX_PIXEL_SPACING_MM)
    thickness = _geometry(ds, "SliceThickness", 1, defects, INVALID_SLICE_THICKNESS, required=False,
                          low=0.0, high=MAX_SLICE_THICKNESS_MM)
    position = _geometry(ds, "ImagePositionPatient", 3, defects, INVALID_POSITION, required=False,
                         low=-MAX_POSITION_MM, high=MAX_POSITION_MM, inclusive_low=True)
    orientation = _geometry(ds, "ImageOrientationPatient", 6, defects, INVALID_ORIENTATION, required=False,
                            low=-1.001, high=1.001, inclusive_low=True)
    if orientation is not None and not _orthonormal(orientation):
        defects.append(INVALID_ORIENTATION)
        orientation = None
    rows, columns, bits = _int(ds, "Rows"), _int(ds, "Columns"), _int(ds, "BitsAllocated")
    if not rows or not columns:
        defects.append(INVALID_MATRIX)
    if bits is not None and bits not in SUPPORTED_BITS_ALLOCATED:
        defects.append(UNSUPPORTED_BITS_ALLOCATED)
    for date_kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "AcquisitionDateTime"):
        if not _plausible_date(_safe_text(ds, date_kw)):
            defects.append(IMPLAUSIBLE_DATE)
            break
    if has_burned_in_annotation(ds):
        defects.append(BURNED_IN_ANNOTATION)

    image_type = normalized_text("ImageType", _text(ds, "ImageType"), "CS", notes)
    tilt = _safe_float(ds, "GantryDetectorTilt")
    return InstanceHeader(
        path=str(path),
        sha256=digest,
        file_size=size,
        sop_instance_uid=sop,
        series_instance_uid=series,
        study_instance_uid=study,
        patient_id=patient_id,
        modality="CT",
        image_type=image_type,
        series_number=_safe_int(ds, "SeriesNumber"),
        series_description=texts["SeriesDescription"],
        study_description=texts["StudyDescription"],
        study_datetime=_datetime(_safe_text(ds, "StudyDate"), _safe_text(ds, "StudyTime")),
        acquisition_datetime=_acquisition_datetime(ds),
        manufacturer=normalized_text("Manufacturer", _text(ds, "Manufacturer"), "LO", notes),
        manufacturer_model=normalized_text("ManufacturerModelName", _text(ds, "ManufacturerModelName"), "LO", notes),
        institution=None,  # an identifier of the place of care (PS3.15 Annex E: remove); never kept
        convolution_kernel=normalized_text("ConvolutionKernel", _text(ds, "ConvolutionKernel"), "SH", notes),
        instance_number=_safe_int(ds, "InstanceNumber"),
        rows=rows,
        columns=columns,
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        slice_thickness=thickness[0] if thickness else None,
        image_position=position,
        image_orientation=orientation,
        gantry_detector_tilt=finite(tilt) if tilt is not None and abs(tilt) < 90 else None,
        phi_tags=tuple(dict.fromkeys(phi)),
        transfer_syntax=transfer_syntax,
        defects=tuple(dict.fromkeys(defects)),
        notes=tuple(notes),
        center_names_patient=center_code is not None and center_names_patient(
            center_code, patient_id, _safe_text(ds, "PatientName")),
        ctstudy_copy=is_ctstudy_copy(ds),
    )


def _geometry(ds: pydicom.Dataset, keyword: str, n: int, defects: list[str], code: str, *, required: bool,
              low: float, high: float, inclusive_low: bool = False) -> tuple[float, ...] | None:
    """`n` finite values within (low, high], or None with `code` added to `defects` (missing counts when required)."""
    try:
        values = _floats(ds, keyword, n)
    except (ValueError, TypeError):
        defects.append(code)
        return None
    if values is None:
        if required:
            defects.append(code)
        return None
    ok = all(math.isfinite(v) and (v >= low if inclusive_low else v > low) and v <= high for v in values)
    if not ok:
        defects.append(code)
        return None
    return values


def _orthonormal(cosines: tuple[float, ...]) -> bool:
    row, col = cosines[:3], cosines[3:]
    norm_r, norm_c = math.sqrt(sum(v * v for v in row)), math.sqrt(sum(v * v for v in col))
    dot = sum(a * b for a, b in zip(row, col, strict=True))
    return abs(norm_r - 1) < 0.01 and abs(norm_c - 1) < 0.01 and abs(dot) < 0.01


def _plausible_date(value: str | None) -> bool:
    """An absent date is fine; a present one must be a real calendar day between 1900 and next year."""
    if not value:
        return True
    digits = value.strip()[:8]
    if len(digits) < 8 or not digits.isdigit():
        return False
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    return EARLIEST_YEAR <= day.year <= dt.date.today().year + 1


def is_ctstudy_copy(ds: pydicom.Dataset) -> bool:
    """The header says it is a copy ctstudy de-identified (`registry.deid.profile`): PatientIdentityRemoved is YES
    and DeidentificationMethod's first value is ctstudy's. A claim only: anyone can write these values."""
    if (_safe_text(ds, "PatientIdentityRemoved") or "").upper() != "YES":
        return False
    method = _safe_text(ds, "DeidentificationMethod") or ""
    return method.split("\\")[0].strip().lower() == METHOD[0].lower()


def has_burned_in_annotation(ds: pydicom.Dataset) -> bool:
    """BurnedInAnnotation (0028,0301) is YES: text drawn into the pixels, possibly identifying, so the series
    waits for a coordinator's look. Absent or NO: nothing is known or claimed, as for any other image."""
    return (_safe_text(ds, "BurnedInAnnotation") or "").strip(" \0").upper() == "YES"


def _safe_text(ds: pydicom.Dataset, keyword: str) -> str | None:
    try:
        return _text(ds, keyword)
    except Exception:  # noqa: BLE001 - an undecodable optional value is treated as absent
        return None


def _safe_int(ds: pydicom.Dataset, keyword: str) -> int | None:
    try:
        value = _int(ds, keyword)
    except (ValueError, TypeError, OverflowError):
        return None
    return value if value is not None and abs(value) < 2**31 else None


def _safe_float(ds: pydicom.Dataset, keyword: str) -> float | None:
    try:
        return _float(ds, keyword)
    except (ValueError, TypeError):
        return None


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


def _check_pixel_data_complete(ds: pydicom.Dataset, data: bytes, offset: int, path: Path) -> str | None:
    """Raise TRUNCATED when the pixel data element is cut short; the defect code when its length is wrong.

    Hand-written because pydicom offers no length check short of decoding the pixels, which is what
    ingest avoids: we read only the 8- or 12-byte element header at the offset where parsing stopped.
    A file whose PixelData is complete but of another size than Rows x Columns x ... promises is not
    truncated: it is stored, and fails automatic QC (`pixel_data_mismatch`).
    """
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if offset >= len(data):
        # pydicom stops quietly at the end of the data: a file cut inside its header looks complete
        # but lacks the pixels every CT image carries.
        raise RejectedFile(path, TRUNCATED, "file ends before PixelData (7FE0,0010): truncated or no image")
    implicit, little = ds.original_encoding
    implicit = bool(implicit)
    little = True if little is None else little
    endian = "<" if little else ">"
    head = data[offset : offset + 12]
    if len(head) < 8:
        raise RejectedFile(path, TRUNCATED, f"file ends inside the PixelData element header at byte {offset}")
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | element) != PIXEL_DATA_TAG:
        return None  # float / double pixel data or trailing elements: not the case this check is for
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
        return None
    if available < length:
        raise RejectedFile(path, TRUNCATED,
                           f"PixelData (7FE0,0010) declares {length} bytes but only {available} are present")
    bits = _int(ds, "BitsAllocated") or 0
    samples = _int(ds, "SamplesPerPixel") or 1
    frames = _safe_int(ds, "NumberOfFrames") or 1
    if rows and columns and bits:
        expected = rows * columns * samples * frames * bits // 8
        # One padding byte keeps an element's length even.
        if length not in (expected, expected + 1):
            return PIXEL_DATA_MISMATCH
    return None


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
    # The element as stored, undecoded: what `Dataset.get_item` returns, without its key conversion
    # (a third of header reading time for ~45 look-ups a file, most of them of absent tags).
    elements = getattr(ds, "_dict", None)
    elem = elements.get(_tag(keyword)) if elements is not None else ds.get_item(_tag(keyword))
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
    if not EARLIEST_YEAR <= day.year <= dt.date.today().year + 1:
        return None  # an impossible date is no acquisition time (and fails automatic QC)
    if time:
        digits = time.split(".")[0].replace(":", "")
        if digits.isdigit() and len(digits) >= 2:
            hh, mm, ss = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
            if hh < 24 and mm < 60 and ss < 60:
                day = day.replace(hour=hh, minute=mm, second=ss)
    return day


def _acquisition_datetime(ds: pydicom.Dataset) -> dt.datetime | None:
    """AcquisitionDateTime, else AcquisitionDate+Time, else SeriesDate+Time, else StudyDate+Time."""
    adt = _safe_text(ds, "AcquisitionDateTime")
    if adt:
        digits = adt.split("+")[0].split("-")[0]
        found = _datetime(digits[:8], digits[8:] or None)
        if found:
            return found
    for date_kw, time_kw in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                             ("StudyDate", "StudyTime")):
        found = _datetime(_safe_text(ds, date_kw), _safe_text(ds, time_kw))
        if found:
            return found
    return None
