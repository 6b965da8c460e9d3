"""DICOM header values checked against their VR limits before anything is stored. Pure.

The registry's columns are sized to the DICOM value representations (PS3.5 Table 6.2-1), so a value
that breaks its VR would otherwise reach the database and fail there, differently on SQLite (which
stores anything) and PostgreSQL (which refuses an over-long value, a NUL byte, ...). Validating here,
once, makes both databases see the same normalized values:

- identifiers the registry keys on (UIDs, PatientID) are *rejected* when invalid: cutting or repairing
  them could merge two patients or two series;
- descriptive text is *normalized*: control characters and NUL bytes removed, cut to the VR's maximum,
  and the normalization reported (tag name and rule, never the value);
- numbers must be finite; geometry that is not becomes an automatic QC failure (`registry.qc.series_qc`).

Hand-written because pydicom validates only when writing (`config.settings.writing_validation_mode`)
and raises on the first problem; we need every problem of a file as a reason, and values mapped to
what our columns hold.
"""

from __future__ import annotations

import math
import re

# Maximum length in characters of one value of each VR (PS3.5 Table 6.2-1).
VR_MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "IS": 12, "LO": 64, "SH": 16, "TM": 16,
                 "UI": 64, "PN": 64, "ST": 1024, "LT": 10240}

# PS3.5 9.1: UID components are digits separated by periods, at most 64 characters in all. Leading
# zeros inside a component are invalid in the standard but common in real archives and harmless to
# us, so they are accepted.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# C0 controls except TAB/LF/CR/ESC (ESC introduces ISO 2022 character-set switches), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
# Center codes are folder names and a 32-character column: CREACTIVE-style codes (IT064, NL-012_b).
CENTER_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")

TAG_NUMBERS = {
    "SOPInstanceUID": "(0008,0018)", "SeriesInstanceUID": "(0020,000E)", "StudyInstanceUID": "(0020,000D)",
    "PatientID": "(0010,0020)", "TransferSyntaxUID": "(0002,0010)", "SeriesDescription": "(0008,103E)",
    "StudyDescription": "(0008,1030)", "Manufacturer": "(0008,0070)", "ManufacturerModelName": "(0008,1090)",
    "ConvolutionKernel": "(0018,1210)", "ImageType": "(0008,0008)", "PixelSpacing": "(0028,0030)",
    "SliceThickness": "(0018,0050)", "ImagePositionPatient": "(0020,0032)",
    "ImageOrientationPatient": "(0020,0037)", "Rows": "(0028,0010)", "Columns": "(0028,0011)",
    "BitsAllocated": "(0028,0100)", "PixelData": "(7FE0,0010)", "StudyDate": "(0008,0020)",
    "AcquisitionDateTime": "(0008,002A)", "SeriesNumber": "(0020,0011)", "InstanceNumber": "(0020,0013)",
    "GantryDetectorTilt": "(0018,1120)",
}


def tag_label(keyword: str) -> str:
    """`Keyword (gggg,eeee)`, the way messages name a tag."""
    number = TAG_NUMBERS.get(keyword)
    return f"{keyword} {number}" if number else keyword


class InvalidValue(Exception):
    """A value that cannot be stored: `keyword` names the tag, `rule` says what is wrong (never the value).

    A plain exception with its own `__reduce__`, not a frozen dataclass: it travels back from reader
    processes as the cause of a rejection, and exception picklers that set attributes after
    construction (tblib's, which Dask installs in the process) cannot rebuild a frozen instance.
    """

    def __init__(self, keyword: str, rule: str) -> None:
        super().__init__(keyword, rule)
        self.keyword = keyword
        self.rule = rule

    def __reduce__(self) -> tuple[type[InvalidValue], tuple[str, str]]:
        return (InvalidValue, (self.keyword, self.rule))

    def __str__(self) -> str:
        return f"{tag_label(self.keyword)} {self.rule}"


def valid_uid(keyword: str, value: str | None) -> str | None:
    """The UID without padding, or None when absent; raises InvalidValue when it breaks PS3.5 9.1."""
    if value is None:
        return None
    uid = value.strip(" \0")
    if not uid:
        return None
    if len(uid) > VR_MAX_LENGTH["UI"]:
        raise InvalidValue(keyword, f"is {len(uid)} characters long; a UID has at most 64")
    if not _UID.match(uid):
        raise InvalidValue(keyword, "is not a UID (digits and periods only)")
    return uid


def valid_identifier(keyword: str, value: str | None, vr: str = "LO") -> str | None:
    """An identifier the registry keys on (PatientID): stripped; raises InvalidValue rather than cut it."""
    if value is None:
        return None
    text = value.strip(" \0\t\r\n")
    if not text:
        return None
    if _CONTROL.search(text):
        raise InvalidValue(keyword, "contains control characters or NUL bytes")
    if len(text) > VR_MAX_LENGTH[vr]:
        raise InvalidValue(keyword, f"is {len(text)} characters long; {vr} allows {VR_MAX_LENGTH[vr]}")
    return text


def normalized_text(keyword: str, value: str | None, vr: str, notes: list[str]) -> str | None:
    """Descriptive text fit for its VR: control characters removed, cut to the VR's maximum length.

    Each change is appended to `notes` as "<tag>: <what was done>" (no value: it may carry identifiers).
    """
    if value is None:
        return None
    text = value
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        notes.append(f"{tag_label(keyword)}: control characters or NUL bytes removed")
    text = text.strip()
    # Multi-valued strings (ImageType) are limited per value; the whole may be longer.
    limit = VR_MAX_LENGTH[vr] * (text.count("\\") + 1)
    if len(text) > limit:
        notes.append(f"{tag_label(keyword)}: {len(text)} characters cut to {vr}'s {VR_MAX_LENGTH[vr]}")
        text = text[:limit].rstrip()
    return text or None


def finite(value: float | None) -> float | None:
    """The value if it is a finite number, else None (NaN and infinities are no measurement)."""
    return value if value is not None and math.isfinite(value) else None


def valid_center_code(code: str) -> str | None:
    """Why `code` cannot be a center code (None when it can): 1-32 letters, digits, '-' or '_'."""
    if CENTER_CODE.match(code):
        return None
    if len(code) > 32:
        return f"is {len(code)} characters long; a center code has at most 32"
    return "has characters other than letters, digits, '-' and '_'"
