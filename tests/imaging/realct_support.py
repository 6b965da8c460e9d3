"""Shared helpers for the real-CT tests: NIfTI <-> Volume, Dice, the CT-ICH stacks as Volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ctstudy import ct_ich
from imaging.volume import LPS_TO_RAS, Volume, load_series

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "blast_ct_reference"


def volume_from_nifti(path: Path) -> Volume:
    """A NIfTI CT image (axes x, y, z; RAS affine) as a Volume (axes z, y, x; LPS affine)."""
    img = nib.load(path)
    hu = np.ascontiguousarray(np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0))
    affine = np.linalg.inv(LPS_TO_RAS) @ img.affine
    positions = np.array([affine[:3, 3] + affine[:3, 2] * k for k in range(hu.shape[0])])
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)[::-1])
    return Volume(hu=hu, spacing=spacing, affine=affine, positions=positions,  # type: ignore[arg-type]
                  sop_instance_uids=tuple(str(k) for k in range(hu.shape[0])))


def labels_from_nifti(path: Path) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(nib.load(path).dataobj).astype(np.uint8).transpose(2, 1, 0))


def write_volume_nifti(volume: Volume, path: Path) -> Path:
    img = nib.Nifti1Image(np.ascontiguousarray(volume.hu.transpose(2, 1, 0)), LPS_TO_RAS @ volume.affine)
    img.set_qform(LPS_TO_RAS @ volume.affine, code=1)
    img.set_sform(LPS_TO_RAS @ volume.affine, code=1)
    nib.save(img, path)
    return path


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def ct_ich_stack(tmp: Path, patient: int, numbers: range | None = None) -> tuple[Volume, np.ndarray]:
    """A CT-ICH patient's slices written as DICOM by the converter and read back; (volume, truth)."""
    slices = ct_ich.patient_slices(patient, numbers)
    files = ct_ich.write_series(slices, tmp / f"ctich-{patient}")
    return load_series(files, allow_irregular=True), ct_ich.truth_masks(slices)


# CT-ICH patient 81's subdural hematoma (slices 13-27) in three blocks of five slices.
PATIENT_81_BLOCKS = {"81-a": range(13, 18), "81-b": range(18, 23), "81-c": range(23, 28)}


def patient_81_block_scans(tmp: Path) -> list:
    """The blocks of PATIENT_81_BLOCKS as `imaging.adapt.Scan`s of one center, each block a patient, labelled by
    the slices' hemorrhage types (`ct_ich.class_labels`)."""
    from imaging.adapt import Scan

    scans = []
    for key, numbers in PATIENT_81_BLOCKS.items():
        slices = ct_ich.patient_slices(81, numbers)
        volume = load_series(ct_ich.write_series(slices, tmp / key), allow_irregular=True)
        scans.append(Scan(f"ctich-{key}", key, "CTICH", volume, ct_ich.class_labels(slices)))
    return scans
