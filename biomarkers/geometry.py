"""Voxel geometry: voxel volume, index -> patient (LPS) mm, and which index direction is the patient's left.

Arrays are indexed `(z, y, x)` = (slice, row, column) with spacing `(dz, dy, dx)` mm, and the
affine maps `(x=column, y=row, z=slice, 1)` to patient LPS mm (docs/data-formats.md). In LPS,
+x points to the patient's Left, +y Posterior, +z Superior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
    dz, dy, dx = (float(s) for s in spacing)
    if min(dz, dy, dx) <= 0:
        raise ValueError(f"voxel spacing must be positive, got (dz, dy, dx) = {tuple(spacing)}")
    return dz * dy * dx / 1000.0


def checked_affine(affine: np.ndarray | None, spacing: Sequence[float]) -> np.ndarray:
    """A 4x4 float affine; without one, an axial LPS grid (column -> Left, row -> Posterior, slice -> Superior)."""
    if affine is None:
        dz, dy, dx = (float(s) for s in spacing)
        return np.diag([dx, dy, dz, 1.0])
    a = np.asarray(affine, dtype=float)
    if a.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {a.shape}")
    if abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise ValueError("affine is singular: its 3x3 part has zero determinant")
    return a


def index_to_patient_mm(affine: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """Patient LPS mm of points given as (n, 3) `(z, y, x)` voxel indices (fractional allowed)."""
    zyx = np.atleast_2d(np.asarray(zyx, dtype=float))
    xyz = zyx[:, ::-1]
    return xyz @ affine[:3, :3].T + affine[:3, 3]


def patient_bbox_mm(affine: np.ndarray, lo_zyx: Sequence[float],
                    hi_zyx: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Min and max LPS mm of the index box [lo, hi] (inclusive voxel centres), from its 8 corners.

    Exact for the usual axis-aligned axial grids; for oblique ones a slightly larger box.
    """
    corners = np.array([[z, y, x] for z in (lo_zyx[0], hi_zyx[0]) for y in (lo_zyx[1], hi_zyx[1])
                        for x in (lo_zyx[2], hi_zyx[2])], dtype=float)
    mm = index_to_patient_mm(affine, corners)
    return mm.min(axis=0), mm.max(axis=0)
