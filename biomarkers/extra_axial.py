"""Extra-axial hemorrhage (label 2, subdural or epidural): the largest collection and its maximal thickness,
and whether there is intraventricular blood (label 4).

Collections are the 3D connected components of the EAH label (26-connectivity, components under
`min_ml` are specks, as for hematoma lesions); the largest is the one with most voxels.

Maximal thickness, as a radiologist measures a subdural: on the axial slices, across the
collection, where it is thickest. On each slice, the Euclidean distance from every collection
pixel to the nearest pixel outside it (scipy's exact distance transform, in mm) is the radius of
the largest disc centred there that stays inside; the thickness is the diameter of the largest
such disc over all slices, measured between pixel edges: `2 * max distance - pixel size` (the
distance runs from pixel centre to pixel centre, half a pixel beyond the edge on each side).
So a band N pixels wide measures N pixels when N is odd and N - 1 when N is even: within one
pixel, never more. In-plane rather than 3D because slices are often 5 mm thick: a 3D distance
would be capped by the slice spacing on a collection seen on few slices. Where the skull runs
nearly parallel to the slices (at the vertex) an axial measurement is oblique and reads thicker,
as it does for a reader.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from biomarkers.geometry import voxel_volume_ml
from biomarkers.lesions import CONNECTIVITY, MIN_LESION_ML, bounding_box, labelled_lesions
from vocabulary.labels import EAH, IVH


def max_thickness_mm(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Maximal in-plane thickness (mm) of a (z, y, x) boolean mask; 0 when empty (see the module doc)."""
    box = bounding_box(mask)
    if box is None:
        return 0.0
    _, dy, dx = (float(s) for s in spacing)
    sub = np.pad(mask[box], ((0, 0), (1, 1), (1, 1)))  # a ring of outside pixels: the box edge is not inside
    best = 0.0
    for k in np.flatnonzero(sub.any(axis=(1, 2))):
        best = max(best, float(ndimage.distance_transform_edt(sub[k], sampling=(dy, dx)).max()))
    return 2.0 * best - min(dy, dx)


def extra_axial_features(labels: np.ndarray, spacing: Sequence[float], min_ml: float = MIN_LESION_ML,
                         connectivity: int = CONNECTIVITY) -> tuple[dict[str, float], np.ndarray | None]:
    """`eah_count`, `eah_largest_ml`, `eah_max_thickness_mm` (of the largest collection; 0 without one),
    `ivh_present` (1 if there is at least `min_ml` of IVH), and the largest collection's mask (or None)."""
    vml = voxel_volume_ml(spacing)
    ivh_ml = float(np.count_nonzero(labels == IVH)) * vml
    out = {"eah_count": 0, "eah_largest_ml": 0.0, "eah_max_thickness_mm": 0.0,
           "ivh_present": 1.0 if ivh_ml >= min_ml else 0.0}
    box = bounding_box(labels == EAH)
    if box is None:
        return out, None
    lab, counts = labelled_lesions(labels[box] == EAH, spacing, min_ml, connectivity)
    if counts.size == 0:
        return out, None
    largest = np.zeros(labels.shape, dtype=bool)
    largest[box] = lab == 1
    out.update(eah_count=int(counts.size), eah_largest_ml=float(counts[0]) * vml,
               eah_max_thickness_mm=max_thickness_mm(largest, spacing))
    return out, largest
