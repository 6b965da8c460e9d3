"""Left/right asymmetry about the estimated midline plane: index (L - R) / ((L + R) / 2).

The index runs from -2 (all right) to +2 (all left), 0 when symmetric; the MALP-EM work in the
CREACTIVE seed slides found structural asymmetry to separate favourable from unfavourable GOS.
Voxels lying exactly on the plane count on neither side.
"""

from __future__ import annotations

import numpy as np


def asymmetry_index(left: float, right: float) -> float:
    """(L - R) / ((L + R) / 2); NaN when both are zero."""
    total = left + right
    return float((left - right) / (total / 2.0)) if total > 0 else float("nan")


def side_volumes_ml(mask: np.ndarray, side: np.ndarray, voxel_ml: float) -> tuple[float, float]:
    """(left, right) volume of `mask` in mL, given the per-voxel side grid (+1 left, -1 right, 0 on the plane)."""
    picked = side[mask]
    return float(np.count_nonzero(picked > 0)) * voxel_ml, float(np.count_nonzero(picked < 0)) * voxel_ml
