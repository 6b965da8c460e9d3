"""The real scans the adaptation and distillation benches share: CT-ICH slices as annotated scans, the normal GE
head, and BLAST-CT's labels of them cached on disk (one network; minutes of CPU per scan, so computed once).

CT-ICH (36 slices, 5 patients, `ctstudy/data/ct_ich/`): each slice's hemorrhage mask is labelled with the
slice's type (`ctstudy.ct_ich.class_labels`: epidural and subdural: extra-axial; intraparenchymal;
intraventricular; `UNANNOTATED` where a slice holds several types or subarachnoid blood), so the loss and the
Dice skip what the public masks cannot tell apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ctstudy import ct_ich
from imaging.adapt import Scan
from imaging.volume import Volume, load_series

GE_HEAD = Path("/work/shared/realct/ge-head-ct")
CENTER = "CTICH"


def ct_ich_patient_scans(tmp: Path) -> list[Scan]:
    """Each CT-ICH patient's slices as one scan (series), read back through the DICOM converter."""
    scans = []
    for patient in sorted({s.patient for s in ct_ich.slice_index()}):
        slices = ct_ich.patient_slices(patient)
        volume = load_series(ct_ich.write_series(slices, tmp / f"p{patient}"), allow_irregular=True)
        scans.append(Scan(f"ctich-{patient}", f"CTICH-{patient}", CENTER, volume, ct_ich.class_labels(slices)))
    return scans


def one_slice(scan: Scan, k: int, labels: np.ndarray | None = None) -> Scan:
    """Slice `k` of a patient's scan as a scan of its own (same patient key: held out together)."""
    v = scan.volume
    volume = Volume(hu=v.hu[k : k + 1], spacing=v.spacing, affine=v.affine, positions=v.positions[k : k + 1],
                    sop_instance_uids=v.sop_instance_uids[k : k + 1])
    lab = scan.labels if labels is None else labels
    return Scan(f"{scan.series_instance_uid}-{k}", scan.patient_key, scan.center, volume,
                None if lab is None else lab[k : k + 1])


def ct_ich_slice_scans(tmp: Path) -> list[Scan]:
    """Every CT-ICH slice as one annotated scan (36 scans of 5 patients)."""
    return [one_slice(s, k) for s in ct_ich_patient_scans(tmp) for k in range(s.volume.hu.shape[0])]


def ge_head() -> Volume | None:
    """The normal GE head CT (no hemorrhage) on a regular grid, as `imaging segment --resample` reads it."""
    if not GE_HEAD.is_dir():
        return None
    from imaging.regrid import regular_grid, regular_volume, slice_step_for_resampling

    received = load_series(sorted(GE_HEAD.glob("*.dcm")), allow_irregular=True)
    grid = regular_grid(received, (slice_step_for_resampling(received), *received.spacing[1:]))
    return regular_volume(received, grid)


def teacher_labels(volume: Volume, cache: Path) -> np.ndarray:
    """BLAST-CT's labels (one network, CPU) of `volume`, cached under `cache` by a hash of the HU array."""
    key = hashlib.sha256(np.ascontiguousarray(volume.hu).tobytes()).hexdigest()[:20]
    path = cache / f"blast-ct-1-{key}.npy"
    if path.is_file():
        return np.load(path)
    import torch

    from imaging.deepmedic_inference import open_blast_ct

    labels = open_blast_ct(torch.device("cpu"), 1).segment(volume)[0]
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, labels)
    return labels
