"""Hematoma lesions: 3D connected components and the per-lesion table.

Connectivity: 26 (voxels sharing a face, an edge or a corner belong to one lesion), the
convention of 3D lesion counting in scipy.ndimage with a full 3x3x3 structure; 6-connectivity can
be asked for. Components smaller than `min_lesion_ml` (default 0.05 mL) are not counted as
lesions: single voxels and specks are segmentation noise. Their voxels still count in the
hematoma volume, which is a plain voxel count.

Perilesional edema: every edema voxel belongs to the hematoma lesion nearest to it (Euclidean
distance in mm, scipy's exact distance transform), so whenever there is a lesion the per-lesion
edema volumes add up to the series' edema volume (sub-threshold specks are not lesions and own no edema).

Coarse region, from the centroid normalized to the intracranial bounding box in patient axes
(lr 0 right .. 1 left, ap 0 anterior .. 1 posterior, si 0 inferior .. 1 superior) and its distance
to the midline relative to the half width. A heuristic partition, not an atlas:
posterior fossa: si < 0.25 and ap > 0.5; deep/central: |offset| < 0.35 and 0.3 <= ap <= 0.7 and
0.25 <= si <= 0.7; temporal: si < 0.45 and ap <= 0.7 and |offset| >= 0.45; frontal: ap < 0.4;
occipital: ap > 0.75; parietal: the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from biomarkers.geometry import index_to_patient_mm, voxel_volume_ml
from biomarkers.midline import MidlinePlane
from biomarkers.volume import EDEMA, HEMATOMA

MIN_LESION_ML = 0.05
CONNECTIVITY = 26

LESION_COLUMNS = [
    "lesion", "volume_ml", "voxels", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
    "centroid_lr", "centroid_ap", "centroid_si", "side", "fraction_left", "crosses_midline", "region",
    "midline_distance_mm", "mean_hu", "max_hu", "edema_ml",
]


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 26:
        return np.ones((3, 3, 3), dtype=bool)
    if connectivity == 6:
        return ndimage.generate_binary_structure(3, 1)
    raise ValueError(f"connectivity must be 6 or 26, got {connectivity}")


def bounding_box(mask: np.ndarray, pad: int | Sequence[int] = 0) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding all True voxels, grown by `pad` voxels per axis; None if empty."""
    pads = [pad] * mask.ndim if isinstance(pad, int) else list(pad)
    box = []
    for axis in range(mask.ndim):
        hit = np.nonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))[0]
        if hit.size == 0:
            return None
        box.append(slice(max(0, hit[0] - pads[axis]), min(mask.shape[axis], hit[-1] + 1 + pads[axis])))
    return tuple(box)


def labelled_lesions(hematoma: np.ndarray, spacing: Sequence[float], min_lesion_ml: float = MIN_LESION_ML,
                     connectivity: int = CONNECTIVITY) -> tuple[np.ndarray, np.ndarray]:
    """Components of a hematoma mask: (int32 label array numbered 1..n by decreasing volume, voxel counts).

    Components under `min_lesion_ml` are set to 0 in the returned labels.
    """
    lab, n = ndimage.label(hematoma, structure=_structure(connectivity))
    if n == 0:
        return lab, np.zeros(0, dtype=np.int64)
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    big = counts * voxel_volume_ml(spacing) >= min_lesion_ml
    order = np.argsort(-counts, kind="stable")
    order = order[big[order]]
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[order + 1] = np.arange(1, order.size + 1, dtype=np.int32)
    return remap[lab], counts[order]


def lesion_table(labels: np.ndarray, hu: np.ndarray, spacing: Sequence[float], affine: np.ndarray,
                 plane: MidlinePlane, brain_box_mm: tuple[np.ndarray, np.ndarray] | None,
                 min_lesion_ml: float = MIN_LESION_ML, connectivity: int = CONNECTIVITY) -> pd.DataFrame:
    """One row per hematoma lesion (largest first) with the columns of `LESION_COLUMNS`.

    Works on the bounding box of the lesion labels only, so its cost follows the lesion size, not the scan size.
    """
    # Extra-axial and intraventricular blood are not hematoma lesions: they stay out of the box.
    box = bounding_box((labels == HEMATOMA) | (labels == EDEMA))
    if box is None:
        return pd.DataFrame(columns=LESION_COLUMNS)
    sub = labels[box]
    lab, counts = labelled_lesions(sub == HEMATOMA, spacing, min_lesion_ml, connectivity)
    n = counts.size
    if n == 0:
        return pd.DataFrame(columns=LESION_COLUMNS)
    vml = voxel_volume_ml(spacing)
    offset = np.array([s.start for s in box], dtype=float)
    zz, yy, xx = np.nonzero(lab)
    ids = lab[zz, yy, xx]
    zyx = np.column_stack([zz, yy, xx]).astype(float) + offset
    hu_vals = np.asarray(hu[box][zz, yy, xx], dtype=float)
    sums = np.vstack([np.bincount(ids, weights=zyx[:, k], minlength=n + 1)[1:] for k in range(3)]).T
    centroid_idx = sums / counts[:, None]
    centroid_mm = index_to_patient_mm(affine, centroid_idx)
    mean_hu = np.bincount(ids, weights=hu_vals, minlength=n + 1)[1:] / counts
    max_hu = np.full(n + 1, -np.inf)
    np.maximum.at(max_hu, ids, hu_vals)
    dist = plane.signed_distance_mm(zyx)
    n_left = np.bincount(ids, weights=(dist > 0).astype(float), minlength=n + 1)[1:]
    n_right = np.bincount(ids, weights=(dist < 0).astype(float), minlength=n + 1)[1:]
    centroid_dist = plane.signed_distance_mm(centroid_idx)
    edema_ml = _edema_per_lesion(sub == EDEMA, lab, n, spacing) * vml

    table = pd.DataFrame({
        "lesion": np.arange(1, n + 1),
        "volume_ml": counts * vml,
        "voxels": counts,
        "centroid_x_mm": centroid_mm[:, 0],
        "centroid_y_mm": centroid_mm[:, 1],
        "centroid_z_mm": centroid_mm[:, 2],
        "side": np.where(centroid_dist > 0, "left", "right"),
        "fraction_left": n_left / counts,
        "crosses_midline": (n_left > 0) & (n_right > 0),
        "midline_distance_mm": centroid_dist,
        "mean_hu": mean_hu,
        "max_hu": max_hu[1:],
        "edema_ml": edema_ml,
    })
    norm = _normalized(centroid_mm, brain_box_mm)
    table["centroid_lr"], table["centroid_ap"], table["centroid_si"] = norm[:, 0], norm[:, 1], norm[:, 2]
    half_width = None if brain_box_mm is None else (brain_box_mm[1][0] - brain_box_mm[0][0]) / 2.0
    offsets = np.abs(centroid_dist) / half_width if half_width else np.full(n, np.nan)
    table["region"] = [coarse_region(norm[i, 1], norm[i, 2], offsets[i]) for i in range(n)]
    return table[LESION_COLUMNS]


def _edema_per_lesion(edema: np.ndarray, lab: np.ndarray, n: int, spacing: Sequence[float]) -> np.ndarray:
    """Edema voxel counts assigned to their nearest lesion (Voronoi partition in mm)."""
    if not edema.any():
        return np.zeros(n)
    if n == 1:
        return np.full(1, float(edema.sum()))
    # The distance transform returns, for every background voxel, the index of the nearest lesion voxel.
    _, nearest = ndimage.distance_transform_edt(lab == 0, sampling=spacing, return_indices=True)
    owner = lab[tuple(nearest)]
    return np.bincount(owner[edema], minlength=n + 1)[1:].astype(float)


def _normalized(centroid_mm: np.ndarray, brain_box_mm: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Centroids as fractions of the intracranial box: lr 0 right..1 left, ap 0 anterior..1 posterior, si 0..1 up."""
    if brain_box_mm is None:
        return np.full_like(centroid_mm, np.nan)
    lo, hi = brain_box_mm
    extent = np.where(hi - lo > 0, hi - lo, np.nan)
    return (centroid_mm - lo) / extent


def coarse_region(ap: float, si: float, offset: float) -> str:
    """Coarse region of a normalized centroid (rules in the module doc); `offset` = |midline distance| / half width."""
    if np.isnan(ap) or np.isnan(si):
        return "unknown"
    if si < 0.25 and ap > 0.5:
        return "posterior fossa"
    if not np.isnan(offset) and offset < 0.35 and 0.3 <= ap <= 0.7 and 0.25 <= si <= 0.7:
        return "deep/central"
    if si < 0.45 and ap <= 0.7 and not np.isnan(offset) and offset >= 0.45:
        return "temporal"
    if ap < 0.4:
        return "frontal"
    if ap > 0.75:
        return "occipital"
    return "parietal"
