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

- U (UIDs): replaced by `2.25.<128-bit HMAC-SHA256 of the UID under the home key>`: the same UID always
  maps to the same replacement (a resent file lands in the same series), and without the key nobody
  can map back or recompute it from a guessed UID. The mapping is kept by being keyed: `mapped_uid`.
- D/Z (patient identity): PatientID and PatientName become the registry pseudonym; birth date, sex,
  accession number, study ID and referring physician are emptied (type 2: kept, zero length).
- dates and times: kept unchanged (the Full Dates option), so days from injury stay right.
- C (descriptions): cleaned to the technical vocabulary (`registry.phi_text`).

The de-identified copy records what was done: PatientIdentityRemoved YES, DeidentificationMethod and
its code sequence (DCM 113100, 113106, 113105), LongitudinalTemporalInformationModified UNMODIFIED.
"""

from __future__ import annotations

import hashlib
import hmac
import io

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from registry.phi_text import cleaned_text

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


def mapped_uid(key: bytes, uid: str) -> str:
    """The keyed replacement of a UID: `2.25.` + the first 128 bits of HMAC-SHA256(key, uid) as a decimal.

    PS3.5 B.2 allows UIDs under 2.25 from a 128-bit number; at most 44 characters, within UI's 64.
    """
    digest = hmac.new(key, b"uid|" + uid.strip(" \0").encode(), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def is_deidentified(ds: Dataset) -> bool:
    """True for a dataset this module already de-identified (applying it twice would map UIDs twice)."""
    method = ds.get("DeidentificationMethod")
    first = method[0] if isinstance(method, list | tuple) or type(method).__name__ == "MultiValue" else method
    return str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" and str(first or "") == METHOD[0]


def deidentified(ds: Dataset, key: bytes, pseudonym: str) -> Dataset:
    """A new dataset holding only what the profile keeps of `ds` (unchanged when already de-identified)."""
    if is_deidentified(ds):
        return ds
    out = Dataset()
    for tag in list(ds._dict) if hasattr(ds, "_dict") else ds:
        if tag in KEPT_TAGS:
            # The element as read (undecoded when still raw): copying it unconverted is what keeps
            # de-identification at the speed of a file copy rather than of a full decode and re-encode.
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
    """The de-identified copy of one DICOM file's bytes (pixel data copied as stored, never decoded)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    out = deidentified(ds, key, pseudonym)
    buffer = io.BytesIO()
    out.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
