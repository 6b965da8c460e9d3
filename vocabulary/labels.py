"""The lesion label map of the whole project, defined once.

Masks (NIfTI, uint8), DICOM SEG segments, biomarkers, evaluation, training and the dashboard's
overlays all read the classes from here. The classes are BLAST-CT's (Monteiro et al., Lancet Digit
Health 2020), which CREACTIVE used for its CT features (Rosnati et al. 2022):

    0 background
    1 IPH    intraparenchymal hematoma / hemorrhagic contusion
    2 EAH    extra-axial hemorrhage (subdural or epidural)
    3 edema  perilesional edema (hypodense rim around a hemorrhagic lesion)
    4 IVH    intraventricular hemorrhage

"Hematoma" in CREACTIVE's sense: the CREACTIVE imaging substudy segmented *intraparenchymal
hemorrhagic lesions* (hematomas and hemorrhagic contusions) and their edema; extra-axial and
intraventricular blood were not part of its "hematoma". So the `hematoma` biomarkers keep that
meaning and are computed from label 1 (IPH) alone; extra-axial and intraventricular blood have
biomarkers of their own, and "hemorrhage" means any of labels 1, 2 and 4.

Legacy two-class masks (0 background, 1 hematoma, 2 edema; ctstudy before the four-class map)
stay importable: `from_legacy_two_class` maps 1 -> IPH and 2 -> edema, which is what those masks
meant (the phantom's subdural-like collection was left unlabelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only where masks are converted: the dictionary, and with it every command, reads this
    import numpy as np

BACKGROUND = 0
IPH = 1
EAH = 2
EDEMA = 3
IVH = 4


@dataclass(frozen=True)
class LesionClass:
    value: int  # the voxel value in a label mask
    key: str  # short machine name, used in column names (e.g. `iph_ml`)
    name: str  # what people read
    description: str
    colour: str  # overlay colour, hex (one per class, distinguishable for common colour blindness)
    snomed_code: str  # SNOMED CT code of the segmented property type, for DICOM SEG
    snomed_meaning: str


LESION_CLASSES: tuple[LesionClass, ...] = (
    LesionClass(IPH, "iph", "Intraparenchymal hematoma / contusion",
                "Hyperdense blood within the brain parenchyma: hematoma or hemorrhagic contusion.",
                "#d62728", "274100004", "Cerebral hemorrhage"),
    LesionClass(EAH, "eah", "Extra-axial hemorrhage",
                "Blood outside the brain, under the dura (subdural) or between dura and skull (epidural).",
                "#ff7f0e", "35566002", "Hematoma"),
    LesionClass(EDEMA, "edema", "Perilesional edema",
                "Hypodense swelling of the parenchyma around a hemorrhagic lesion.",
                "#1f77b4", "79654002", "Edema"),
    LesionClass(IVH, "ivh", "Intraventricular hemorrhage",
                "Blood within the cerebral ventricles.",
                "#9467bd", "230706003", "Intraventricular hemorrhage"),
)

BY_VALUE: dict[int, LesionClass] = {c.value: c for c in LESION_CLASSES}
BY_KEY: dict[str, LesionClass] = {c.key: c for c in LESION_CLASSES}
LABEL_MAP: dict[int, str] = {BACKGROUND: "background", **{c.value: c.key for c in LESION_CLASSES}}
N_CLASSES = len(LABEL_MAP)  # including background
ALLOWED_LABELS = frozenset(LABEL_MAP)
HEMORRHAGE_LABELS = (IPH, EAH, IVH)
# A voxel nobody annotated (a slice or class the annotator left out). A manual annotation holding any such
# voxel is a partial annotation: it is stored as drawn, the training loss skips these voxels, every Dice
# against it counts only the annotated voxels, and its volumes are not the scan's (biomarkers refuse it).
# It is never a class: no model writes it, and no segment, overlay or volume counts it.
UNANNOTATED = 255
# What a manual annotation may hold: the label map, and UNANNOTATED where it is partial.
ANNOTATION_LABELS = ALLOWED_LABELS | {UNANNOTATED}

# Masks written before the four-class map: 0 background, 1 hematoma, 2 edema.
LEGACY_TWO_CLASS = {BACKGROUND: BACKGROUND, 1: IPH, 2: EDEMA}


# How a NIfTI mask says which label map it is in. ctstudy writes both markers on every mask (the
# description field and the intent, label with this name); a mask without them is in whatever scheme
# its importer is told (`--label-scheme`, four-class by default).
FOUR_CLASS = "four-class"
TWO_CLASS = "two-class"
LABEL_SCHEMES = (FOUR_CLASS, TWO_CLASS)
NIFTI_DESCRIPTION = "ctstudy label map four-class: 0 bg, 1 IPH, 2 EAH, 3 edema, 4 IVH"  # <= 80 bytes
NIFTI_INTENT_NAME = "ctstudy-4class"  # <= 16 bytes


def nifti_scheme(description: str | bytes, intent_name: str | bytes) -> str | None:
    """The label scheme a NIfTI header declares (its `descrip` and `intent_name`), or None if it says nothing."""
    def text(v: str | bytes) -> str:
        return (v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip("\x00 ")
    if text(description).startswith("ctstudy label map four-class") or text(intent_name) == NIFTI_INTENT_NAME:
        return FOUR_CLASS
    return None


def from_legacy_two_class(mask: np.ndarray) -> np.ndarray:
    """A legacy two-class mask (1 hematoma, 2 edema) in the four-class map (1 IPH, 3 edema); UNANNOTATED stays."""
    import numpy as np

    values = set(np.unique(mask).tolist())
    allowed = set(LEGACY_TWO_CLASS) | {UNANNOTATED}
    if not values <= allowed:
        raise ValueError(f"legacy two-class mask has values {sorted(values - allowed)}; "
                         f"expected only 0 background, 1 hematoma, 2 edema ({UNANNOTATED} unannotated)")
    lut = np.zeros(UNANNOTATED + 1, dtype=np.uint8)
    for old, new in LEGACY_TWO_CLASS.items():
        lut[old] = new
    lut[UNANNOTATED] = UNANNOTATED
    return lut[mask.astype(np.intp)]


def is_partial(labels: np.ndarray) -> bool:
    """Whether an annotation leaves some voxels unannotated (holds UNANNOTATED)."""
    import numpy as np

    return bool(np.any(np.asarray(labels) == UNANNOTATED))


def annotated_fraction(labels: np.ndarray) -> float:
    """Share of a mask's voxels that were annotated (not UNANNOTATED): 1.0 for a whole annotation."""
    import numpy as np

    labels = np.asarray(labels)
    return float(np.count_nonzero(labels != UNANNOTATED)) / labels.size if labels.size else 0.0


def unannotated_refusal(what: str) -> str:
    """Why a partial annotation gives no whole-scan measurement, for messages naming `what` (a file or series)."""
    return (f"{what} is a partial annotation (voxels {UNANNOTATED} = not annotated): its volumes are not the "
            "scan's; measure the series from a whole mask (the model's segmentation, or a full annotation)")


def describe() -> str:
    """One line per label, for messages: '0 background, 1 iph, 2 eah, 3 edema, 4 ivh'."""
    return ", ".join(f"{v} {k}" for v, k in LABEL_MAP.items())
