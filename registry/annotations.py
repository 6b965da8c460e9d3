"""Import manual lesion annotations: NIfTI masks named `<SeriesInstanceUID>.nii.gz`.

Labels in the project's label map (`vocabulary.labels`: 0 background, 1 IPH, 2 extra-axial
hemorrhage, 3 perilesional edema, 4 IVH), on the grid of the series (docs/data-formats.md: NIfTI
axes x, y, z with an RAS+ affine).

Label scheme. A mask that ctstudy wrote says it is four-class in its header (description and
intent name, `vocabulary.labels.nifti_scheme`). A mask without that marker is in the scheme the
importer is told, `label_scheme` (`--label-scheme`, four-class by default). Masks drawn for the
older two-class map (0 background, 1 hematoma, 2 edema) are imported with
`--label-scheme two-class`: they are converted (1 -> IPH 1, 2 -> edema 3) and stored four-class,
and ManualAnnotation.label_scheme records that they were drawn two-class. A mask without the
marker read as four-class that holds only labels 1 and 2, with label 2 touching label 1 (an edema
rim, not an extra-axial collection), is imported but reported as a warning: it may be a two-class
mask imported without the option.

Partial annotations. An annotator may label only some slices or some classes: voxels set to
`vocabulary.labels.UNANNOTATED` (255) are "not annotated". A mask holding any such voxel is a partial
annotation; it is stored as drawn (255 kept), the import reports it with the share of voxels annotated,
and the audit event records that share. Downstream, training and adaptation skip those voxels, agreement
figures count only annotated voxels, and biomarkers refuse a partial annotation (its volumes are not the
scan's). Any other label outside the map is refused, naming the file and the labels.

The grid is checked against the registered series without
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

from registry.db.models import IngestRun, Instance, ManualAnnotation, Rejection, Series
from registry.db.store import audit
from registry.deid.stored_names import path_token
from registry.instance_files import instance_file
from vocabulary import labels as L

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
MASK_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class AnnotationImportReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason code, detail)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, what may be wrong) of imported masks
    partial: dict[str, float] = field(default_factory=dict)  # series UID -> share of voxels annotated (partial masks)


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


def _declared_scheme(img: nib.Nifti1Image) -> str | None:
    keys = set(img.header.keys())
    return L.nifti_scheme(img.header["descrip"].item() if "descrip" in keys else b"",
                          img.header["intent_name"].item() if "intent_name" in keys else b"")


@dataclass
class _Mask:
    labels: np.ndarray  # (z, y, x) uint8 in the four-class map
    affine: np.ndarray  # LPS
    scheme: str  # the scheme the file was drawn in
    image: nib.Nifti1Image  # as read (its header is kept when a converted copy is written)


def _read_mask(path: Path, label_scheme: str) -> _Mask:
    img = nib.load(path)
    if len(img.shape) != 3:
        raise ValueError(f"expected a 3-D mask, got shape {img.shape}")
    declared = _declared_scheme(img)
    if declared is not None and declared != label_scheme and label_scheme != L.FOUR_CLASS:
        raise ValueError(f"the file's header says it is a {declared} mask (written by ctstudy), but "
                         f"--label-scheme {label_scheme} was given: import it without that option")
    scheme = declared or label_scheme
    data = np.asanyarray(img.dataobj)
    values = set(np.unique(data).tolist())
    if scheme == L.TWO_CLASS:
        allowed = set(L.LEGACY_TWO_CLASS) | {L.UNANNOTATED}
        if not values <= allowed:
            raise ValueError(f"labels {sorted(values - allowed)} not allowed in a two-class mask (0 background, "
                             f"1 hematoma, 2 edema, {L.UNANNOTATED} not annotated); a four-class mask is imported "
                             "with --label-scheme four-class")
        labels = L.from_legacy_two_class(data.astype(np.uint8))
    else:
        if not values <= L.ANNOTATION_LABELS:
            raise ValueError(f"labels {sorted(values - L.ANNOTATION_LABELS)} not allowed ({L.describe()}; "
                             f"{L.UNANNOTATED} for voxels not annotated)")
        labels = data.astype(np.uint8)
    return _Mask(labels.transpose(2, 1, 0), LPS_TO_RAS @ img.affine, scheme, img)


def _looks_two_class(labels: np.ndarray) -> bool:
    """Only labels 1 and 2, and some label-2 voxel touching label 1: an edema rim more than an extra-axial
    collection (which lies at the skull, apart from intraparenchymal blood)."""
    drawn = labels[labels != L.UNANNOTATED]
    if not np.any(drawn == L.IPH) or not np.any(drawn == L.EAH) or np.any(drawn > L.EAH):
        return False
    from scipy import ndimage  # only for this check

    return bool(np.any(ndimage.binary_dilation(labels == L.IPH) & (labels == L.EAH)))


def _write_four_class(mask: _Mask, target: Path) -> None:
    """A converted mask: the source's grid and header, four-class labels, the ctstudy marker."""
    img = nib.Nifti1Image(np.ascontiguousarray(mask.labels.transpose(2, 1, 0)), mask.image.affine,
                          header=mask.image.header)
    img.set_data_dtype(np.uint8)
    img.header["descrip"] = L.NIFTI_DESCRIPTION
    img.header.set_intent("label", name=L.NIFTI_INTENT_NAME)
    nib.save(img, target)


def import_annotations(session: Session, directory: Path, masks_dir: Path, actor: str,
                       annotator: str | None = None, label_scheme: str = L.FOUR_CLASS, *,
                       key: bytes | None = None) -> AnnotationImportReport:
    """Import every mask file in `directory` (not recursive); see the module docstring.

    The registry keeps no name of the operator's folders (`registry.deid.stored_names`): the folder and each
    rejected file are stored as keyed tokens under the home key `key`, or, without it, not at all. The
    report (for the operator's terminal) keeps the paths.
    """
    if label_scheme not in L.LABEL_SCHEMES:
        raise ValueError(f"label scheme must be one of {', '.join(L.LABEL_SCHEMES)}, not {label_scheme!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    report = AnnotationImportReport()
    def stored(kind: str, path: Path) -> str:
        return path_token(key, kind, str(path)) if key is not None else f"{kind} not recorded"

    run = IngestRun(kind="annotations", source=stored("folder", directory), actor=actor, counts={})
    session.add(run)
    session.flush()
    files = sorted(p for p in directory.iterdir() if p.is_file() and series_uid_of(p))
    if not files:
        raise FileNotFoundError(f"{directory}: no <SeriesInstanceUID>.nii.gz mask files")
    for path in files:
        uid = series_uid_of(path)
        series = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one_or_none()
        if series is None:
            report.rejected.append((str(path), "unknown_series",
                                    "no series in the registry has the SeriesInstanceUID this file is named after"))
            continue
        try:
            mask = _read_mask(path, label_scheme)
            labels, affine = mask.labels, mask.affine
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
        same = session.scalars(select(ManualAnnotation).where(ManualAnnotation.series_id == series.id,
                                                              ManualAnnotation.sha256 == sha)).first()
        if same is not None and same.label_scheme == mask.scheme:
            report.unchanged.append(uid)
            continue
        # The same file again in another scheme (imported first without --label-scheme two-class, say):
        # a new stored copy, and the row says so; the earlier copy stays on disk, the change is audited.
        suffix = "" if mask.scheme == L.FOUR_CLASS else f"-{mask.scheme}"
        target = masks_dir / "manual" / uid / f"{sha[:16]}{suffix}.nii.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part.nii.gz")
        if mask.scheme == L.TWO_CLASS:
            _write_four_class(mask, tmp)  # stored in the four-class map, like every mask downstream reads
        else:
            shutil.copyfile(path, tmp)
        tmp.replace(target)
        if mask.scheme == L.FOUR_CLASS and _declared_scheme(mask.image) is None and _looks_two_class(labels):
            report.warnings.append((str(path), "only labels 1 and 2, with 2 touching 1 like an edema rim: if this is "
                                               "a two-class (hematoma/edema) mask, import it again with "
                                               "--label-scheme two-class"))
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if same is not None:
            audit(session, actor=actor, action="relabel_annotation", entity_type="series", entity_id=uid,
                  before={"manual_annotation_id": same.id, "label_scheme": same.label_scheme,
                          "mask_path": same.mask_path},
                  after={"label_scheme": mask.scheme, "mask_path": str(target)})
            same.label_scheme, same.mask_path, same.imported_at = mask.scheme, str(target), now
            same.annotator = annotator or same.annotator
            ann = same
        else:
            ann = ManualAnnotation(series_id=series.id, mask_path=str(target), sha256=sha, annotator=annotator,
                                   label_scheme=mask.scheme, imported_at=now)
            session.add(ann)
        session.flush()
        audit(session, actor=actor, action="import_annotation", entity_type="series", entity_id=uid,
              after={"manual_annotation_id": ann.id, "sha256": sha,
                     "source": stored("file", path), "label_scheme": mask.scheme,
                     **{f"{c.key}_voxels": int(np.count_nonzero(labels == c.value)) for c in L.LESION_CLASSES},
                     "annotated_fraction": L.annotated_fraction(labels)})
        report.imported.append(uid)
        if L.is_partial(labels):
            report.partial[uid] = L.annotated_fraction(labels)
    for p, reason, detail in report.rejected:
        session.add(Rejection(ingest_run_id=run.id, path=stored("file", Path(p)), reason=reason,
                              detail=detail.replace(p, "the file")))
    run.counts = {"imported": len(report.imported), "unchanged": len(report.unchanged),
                  "rejected": len(report.rejected)}
    run.finished_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return report
