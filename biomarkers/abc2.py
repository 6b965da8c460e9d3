"""ABC/2 volume estimate of one hematoma (Kothari et al., Stroke 1996), for comparison with the voxel count.

On the axial slice with the largest hematoma area, A is the largest diameter and B the largest
diameter perpendicular to A. C is the number of slices showing the hematoma times the slice
spacing, with Kothari's weighting: a slice counts 1 if its area is at least 75 % of the largest,
0.5 if 25-75 %, 0 below 25 %. Volume = A x B x C / 2 (an ellipsoid's pi/6 rounded to 1/2).
The seed paper (ich-volume-deep-learning-vs-abc2) reports ABC/2 absolute errors of 0.68 / 3.16 /
19.31 mL for hematomas < 5, 5-25, > 25 mL against 0.52 / 1.53 / 7.93 mL for segmentation.

Hand-written because no maintained library implements it; diameters are measured on the pixel
corners of the slice's convex hull (scipy.spatial), so a one-pixel lesion is one pixel wide, not zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import ConvexHull, QhullError


def _diameters_mm(slice_mask: np.ndarray, dy: float, dx: float) -> tuple[float, float]:
    """Largest diameter A and largest width B perpendicular to it (mm) of one 2D mask."""
    yy, xx = np.nonzero(slice_mask)
    corners = np.concatenate([
        np.column_stack([(yy + oy) * dy, (xx + ox) * dx]) for oy in (-0.5, 0.5) for ox in (-0.5, 0.5)
    ])
    try:
        pts = corners[ConvexHull(corners).vertices]
    except QhullError:  # collinear corners cannot happen with pixel squares, but keep a safe path
        pts = corners
    diff = pts[:, None, :] - pts[None, :, :]
    dist2 = (diff**2).sum(axis=-1)
    i, j = np.unravel_index(np.argmax(dist2), dist2.shape)
    a_vec = pts[j] - pts[i]
    a_len = float(np.sqrt(dist2[i, j]))
    perp = np.array([-a_vec[1], a_vec[0]]) / a_len
    proj = pts @ perp
    return a_len, float(proj.max() - proj.min())


def abc2_volume_ml(lesion: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """ABC/2 of a single-lesion mask (z, y, x): `abc2_ml` and its `abc2_a_mm`, `abc2_b_mm`, `abc2_c_mm`."""
    lesion = np.asarray(lesion, dtype=bool)
    areas = lesion.sum(axis=(1, 2))
    if areas.max(initial=0) == 0:
        return {"abc2_ml": 0.0, "abc2_a_mm": 0.0, "abc2_b_mm": 0.0, "abc2_c_mm": 0.0}
    dz, dy, dx = (float(s) for s in spacing)
    largest = int(np.argmax(areas))
    a_mm, b_mm = _diameters_mm(lesion[largest], dy, dx)
    ratio = areas / areas[largest]
    weights = np.where(ratio >= 0.75, 1.0, np.where(ratio >= 0.25, 0.5, 0.0))
    c_mm = float(weights.sum()) * dz
    return {"abc2_ml": a_mm * b_mm * c_mm / 2.0 / 1000.0, "abc2_a_mm": a_mm, "abc2_b_mm": b_mm, "abc2_c_mm": c_mm}
