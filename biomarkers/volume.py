"""Lesion volumes from a label mask: voxel count x voxel volume (labels 1 hematoma, 2 edema)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biomarkers.geometry import voxel_volume_ml

HEMATOMA = 1
EDEMA = 2


def checked_labels(labels: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The label mask as uint8 (z, y, x); a clear error for a wrong shape or labels other than 0, 1, 2."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"label mask must be 3-D (z, y, x), got shape {labels.shape}")
    if shape is not None and labels.shape != tuple(shape):
        raise ValueError(f"label mask shape {labels.shape} differs from the CT volume's {tuple(shape)}")
    if labels.size == 0:
        raise ValueError("label mask is empty (a zero-length axis)")
    # One max() pass for the usual uint8 mask; np.unique (a sort of 10^7 voxels) only to name bad values.
    ok = labels.max() <= EDEMA and (labels.dtype == np.uint8 or labels.min() >= 0)
    if ok and not np.issubdtype(labels.dtype, np.integer):
        ok = bool(np.all(np.mod(labels, 1) == 0))
    if not ok:
        found = sorted(set(np.unique(labels).tolist()) - {0, 1, 2})
        raise ValueError(f"label mask has values {found[:5]}; expected only 0 background, 1 hematoma, 2 edema")
    return labels if labels.dtype == np.uint8 else labels.astype(np.uint8)


def label_volumes_ml(labels: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Hematoma, edema and total lesion volume in mL, and relative edema (edema / hematoma; NaN without hematoma)."""
    labels = checked_labels(labels)
    counts = np.bincount(labels.ravel(), minlength=3)
    vml = voxel_volume_ml(spacing)
    hematoma = float(counts[HEMATOMA]) * vml
    edema = float(counts[EDEMA]) * vml
    return {
        "hematoma_ml": hematoma,
        "edema_ml": edema,
        "total_lesion_ml": hematoma + edema,
        "relative_edema": edema / hematoma if hematoma > 0 else float("nan"),
    }
