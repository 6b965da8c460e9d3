"""De-identification of archived copies: DICOM PS3.15 Annex E, Basic Application Level Confidentiality
Profile with the Retain Longitudinal Temporal Information with Full Dates Option and the Clean
Descriptors Option. Pure: a dataset, the home key and the pseudonym in, the de-identified dataset out.

Implemented here as an allow-list of the profile's table for CT images rather than with a library:
`dicognito` (checked, 0.19) shifts every date by a random offset and replaces names with invented
ones, which breaks days from injury (computed against the clinical injury date, which is not
shifted) and is not the profile's option this study needs; `deid` applies recipe files whose default
recipe must itself be reviewed against the table, and pulls in many dependencies. An allow-list is the
conservative reading of Table E.1-1: every attribute not listed below is removed (action X), which
covers the whole table, private attributes and overlays included, and keeps what head-CT analysis
needs. Actions of the attributes kept:

- U (UIDs): replaced by `2.25.<128-bit number>` made under the home key (`mapped_uid`): the same UID
  always maps to the same replacement (a resent file lands in the same series), and without the key
  nobody can map back or recompute it from a guessed UID. The number carries its own keyed check
  (`is_mapped_uid`), so a UID this mapping already produced is recognised and kept as it is.
- D/Z (patient identity): PatientID and PatientName become the registry pseudonym; birth date, sex,
  accession number, study ID and referring physician are emptied (type 2: kept, zero length).
- dates and times: kept unchanged (the Full Dates option), so days from injury stay right.
- C (descriptions): cleaned to the technical vocabulary (`registry.deid.phi_text`).

The de-identified copy records what was done: PatientIdentityRemoved YES, DeidentificationMethod and
its code sequence (DCM 113100, 113106, 113105), LongitudinalTemporalInformationModified UNMODIFIED.

Those header values are never trusted: any file may carry them (a PACS that re-imported an archive copy
and wrote the name back does). The profile is applied to every file instead, and is idempotent: a copy
it produced comes out unchanged (its UIDs pass the keyed check, everything else is already reduced to
what the profile keeps), while a file that only claims to be de-identified loses its identifiers.
"""

from __future__ import annotations

import hashlib
import hmac
import io

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from registry.deid.dicom_encoding import dcmwrite_bytes, encoded_file
from registry.deid.phi_text import cleaned_text

# DeidentificationMethod is LO (64 characters a value), multi-valued: the first value marks our copies.
METHOD = ["ctstudy", "DICOM PS3.15 E.1.1 Basic Profile", "Retain Longitudinal Full Dates", "Clean Descriptors"]
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    ("113105", "Clean Descriptors Option"),
)

# Attributes replaced by their keyed mapping (action U).
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
                "IrradiationEventUID")
# Patient and study identity, emptied (action Z) unless set to the pseudonym.
EMPTIED_KEYWORDS = ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "ReferringPhysicianName")
# Kept as they are: technical attributes of the CT image that Table E.1-1 does not list, and dates and
# times (Retain Longitudinal Temporal Information with Full Dates).
_KEPT_KEYWORDS_TEXT = """
SpecificCharacterSet ImageType SOPClassUID Modality Manufacturer ManufacturerModelName
StudyDate SeriesDate AcquisitionDate ContentDate StudyTime SeriesTime AcquisitionTime ContentTime AcquisitionDateTime
SeriesNumber InstanceNumber AcquisitionNumber PatientPosition BodyPartExamined ScanOptions
SliceThickness KVP DataCollectionDiameter ReconstructionDiameter DistanceSourceToDetector DistanceSourceToPatient
GantryDetectorTilt TableHeight RotationDirection ExposureTime XRayTubeCurrent Exposure FilterType GeneratorPower
FocalSpots ConvolutionKernel SpiralPitchFactor RevolutionTime SingleCollimationWidth TotalCollimationWidth CTDIvol
ImagePositionPatient ImageOrientationPatient PositionReferenceIndicator SliceLocation ImagesInAcquisition
SamplesPerPixel PhotometricInterpretation PlanarConfiguration NumberOfFrames Rows Columns PixelSpacing
BitsAllocated BitsStored HighBit PixelRepresentation SmallestImagePixelValue LargestImagePixelValue
PixelPaddingValue PixelPaddingRangeLimit WindowCenter WindowWidth RescaleIntercept RescaleSlope RescaleType
LossyImageCompression LossyImageCompressionRatio LossyImageCompressionMethod BurnedInAnnotation PixelData
"""
KEPT_KEYWORDS = frozenset(_KEPT_KEYWORDS_TEXT.split())
KEPT_TAGS = frozenset(pydicom.datadict.tag_for_keyword(k) for k in KEPT_KEYWORDS)
DESCRIPTION_KEYWORDS = ("SeriesDescription", "StudyDescription")


UID_ROOT = "2.25."
_UID_BODY_BYTES, _UID_CHECK_BYTES = 12, 4  # 96 bits from the UID, 32 bits of keyed check: 128 bits in all


def _uid_check(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"uid-check|" + body, hashlib.sha256).digest()[:_UID_CHECK_BYTES]


def mapped_uid(key: bytes, uid: str) -> str:
    """The keyed replacement of a UID: `2.25.` + a 128-bit decimal; a UID it produced maps to itself.

    The number is 96 bits of HMAC-SHA256(key, uid) followed by a 32-bit HMAC of those 96 bits (the
    check `is_mapped_uid` verifies). A foreign UID passes the check by chance once in 2^32; two UIDs
    share a replacement with probability about n^2 / 2^97 (1e-13 for 10^8 instances). PS3.5 B.2
    allows UIDs under 2.25 from a 128-bit number; at most 44 characters, within UI's 64.
    """
    uid = uid.strip(" \0")
    if is_mapped_uid(key, uid):
        return uid
    body = hmac.new(key, b"uid|" + uid.encode(), hashlib.sha256).digest()[:_UID_BODY_BYTES]
    return f"{UID_ROOT}{int.from_bytes(body + _uid_check(key, body), 'big')}"


def is_mapped_uid(key: bytes, uid: str) -> bool:
    """True when `uid` is a replacement `mapped_uid` made under `key` (its keyed check holds)."""
    digits = uid.strip(" \0")[len(UID_ROOT):]
    if not uid.strip(" \0").startswith(UID_ROOT) or not digits.isdigit() or len(digits) > 39:
        return False
    number = int(digits)
    if number >= 1 << 128:
        return False
    raw = number.to_bytes(16, "big")
    return hmac.compare_digest(raw[_UID_BODY_BYTES:], _uid_check(key, raw[:_UID_BODY_BYTES]))


def deidentified(ds: Dataset, key: bytes, pseudonym: str) -> Dataset:
    """A new dataset holding only what the profile keeps of `ds`, whatever `ds` says of itself.

    Idempotent: `deidentified(deidentified(ds, k, p), k, p)` equals `deidentified(ds, k, p)`.
    """
    out = Dataset()
    for tag in list(ds._dict) if hasattr(ds, "_dict") else ds:
        if tag in KEPT_TAGS:
            # The element as read (undecoded when still raw): no value is converted here; the writer
            # encodes the header again (registry.deid.dicom_encoding reuses the encodings it has already made).
            out[tag] = ds.get_item(tag)
    for keyword in UID_KEYWORDS:
        value = ds.get(keyword)
        if value:
            setattr(out, keyword, mapped_uid(key, str(value)))
    for keyword in DESCRIPTION_KEYWORDS:
        value = ds.get(keyword)
        cleaned = cleaned_text(str(value))[0] if value else None
        if cleaned:
            setattr(out, keyword, cleaned)
    out.PatientID = pseudonym
    out.PatientName = pseudonym
    for keyword in EMPTIED_KEYWORDS:
        setattr(out, keyword, "")
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in METHOD_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    out.DeidentificationMethodCodeSequence = codes
    out.LongitudinalTemporalInformationModified = "UNMODIFIED"

    meta = FileMetaDataset()
    old = getattr(ds, "file_meta", None)
    implicit, little = ds.original_encoding if ds.original_encoding != (None, None) else (False, True)
    syntax = old.get("TransferSyntaxUID") if old is not None else None
    meta.TransferSyntaxUID = syntax or (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID") or (old.get("MediaStorageSOPClassUID") if old else None)
    if out.get("SOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.file_meta = meta
    out.preamble = b"\0" * 128
    return out


def deidentified_bytes(data: bytes, key: bytes, pseudonym: str) -> bytes:
    """The de-identified copy of one DICOM file's bytes (pixel data copied as stored, never decoded).

    The bytes of `deidentified_bytes_reencoded`, written through `registry.deid.dicom_encoding.encoded_file`,
    which reuses the encodings of header elements repeated from file to file.
    """
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    return encoded_file(deidentified(ds, key, pseudonym))


def deidentified_bytes_reencoded(data: bytes, key: bytes, pseudonym: str) -> bytes:
    """The de-identified copy written by pydicom's `dcmwrite` alone: the reference `deidentified_bytes` equals."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    return dcmwrite_bytes(deidentified(ds, key, pseudonym))
