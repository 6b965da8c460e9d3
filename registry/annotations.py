"""Import manual hematoma/edema annotations: NIfTI masks named `<SeriesInstanceUID>.nii.gz`.

Labels 0 background, 1 hematoma, 2 edema, on the grid of the series (docs/data-formats.md: NIfTI
axes x, y, z with an RAS+ affine). The grid is checked against the registered series without
decoding its pixels: size and slice count from the registry, origin and axes from the headers of
the first and last instance (the registry imports no other package, so this mirrors, for headers
only, the geometry of `imaging.volume`). A file that fails is rejected with the reason and
nothing of it is stored; the others go on. Accepted masks are copied under the home's
`masks/manual/` (every version kept, named by content hash), with a ManualAnnotation row, an
AuditEvent and one IngestRun (kind `annotations`) listing the rejections.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.instance_files import instance_file
from registry.models import IngestRun, Instance, ManualAnnotation, Rejection, Series
from registry.store import audit

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ALLOWED_LABELS = {0, 1, 2}
MASK_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class AnnotationImportReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason code, detail)


def series_uid_of(path: Path) -> str | None:
    for suffix in MASK_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def expected_grid(rows: int, columns: int, orientation: list[float], pixel_spacing: tuple[float, float],
                  first_position: list[float], last_position: list[float], slices: int,
                  ) -> tuple[tuple[int, int, int], np.ndarray]:
    """(z, y, x) shape and LPS affine of a series from its header facts (as imaging.volume builds it)."""
    iop = np.asarray(orientation, dtype=float)
    first, last = np.asarray(first_position, dtype=float), np.asarray(last_position, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    step = (last - first) / (slices - 1) if slices > 1 else normal
    affine = np.eye(4)
    affine[:3, 0] = iop[:3] * pixel_spacing[1]
    affine[:3, 1] = iop[3:] * pixel_spacing[0]
    affine[:3, 2] = step
    affine[:3, 3] = first
    return (slices, rows, columns), affine


def grid_problem(shape: tuple[int, ...], affine: np.ndarray, expected_shape: tuple[int, ...],
                 expected_affine: np.ndarray, atol_mm: float = 0.01) -> str | None:
    """What differs between a mask grid and the expected one, in words (shapes (z, y, x), LPS affines)."""
    problems = []
    if tuple(shape) != tuple(expected_shape):
        problems.append(f"shape (z,y,x) {tuple(shape)} != series {tuple(expected_shape)}")
    sa, sb = np.linalg.norm(affine[:3, :3], axis=0), np.linalg.norm(expected_affine[:3, :3], axis=0)
    if not np.allclose(sa, sb, atol=1e-3):
        problems.append(f"voxel size (x,y,z) {sa.round(4).tolist()} mm != series {sb.round(4).tolist()} mm")
    elif not np.allclose(affine[:3, :3] / sa, expected_affine[:3, :3] / sb, atol=1e-3):
        problems.append("axis directions differ (flipped or rotated mask?)")
    if not np.allclose(affine[:3, 3], expected_affine[:3, 3], atol=atol_mm):
        problems.append(f"origin {affine[:3, 3].round(3).tolist()} != series "
                        f"{expected_affine[:3, 3].round(3).tolist()} (LPS mm)")
    return "; ".join(problems) or None


def _series_grid(session: Session, series: Series) -> tuple[tuple[int, int, int], np.ndarray]:
    instances = session.scalars(select(Instance).where(Instance.series_id == series.id)).all()
    if not instances or series.rows is None or series.columns is None or not series.image_orientation:
        raise ValueError(f"series {series.series_instance_uid} has no usable geometry in the registry")
    ordered = sorted(instances, key=lambda i: (i.position_z is None, i.position_z or 0.0))
    first = pydicom.dcmread(instance_file(ordered[0]), stop_before_pixels=True)
    last = pydicom.dcmread(instance_file(ordered[-1]), stop_before_pixels=True)
    spacing = (float(series.pixel_spacing_row or first.PixelSpacing[0]),
               float(series.pixel_spacing_col or first.PixelSpacing[1]))
    return expected_grid(int(series.rows), int(series.columns), list(series.image_orientation), spacing,
                         list(first.ImagePositionPatient), list(last.ImagePositionPatient), len(ordered))


def _read_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    if len(img.shape) != 3:
        raise ValueError(f"expected a 3-D mask, got shape {img.shape}")
    data = np.asanyarray(img.dataobj)
    values = set(np.unique(data).tolist())
    if not values <= ALLOWED_LABELS:
        raise ValueError(f"labels {sorted(values - ALLOWED_LABELS)} not allowed (0 background, 1 hematoma, 2 edema)")
    return data.astype(np.uint8).transpose(2, 1, 0), LPS_TO_RAS @ img.affine


def import_annotations(session: Session, directory: Path, masks_dir: Path, actor: str,
                       annotator: str | None = None) -> AnnotationImportReport:
    """Import every mask file in `directory` (not recursive); see the module docstring."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    report = AnnotationImportReport()
    run = IngestRun(kind="annotations", source=str(directory), actor=actor, counts={})
    session.add(run)
    session.flush()
    files = sorted(p for p in directory.iterdir() if p.is_file() and series_uid_of(p))
    if not files:
        raise FileNotFoundError(f"{directory}: no <SeriesInstanceUID>.nii.gz mask files")
    for path in files:
        uid = series_uid_of(path)
        series = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one_or_none()
        if series is None:
            report.rejected.append((str(path), "unknown_series", f"no series {uid} in the registry"))
            continue
        try:
            labels, affine = _read_mask(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable mask is a rejection naming the file
            report.rejected.append((str(path), "unreadable_mask", str(exc)))
            continue
        try:
            shape, expected = _series_grid(session, series)
        except Exception as exc:  # noqa: BLE001
            report.rejected.append((str(path), "series_geometry", str(exc)))
            continue
        problem = grid_problem(labels.shape, affine, shape, expected)
        if problem:
            report.rejected.append((str(path), "grid_mismatch", f"mask grid does not match series {uid}: {problem}"))
            continue
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if session.scalars(select(ManualAnnotation).where(ManualAnnotation.series_id == series.id,
                                                          ManualAnnotation.sha256 == sha)).first():
            report.unchanged.append(uid)
            continue
        target = masks_dir / "manual" / uid / f"{sha[:16]}.nii.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
        ann = ManualAnnotation(series_id=series.id, mask_path=str(target), sha256=sha, annotator=annotator,
                               imported_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        session.add(ann)
        session.flush()
        audit(session, actor=actor, action="import_annotation", entity_type="series", entity_id=uid,
              after={"manual_annotation_id": ann.id, "sha256": sha, "source": str(path),
                     "hematoma_voxels": int(np.count_nonzero(labels == 1)),
                     "edema_voxels": int(np.count_nonzero(labels == 2))})
        report.imported.append(uid)
    for p, reason, detail in report.rejected:
        session.add(Rejection(ingest_run_id=run.id, path=p, reason=reason, detail=detail))
    run.counts = {"imported": len(report.imported), "unchanged": len(report.unchanged),
                  "rejected": len(report.rejected)}
    run.finished_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return report
