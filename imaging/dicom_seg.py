"""A label mask as a DICOM Segmentation (highdicom) referencing the CT instances it was drawn on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from imaging.model import LABEL_MAP
from registry.deidentify import deidentified

# SNOMED CT: "Hematoma" (385494008) and "Edema" (79654002), property category "Morphologically abnormal structure".
_SEGMENT_CODES = {
    "hematoma": hd.sr.CodedConcept("385494008", "SCT", "Hematoma"),
    "edema": hd.sr.CodedConcept("79654002", "SCT", "Edema"),
}
_ABNORMAL_STRUCTURE = hd.sr.CodedConcept("49755003", "SCT", "Morphologically abnormal structure")
_COLORS_LAB = {  # CREACTIVE display colours: hematoma red, edema blue (CIELab, DICOM scaled)
    "hematoma": hd.color.CIELabColor(53.2, 80.1, 67.2),
    "edema": hd.color.CIELabColor(32.3, 79.2, -107.9),
}


def segmentation_dataset(source_paths: Sequence[Path | str], labels: np.ndarray, sop_instance_uids: Sequence[str],
                         model_name: str, model_version: str,
                         identity: tuple[bytes, str] | None = None) -> hd.seg.Segmentation:
    """A binary DICOM SEG of `labels` (z, y, x), frame k on the source instance `sop_instance_uids[k]`.

    `identity` (the home key, the patient's pseudonym): the SEG's patient and study modules, copied from
    the sources, then carry only the pseudonym and keyed UIDs, also for originals indexed in place
    (the archive's copies are already de-identified and pass unchanged).
    """
    by_uid = {}
    for p in source_paths:
        ds = pydicom.dcmread(p)
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
    descriptions = []
    for number, (k, name) in enumerate(((k, n) for k, n in LABEL_MAP.items() if k), start=1):
        if k != number:
            raise ValueError("segment numbers must follow the label values 1..N")
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=_ABNORMAL_STRUCTURE,
            segmented_property_type=_SEGMENT_CODES[name],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=_COLORS_LAB[name],
        ))
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(labels.astype(np.uint8)),
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
