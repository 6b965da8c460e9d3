"""The bedside ABC/2 hematoma volume (Kothari et al., Stroke 1996;27:1304-5), computed on a mask.

A = the largest diameter on the slice with the largest hemorrhage area; B = the largest diameter
perpendicular to A on that slice; C = slice count x slice thickness, where a slice counts 1 if its
hemorrhage area is >= 75 % of the largest, 0.5 if 25-75 %, 0 below 25 % (Kothari's rule).
Volume = A x B x C / 2 (cm^3 = mL). Diameters are measured between pixel centres plus one pixel
(the extent a reader's caliper spans).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

# 26-connectivity: a lesion touching itself diagonally across slices is one lesion.
STRUCTURE_26 = np.ones((3, 3, 3), bool)


def largest_lesion(mask: np.ndarray) -> np.ndarray:
    """The largest 3-D connected component of a boolean (z, y, x) mask (empty if none)."""
    lab, n = ndimage.label(mask, structure=STRUCTURE_26)
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def _diameters_mm(points_mm: np.ndarray, pixel_mm: float) -> tuple[float, float]:
    """(A, B): the largest diameter and the largest extent perpendicular to it, in mm."""
    if len(points_mm) == 1:
        return pixel_mm, pixel_mm
    try:
        hull = points_mm[ConvexHull(points_mm).vertices]
    except QhullError:  # collinear pixels: the hull is the points themselves
        hull = points_mm
    d = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    axis = (hull[j] - hull[i]) / max(d[i, j], 1e-9)
    perp = np.array([-axis[1], axis[0]])
    across = points_mm @ perp
    return float(d[i, j]) + pixel_mm, float(across.max() - across.min()) + pixel_mm


def abc2_ml(lesion: np.ndarray, spacing: tuple[float, float, float], kothari_weights: bool = True) -> float:
    """ABC/2 volume in mL of one lesion given as a boolean (z, y, x) mask with spacing (dz, dy, dx) mm.

    `kothari_weights=False` counts every slice with hemorrhage fully (C = the lesion's extent).
    """
    dz, dy, dx = spacing
    areas = lesion.sum(axis=(1, 2))
    if areas.max() == 0:
        return 0.0
    k = int(np.argmax(areas))
    ys, xs = np.nonzero(lesion[k])
    a_mm, b_mm = _diameters_mm(np.column_stack([xs * dx, ys * dy]).astype(float), (dx + dy) / 2)
    frac = areas / areas.max()
    if kothari_weights:
        slices = float(np.sum(np.where(frac >= 0.75, 1.0, np.where(frac >= 0.25, 0.5, 0.0))))
    else:
        slices = float(np.count_nonzero(areas))
    c_mm = slices * dz
    return a_mm * b_mm * c_mm / 2.0 / 1000.0
