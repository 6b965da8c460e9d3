"""Received slices <-> a regular grid: resample a stack for a model, and map labels back per slice.

A received CT series is a stack of axial slices, each at its own ImagePositionPatient; the
stack may be tilted (each slice shifted in-plane) and its slices unevenly spaced (real scanners
do both: see the GE scan in docs). Models that need a regular grid (BLAST-CT's DeepMedic at
1 mm isotropic; the U-Net under `--resample`) get one here, and their labels come back onto
the received slices, so masks, DICOM SEG and biomarkers stay one mask slice per instance.

The regular grid's axes are the series' row direction, column direction and slice normal;
its origin is the first slice's first pixel (shifted to cover a tilted stack), and its size per
axis is round(extent / spacing + 1), as SimpleITK-based tools (the BLAST-CT reference) define
it, so for an untilted regular series both tools sample the same points.

- image -> grid: linear in-plane (bilinear) and linear between the two received slices that
  bracket each grid plane along the normal (= trilinear for a regular series); outside the
  received stack, the nearest edge value.
- labels grid -> slices: nearest grid voxel of each received pixel (as the reference does);
- labels slices -> grid (training on the grid): nearest received pixel, on each slice's nearest plane only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.volume import Volume


@dataclass(frozen=True)
class RegularGrid:
    shape: tuple[int, int, int]  # (z, y, x)
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    origin: np.ndarray  # LPS mm of voxel (0, 0, 0)
    axes: np.ndarray  # 3x3, columns: unit x (row direction), y (column direction), z (slice normal)

    @property
    def affine(self) -> np.ndarray:
        """(x, y, z, 1) -> LPS mm, like `Volume.affine`."""
        a = np.eye(4)
        a[:3, :3] = self.axes * np.array(self.spacing[::-1])
        a[:3, 3] = self.origin
        return a


def _frame(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row and column directions, slice normal, and each slice's origin in (u, v, w) frame mm."""
    a = volume.affine
    row = a[:3, 0] / np.linalg.norm(a[:3, 0])
    col = a[:3, 1] / np.linalg.norm(a[:3, 1])
    normal = np.cross(row, col)
    rel = volume.positions - volume.positions[0]
    uvw = np.stack([rel @ row, rel @ col, rel @ normal], axis=1)
    return row, col, normal, uvw


def regular_grid(volume: Volume, spacing: tuple[float, float, float]) -> RegularGrid:
    """The regular grid at `spacing` (dz, dy, dx mm) covering every received slice."""
    row, col, normal, uvw = _frame(volume)
    _, rows, cols = volume.shape
    dz, dy, dx = volume.spacing[0], volume.spacing[1], volume.spacing[2]
    del dz
    lo = np.array([uvw[:, 0].min(), uvw[:, 1].min(), uvw[:, 2].min()])
    hi = np.array([uvw[:, 0].max() + (cols - 1) * dx, uvw[:, 1].max() + (rows - 1) * dy, uvw[:, 2].max()])
    step = np.array(spacing[::-1], dtype=float)
    size_xyz = np.maximum(1, np.round((hi - lo) / step + 1).astype(int))
    axes = np.stack([row, col, normal], axis=1)
    origin = volume.positions[0] + axes @ lo
    return RegularGrid(tuple(int(s) for s in size_xyz[::-1]), tuple(float(s) for s in spacing), origin, axes)


def resample_to_grid(volume: Volume, grid: RegularGrid, values: np.ndarray | None = None) -> np.ndarray:
    """`values` (default the HU, (z, y, x) on the received slices) sampled on `grid`, float32."""
    data = volume.hu if values is None else values
    _, _, _, uvw = _frame(volume)
    lo = np.linalg.solve(np.stack([grid.axes[:, 0], grid.axes[:, 1], grid.axes[:, 2]], axis=1),
                         grid.origin - volume.positions[0])  # grid origin in frame mm
    dz, dy, dx = grid.spacing
    sdy, sdx = volume.spacing[1], volume.spacing[2]
    planes_w = lo[2] + np.arange(grid.shape[0]) * dz
    along = uvw[:, 2]
    out = np.empty(grid.shape, np.float32)
    cache: dict[int, np.ndarray] = {}

    def in_plane(k: int) -> np.ndarray:
        # Slice k on the grid's (y, x) raster: index = (grid mm - slice origin mm) / pixel size.
        if k not in cache:
            offset = ((lo[1] - uvw[k, 1]) / sdy, (lo[0] - uvw[k, 0]) / sdx)
            cache[k] = ndimage.affine_transform(data[k].astype(np.float32, copy=False), (dy / sdy, dx / sdx),
                                                offset=offset, output_shape=grid.shape[1:], order=1, mode="nearest")
            if len(cache) > 3:
                cache.pop(min(cache))
        return cache[k]

    for z, w in enumerate(planes_w):
        hi = int(np.searchsorted(along, w, side="right"))
        if hi <= 0:
            out[z] = in_plane(0)
        elif hi >= len(along):
            out[z] = in_plane(len(along) - 1)
        else:
            k0, k1 = hi - 1, hi
            t = (w - along[k0]) / (along[k1] - along[k0])
            out[z] = in_plane(k0) if t < 1e-6 else (1 - t) * in_plane(k0) + t * in_plane(k1)
    return out


def received_planes(grid: RegularGrid, volume: Volume) -> np.ndarray:
    """The grid z index nearest to each received slice (what `labels_to_slices` reads), -1 if off the grid."""
    _, _, _, uvw = _frame(volume)
    lo = np.linalg.solve(grid.axes, grid.origin - volume.positions[0])
    z = np.floor((uvw[:, 2] - lo[2]) / grid.spacing[0] + 0.5).astype(int)
    return np.where((z >= 0) & (z < grid.shape[0]), z, -1)


def labels_to_slices(labels: np.ndarray, grid: RegularGrid, volume: Volume) -> np.ndarray:
    """Grid labels (z, y, x) onto the received slices: each received pixel takes its nearest grid voxel."""
    _, _, _, uvw = _frame(volume)
    lo = np.linalg.solve(grid.axes, grid.origin - volume.positions[0])
    dz, dy, dx = grid.spacing
    sdy, sdx = volume.spacing[1], volume.spacing[2]
    out = np.zeros(volume.shape, np.uint8)
    for k, z in enumerate(received_planes(grid, volume)):
        if z < 0:
            continue
        # Received pixel (j, i) -> grid (y, x) index; nearest by rounding (order=0).
        offset = ((uvw[k, 1] - lo[1]) / dy, (uvw[k, 0] - lo[0]) / dx)
        out[k] = ndimage.affine_transform(labels[z], (sdy / dy, sdx / dx), offset=offset,
                                          output_shape=volume.shape[1:], order=0, mode="constant", cval=0)
    return out


def labels_to_grid(labels: np.ndarray, grid: RegularGrid, volume: Volume, fill: int) -> np.ndarray:
    """Received-slice labels (z, y, x) onto `grid`, for training a model that runs on it.

    Each received slice's labels go, nearest neighbour in-plane, onto its nearest grid plane (the plane
    `labels_to_slices` reads back); every other grid voxel, and any outside the slice, is `fill` (e.g.
    `vocabulary.labels.UNANNOTATED`): a model's loss then counts only voxels someone labelled.
    """
    _, _, _, uvw = _frame(volume)
    lo = np.linalg.solve(grid.axes, grid.origin - volume.positions[0])
    dz, dy, dx = grid.spacing
    sdy, sdx = volume.spacing[1], volume.spacing[2]
    out = np.full(grid.shape, fill, np.uint8)
    for k, z in enumerate(received_planes(grid, volume)):
        if z < 0:
            continue
        # Grid (y, x) index -> received pixel (j, i): the inverse of `labels_to_slices`' mapping.
        offset = ((lo[1] - uvw[k, 1]) / sdy, (lo[0] - uvw[k, 0]) / sdx)
        out[z] = ndimage.affine_transform(labels[k].astype(np.uint8, copy=False), (dy / sdy, dx / sdx),
                                          offset=offset, output_shape=grid.shape[1:], order=0, mode="constant",
                                          cval=fill)
    return out


def regular_volume(volume: Volume, grid: RegularGrid) -> Volume:
    """`volume` resampled onto `grid` as a Volume of its own (for models that segment slice by slice)."""
    hu = resample_to_grid(volume, grid)
    affine = grid.affine
    positions = np.array([affine[:3, 3] + affine[:3, 2] * k for k in range(grid.shape[0])])
    return Volume(hu=hu, spacing=grid.spacing, affine=affine, positions=positions,
                  sop_instance_uids=tuple(f"resampled-{k}" for k in range(grid.shape[0])),
                  series_instance_uid=volume.series_instance_uid,
                  notes=(*volume.notes, f"resampled to a regular {grid.spacing[0]:.2f} mm grid"))


def slice_step_for_resampling(volume: Volume) -> float:
    """The regular step for an irregular stack: its smallest step (nothing received is thinned out)."""
    along = (volume.positions - volume.positions[0]) @ np.cross(
        volume.affine[:3, 0] / np.linalg.norm(volume.affine[:3, 0]),
        volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1]))
    steps = np.diff(np.sort(along))
    return float(max(steps.min(), 0.5)) if steps.size else float(volume.spacing[0])
