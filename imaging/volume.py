"""DICOM CT series -> Hounsfield volume, and NIfTI masks on that volume's grid.

The single place where DICOM and NIfTI geometry conventions meet (docs/data-formats.md):

- arrays are indexed `(z, y, x)` = (slice, row, column), spacing `(dz, dy, dx)` in mm;
- `Volume.affine` maps `(x=column, y=row, z=slice, 1)` to patient LPS mm, as DICOM does;
- NIfTI files hold axes `(x, y, z)` with an affine to RAS+ mm, as nibabel writes them.

Choices for messy series (each raises `SeriesGeometryError` naming the series and what is wrong):

- order: by ImagePositionPatient projected on the slice normal (row x column cosines), never by
  file name or InstanceNumber;
- gantry tilt: kept on the native (sheared) grid by default, so that a mask voxel is a pixel of
  a received instance (what DICOM SEG export and manual annotations need); the exact sheared
  affine is kept and the tilt is reported in `Volume.gantry_tilt_deg`. `correct_tilt=True`
  resamples each slice in-plane onto an orthogonal grid instead;
- non-uniform spacing or missing slices: rejected (naming the gap), because the volume's affine
  could not place every slice; with `allow_irregular=True` (`segment --resample`) the slices are
  kept as received, each at its own position (`Volume.positions`), the affine uses the mean step
  and `Volume.irregular_spacing` says so: models then resample to a regular grid and map their
  labels back onto these slices (`imaging.regrid`), so masks stay one slice per instance;
- duplicated positions: identical pixel data is dropped as a duplicate copy; different pixel
  data at one position is rejected (naming both files);
- mixed sizes or orientations (a scout inside the series, ...): rejected, naming the sizes;
- padding: PixelPaddingValue pixels and anything below -1024 HU (air padding such as -2000 or
  -3024 outside the reconstruction circle) become -1024 HU (air).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from registry.dicom_headers import starts_like_a_dataset
from vocabulary.labels import NIFTI_DESCRIPTION, NIFTI_INTENT_NAME

AIR_HU = -1024.0
# Relative tolerance on slice steps: scanners round positions to ~0.01 mm, real gaps are >= one slice.
STEP_TOLERANCE = 0.05
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SeriesGeometryError(ValueError):
    """A series whose slices do not form one regular volume; the message names the series and the defect."""


class GridMismatchError(ValueError):
    """A mask whose grid differs from its series' grid; the message says what differs."""


@dataclass(frozen=True)
class Volume:
    """One CT series as a Hounsfield volume on a regular grid."""

    hu: np.ndarray  # (z, y, x) float32 HU
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm; dz along the slice normal
    affine: np.ndarray  # 4x4: (x=column, y=row, z=slice, 1) -> patient LPS mm
    positions: np.ndarray  # (z, 3) ImagePositionPatient of each slice, in volume order
    sop_instance_uids: tuple[str, ...]  # one per slice, in volume order
    series_instance_uid: str = ""
    gantry_tilt_deg: float = 0.0
    tilt_corrected: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    irregular_spacing: bool = False  # slice steps differ (kept as received, see load_series)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL (|det| of the affine: right for sheared grids too)."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


DATASET_START_BYTES = 1 << 16  # what `starts_like_a_dataset` looks at: the first element and its length


def read_dicom(path: Path | str) -> pydicom.Dataset:
    """One DICOM file as ingest accepts it: with or without the 128-byte preamble and file meta.

    `registry.dicom_headers` accepts files that start with data elements (old exporters write them so);
    pydicom reads those only with `force=True`, which is used under the same condition as there (forced,
    pydicom parses any bytes into garbage elements), and decodes their pixels only once the transfer
    syntax, which such a file does not state, is set from the encoding it was read in.
    """
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        with open(path, "rb") as fh:
            start = fh.read(DATASET_START_BYTES)
        if not starts_like_a_dataset(start):
            raise
        ds = pydicom.dcmread(path, force=True)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        syntax = (pydicom.uid.ImplicitVRLittleEndian if implicit else
                  pydicom.uid.ExplicitVRLittleEndian if little or little is None else pydicom.uid.ExplicitVRBigEndian)
        if meta is None:
            ds.file_meta = meta = pydicom.dataset.FileMetaDataset()
        meta.TransferSyntaxUID = syntax
    return ds


def _series_label(ds: pydicom.Dataset, fallback: str) -> str:
    return str(getattr(ds, "SeriesInstanceUID", "") or fallback)


def _required(ds: pydicom.Dataset, keyword: str, path: Path):  # noqa: ANN202 - DICOM values are many types
    value = ds.get(keyword)
    if value is None or value == "":
        raise SeriesGeometryError(f"{path}: missing DICOM tag {keyword}; cannot place the slice in space")
    return value


def _hu_of(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    raw = ds.pixel_array
    hu = raw.astype(np.float32)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    hu = hu * slope + intercept
    padding = ds.get("PixelPaddingValue")
    if padding is not None:
        # PixelPaddingValue is a stored value (before rescale); with PixelPaddingRangeLimit it is a range.
        limit = ds.get("PixelPaddingRangeLimit")
        if limit is None:
            hu[raw == int(padding)] = AIR_HU
        else:
            lo, hi = sorted((int(padding), int(limit)))
            hu[(raw >= lo) & (raw <= hi)] = AIR_HU
    np.maximum(hu, AIR_HU, out=hu)
    return hu


def load_series(paths: Sequence[Path | str], *, correct_tilt: bool = False, allow_irregular: bool = False) -> Volume:
    """Read the DICOM files of one CT series into a `Volume` (see the module docstring for the rules)."""
    if not paths:
        raise SeriesGeometryError("no DICOM files given")
    headers: list[tuple[Path, pydicom.Dataset]] = []
    for p in map(Path, paths):
        try:
            headers.append((p, read_dicom(p)))
        except Exception as exc:  # noqa: BLE001 - any read failure is reported with the file
            raise SeriesGeometryError(f"{p}: not a readable DICOM file ({exc})") from exc
    series_uid = _series_label(headers[0][1], str(headers[0][0].parent))
    uids = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(uids) > 1:
        raise SeriesGeometryError(f"series {series_uid}: files from {len(uids)} different SeriesInstanceUIDs")

    sizes = Counter((int(_required(ds, "Rows", p)), int(_required(ds, "Columns", p))) for p, ds in headers)
    if len(sizes) > 1:
        detail = ", ".join(f"{n} x {r}x{c}" for (r, c), n in sizes.most_common())
        raise SeriesGeometryError(f"series {series_uid}: mixed image sizes (rows x columns): {detail}")
    orientations = [np.asarray(_required(ds, "ImageOrientationPatient", p), dtype=float) for p, ds in headers]
    ref = orientations[0]
    for (p, _), iop in zip(headers, orientations, strict=True):
        if not np.allclose(iop, ref, atol=1e-3):
            raise SeriesGeometryError(
                f"series {series_uid}: {p} has ImageOrientationPatient {iop.round(4).tolist()}, "
                f"others {ref.round(4).tolist()} (a scout or a second stack in the series?)"
            )
    row_cos, col_cos = ref[:3], ref[3:]
    normal = np.cross(row_cos, col_cos)
    spacing_rc = np.asarray(_required(headers[0][1], "PixelSpacing", headers[0][0]), dtype=float)
    dy, dx = float(spacing_rc[0]), float(spacing_rc[1])

    positions = np.array([np.asarray(_required(ds, "ImagePositionPatient", p), dtype=float) for p, ds in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    headers = [headers[i] for i in order]
    positions, along = positions[order], along[order]

    notes: list[str] = []
    keep = [0]
    pixels: list[np.ndarray] = [_hu_of(headers[0][1], headers[0][0])]
    for i in range(1, len(headers)):
        p, ds = headers[i]
        hu = _hu_of(ds, p)
        if abs(along[i] - along[keep[-1]]) < 1e-3:
            prev_path = headers[keep[-1]][0]
            if np.array_equal(hu, pixels[-1]):
                notes.append(f"dropped {p.name}: duplicate of {prev_path.name} at the same position")
                continue
            raise SeriesGeometryError(
                f"series {series_uid}: {prev_path} and {p} are both at {along[i]:.2f} mm along the slice "
                f"normal with different pixel data (two acquisitions mixed in one series?)"
            )
        keep.append(i)
        pixels.append(hu)
    headers = [headers[i] for i in keep]
    positions, along = positions[keep], along[keep]

    if len(headers) > 1:
        steps = np.diff(along)
        dz = float(np.median(steps))
        bad = np.flatnonzero(np.abs(steps - dz) > STEP_TOLERANCE * dz)
        irregular = bool(bad.size) and allow_irregular
        if irregular:
            notes.append(f"irregular slice spacing {steps.min():.2f}-{steps.max():.2f} mm ({bad.size} step(s) off the "
                         f"median {dz:.2f} mm): slices kept as received; the affine uses the mean step")
            dz = float((along[-1] - along[0]) / (len(headers) - 1))
        elif bad.size:
            i = int(bad[0])
            kind = "missing slice(s)" if steps[i] > dz else "non-uniform spacing"
            raise SeriesGeometryError(
                f"series {series_uid}: {kind}: step of {steps[i]:.2f} mm between {headers[i][0].name} "
                f"({along[i]:.2f} mm) and {headers[i + 1][0].name} ({along[i + 1]:.2f} mm), expected {dz:.2f} mm "
                f"({bad.size} irregular step(s) in all); `ctstudy imaging segment --resample` segments such a series "
                "by resampling it to a regular grid"
            )
        step_vec = (positions[-1] - positions[0]) / (len(headers) - 1)
    else:
        dz = float(headers[0][1].get("SliceThickness", 1.0) or 1.0)
        step_vec = normal * dz
        irregular = False

    hu = np.stack(pixels).astype(np.float32, copy=False)
    in_plane = step_vec - normal * dz
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(in_plane), dz)))
    corrected = False
    if tilt > 0.01 and correct_tilt and irregular:
        raise SeriesGeometryError(f"series {series_uid}: tilt correction of an irregularly spaced series is not "
                                  "supported; segment it with --resample, which resamples from each slice's position")
    if tilt > 0.01 and correct_tilt:
        hu = _untilt(hu, in_plane, row_cos, col_cos, dy, dx)
        step_vec = normal * dz
        corrected = True
        notes.append(f"gantry tilt {tilt:.2f} deg resampled onto an orthogonal grid")
    elif tilt > 0.01:
        notes.append(f"gantry tilt {tilt:.2f} deg kept on the native sheared grid")

    affine = np.eye(4)
    affine[:3, 0] = row_cos * dx
    affine[:3, 1] = col_cos * dy
    affine[:3, 2] = step_vec
    affine[:3, 3] = positions[0]
    return Volume(
        hu=hu,
        spacing=(dz, dy, dx),
        affine=affine,
        positions=positions,
        sop_instance_uids=tuple(str(ds.SOPInstanceUID) for _, ds in headers),
        series_instance_uid=series_uid,
        gantry_tilt_deg=tilt,
        tilt_corrected=corrected,
        notes=tuple(notes),
        irregular_spacing=irregular,
    )


def _untilt(hu: np.ndarray, in_plane: np.ndarray, row_cos: np.ndarray, col_cos: np.ndarray,
            dy: float, dx: float) -> np.ndarray:
    """Shift slice k back by k times the in-plane part of the slice step (linear interpolation)."""
    out = np.empty_like(hu)
    per_slice = np.array([in_plane @ col_cos / dy, in_plane @ row_cos / dx])
    for k in range(hu.shape[0]):
        out[k] = ndimage.shift(hu[k], per_slice * k, order=1, mode="constant", cval=AIR_HU)
    return out


def volume_sha256(hu: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(hu).tobytes()).hexdigest()


# ---------------------------------------------------------------- NIfTI masks


def _save_nifti(path: Path | str, data_zyx: np.ndarray, affine: np.ndarray, *, is_label: bool) -> Path:
    """Write a `(z, y, x)` array with an LPS affine as NIfTI (axes x, y, z; RAS+ affine), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.ascontiguousarray(data_zyx.transpose(2, 1, 0))
    ras = LPS_TO_RAS @ np.asarray(affine, dtype=float)
    img = nib.Nifti1Image(data, ras)
    img.set_qform(ras, code=1)
    img.set_sform(ras, code=1)
    img.header.set_xyzt_units("mm")
    if is_label:
        img.header["descrip"] = NIFTI_DESCRIPTION  # which label map (vocabulary.labels), for importers
        img.header.set_intent("label", name=NIFTI_INTENT_NAME)
    # Write to a temporary name first: an interrupted write must not leave a truncated file behind.
    # The name is unique per writer: two runs writing the same series at once must not share it.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part.nii.gz")
    nib.save(img, tmp)
    tmp.replace(path)
    return path


def write_mask(path: Path | str, labels: np.ndarray, affine: np.ndarray) -> Path:
    """Write `(z, y, x)` uint8 labels with an LPS affine as NIfTI (axes x, y, z; RAS+ affine)."""
    return _save_nifti(path, np.asarray(labels, dtype=np.uint8), affine, is_label=True)


def write_hu(path: Path | str, hu: np.ndarray, affine: np.ndarray) -> Path:
    """Write a `(z, y, x)` HU volume as int16 NIfTI on the same grid convention as `write_mask`.

    ITK-SNAP and 3D Slicer open it with the mask as its segmentation layer (same affine, same axes).
    """
    data = np.clip(np.round(np.asarray(hu, dtype=np.float32)), -32768, 32767).astype(np.int16)
    return _save_nifti(path, data, affine, is_label=False)


def read_mask(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI mask as `(z, y, x)` uint8 labels and its LPS affine."""
    path = Path(path)
    try:
        img = nib.load(path)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable NIfTI file ({exc})") from exc
    if len(img.shape) != 3:
        raise ValueError(f"{path}: expected a 3-D mask, got shape {img.shape}")
    data = np.asanyarray(img.dataobj)
    if not np.allclose(data, np.round(data)) or data.min() < 0 or data.max() > 255:
        raise ValueError(f"{path}: mask values must be integer labels 0-255")
    labels = np.ascontiguousarray(data.astype(np.uint8).transpose(2, 1, 0))
    return labels, LPS_TO_RAS @ img.affine


def grid_difference(shape: tuple[int, ...], affine: np.ndarray, ref_shape: tuple[int, ...], ref_affine: np.ndarray,
                    atol_mm: float = 0.01) -> str | None:
    """What differs between two grids ((z, y, x) shapes, LPS affines), in words; None when they match."""
    problems = []
    if tuple(shape) != tuple(ref_shape):
        problems.append(f"shape (z,y,x) {tuple(shape)} != series {tuple(ref_shape)}")
    a, b = np.asarray(affine, dtype=float), np.asarray(ref_affine, dtype=float)
    sa, sb = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    if not np.allclose(sa, sb, atol=1e-3):
        problems.append(f"voxel size (x,y,z) {sa.round(4).tolist()} mm != series {sb.round(4).tolist()} mm")
    elif not np.allclose(a[:3, :3] / sa, b[:3, :3] / sb, atol=1e-3):
        problems.append("axis directions differ (flipped or rotated mask?)")
    if not np.allclose(a[:3, 3], b[:3, 3], atol=atol_mm):
        problems.append(f"origin {a[:3, 3].round(3).tolist()} != series {b[:3, 3].round(3).tolist()} (LPS mm)")
    return "; ".join(problems) or None


def grid_mismatch(shape: tuple[int, ...], affine: np.ndarray, volume: Volume, atol_mm: float = 0.01) -> str | None:
    """What differs between a mask grid and a volume's grid, in words; None when they match."""
    return grid_difference(shape, affine, volume.shape, volume.affine, atol_mm)


def read_mask_for(path: Path | str, volume: Volume) -> np.ndarray:
    """The labels of a NIfTI mask checked against the grid of `volume`; GridMismatchError says what differs."""
    labels, affine = read_mask(path)
    problem = grid_mismatch(labels.shape, affine, volume)
    if problem:
        raise GridMismatchError(f"{path}: mask grid does not match series {volume.series_instance_uid}: {problem}")
    return labels
