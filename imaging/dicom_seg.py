"""A label mask as a DICOM Segmentation (highdicom) referencing the CT instances it was drawn on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from imaging.volume import read_dicom
from registry.deid.profile import deidentified
from vocabulary.labels import LESION_CLASSES, LesionClass

# Every segment: property category "Morphologically abnormal structure" (SNOMED CT 49755003, CID 7150),
# property type the class's SNOMED CT code from vocabulary.labels, display colour its overlay colour.
_ABNORMAL_STRUCTURE = codes.SCT.MorphologicallyAbnormalStructure


def segment_description(c: LesionClass, number: int,
                        algorithm: hd.AlgorithmIdentificationSequence) -> hd.seg.SegmentDescription:
    """The DICOM SEG segment of one lesion class, coded from the label map."""
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=c.name,
        segmented_property_category=_ABNORMAL_STRUCTURE,
        segmented_property_type=hd.sr.CodedConcept(c.snomed_code, "SCT", c.snomed_meaning),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_id=c.key,
        tracking_uid=hd.UID(),
        display_color=hd.color.CIELabColor.from_string(c.colour),
    )


def segmentation_dataset(source_paths: Sequence[Path | str], labels: np.ndarray, sop_instance_uids: Sequence[str],
                         model_name: str, model_version: str,
                         identity: tuple[bytes, str] | None = None) -> hd.seg.Segmentation:
    """A binary DICOM SEG of `labels` (z, y, x), frame k on the source instance `sop_instance_uids[k]`.

    One segment per lesion class present, in label order, labelled, coded and coloured from
    `vocabulary.labels`; each segment's TrackingID is the class key (`iph`, `eah`, `edema`, `ivh`).
    `identity` (the home key, the patient's pseudonym): the SEG's patient and study modules, copied from
    the sources, then carry only the pseudonym and keyed UIDs, also for originals indexed in place
    (the profile is idempotent: the archive's copies pass unchanged, whatever their headers claim).
    """
    by_uid = {}
    for p in source_paths:
        ds = read_dicom(p)  # also files without preamble or file meta, as ingest accepts them
        # Keyed by the file's own UID (what `sop_instance_uids` holds), de-identified when asked.
        by_uid[str(ds.SOPInstanceUID)] = deidentified(ds, *identity) if identity else ds
    missing = [u for u in sop_instance_uids if u not in by_uid]
    if missing:
        raise ValueError(f"source instances missing for {len(missing)} slice(s) of the mask, e.g. {missing[0]}")
    sources = [by_uid[u] for u in sop_instance_uids]
    if labels.shape != (len(sources), int(sources[0].Rows), int(sources[0].Columns)):
        raise ValueError(f"mask {labels.shape} does not match the series ({len(sources)}, "
                         f"{sources[0].Rows}, {sources[0].Columns})")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"ctstudy {model_name}", version=model_version[:16],
        family=codes.cid7162.ArtificialIntelligence)
    # One segment per class present in the mask (a SEG segment must not be empty), numbered 1..n in
    # label order; the segment's pixel value is its number, so the labels are renumbered to match.
    present = [c for c in LESION_CLASSES if (labels == c.value).any()]
    if not present:
        raise ValueError("the mask has no lesion voxel: nothing to export (a DICOM SEG needs at least one segment)")
    descriptions = [segment_description(c, n, algorithm) for n, c in enumerate(present, start=1)]
    lut = np.zeros(256, dtype=np.uint8)
    for n, c in enumerate(present, start=1):
        lut[c.value] = n
    pixels = lut[labels.astype(np.uint8)]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(pixels),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="ctstudy",
        manufacturer_model_name=model_name,
        software_versions=model_version[:16],
        device_serial_number="0",
        omit_empty_frames=False,
    )
