"""Lesion volumes from a label mask: voxel count x voxel volume, per class of `vocabulary.labels`.

"Hematoma" keeps CREACTIVE's meaning (label 1, IPH; see vocabulary.labels); "hemorrhage" is any
blood (labels 1 IPH, 2 EAH, 4 IVH); "total lesion" is hematoma + edema, CREACTIVE's lesion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biomarkers.geometry import voxel_volume_ml
from vocabulary import labels as L

HEMATOMA = L.IPH  # CREACTIVE's "hematoma": intraparenchymal hematoma / contusion
EAH = L.EAH
EDEMA = L.EDEMA
IVH = L.IVH
MAX_LABEL = max(L.LABEL_MAP)


def checked_labels(labels: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The label mask as uint8 (z, y, x); a clear error for a wrong shape or labels outside the label map.

    A partial annotation (voxels `UNANNOTATED`) is refused: its volumes, counts and positions would be those of
    the annotated part, not of the scan, and no feature says so. A series annotated only in part gets its
    features from the model's segmentation (`--source auto` prefers it) or none, with this reason."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"label mask must be 3-D (z, y, x), got shape {labels.shape}")
    if shape is not None and labels.shape != tuple(shape):
        raise ValueError(f"label mask shape {labels.shape} differs from the CT volume's {tuple(shape)}")
    if labels.size == 0:
        raise ValueError("label mask is empty (a zero-length axis)")
    # One max() pass for the usual uint8 mask; np.unique (a sort of 10^7 voxels) only to name bad values.
    ok = labels.max() <= MAX_LABEL and (labels.dtype == np.uint8 or labels.min() >= 0)
    if ok and not np.issubdtype(labels.dtype, np.integer):
        ok = bool(np.all(np.mod(labels, 1) == 0))
    if not ok:
        found = sorted(set(np.unique(labels).tolist()) - set(L.LABEL_MAP))
        if L.UNANNOTATED in found:  # a partial annotation: whole-scan features cannot come from it
            raise ValueError(L.unannotated_refusal("the label mask"))
        raise ValueError(f"label mask has values {found[:5]}; expected only {L.describe()} "
                         "(an older two-class mask? import it with --label-scheme two-class)")
    return labels if labels.dtype == np.uint8 else labels.astype(np.uint8)


def class_volumes_ml(counts: np.ndarray, vml: float) -> dict[str, float]:
    """From per-label voxel counts: `<key>_ml` per class, hematoma_ml (= iph_ml), hemorrhage_ml,
    total_lesion_ml (hematoma + edema) and relative_edema (edema / hematoma; NaN without hematoma)."""
    counts = np.pad(np.asarray(counts), (0, max(0, MAX_LABEL + 1 - len(counts))))
    out = {f"{c.key}_ml": float(counts[c.value]) * vml for c in L.LESION_CLASSES}
    hematoma, edema = out[f"{L.BY_VALUE[HEMATOMA].key}_ml"], out[f"{L.BY_VALUE[EDEMA].key}_ml"]
    out.update(hematoma_ml=hematoma, hemorrhage_ml=float(sum(counts[v] for v in L.HEMORRHAGE_LABELS)) * vml,
               total_lesion_ml=hematoma + edema,
               relative_edema=edema / hematoma if hematoma > 0 else float("nan"))
    return out


def label_volumes_ml(labels: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """The volumes of `class_volumes_ml` for a label mask with voxel spacing (dz, dy, dx) mm."""
    labels = checked_labels(labels)
    return class_volumes_ml(np.bincount(labels.ravel(), minlength=MAX_LABEL + 1), voxel_volume_ml(spacing))
