"""A small synthetic lesion study written as real DICOM + truth masks, for imaging tests and training.

Series are rendered by `synthetic.phantom` (exact-volume hematoma/edema truth) with a spread of
lesion sizes (about 1-60 mL), regions, sides, head sizes, yaw and offsets, and 1 in 5 heads
without lesions; written as DICOM under `OUT/dicom/<CENTER>/` and truth masks as
`OUT/truth/masks/<SeriesInstanceUID>.nii.gz` (docs/data-formats.md), so they enter through
`ctstudy registry ingest` like real data.

    python tests/imaging/imaging_study.py OUT --patients 40 --seed 1 --matrix 256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from imaging_dicom_factory import write_ct_series  # noqa: E402

from imaging.volume import write_mask  # noqa: E402
from synthetic.phantom import REGIONS, Grid, HeadShape, Hematoma, SeriesSpec, region_center_mm, render_series  # noqa: E402


def random_spec(rng: np.random.Generator) -> SeriesSpec:
    head = HeadShape().scaled(float(rng.uniform(0.9, 1.08)), fold_phase=float(rng.uniform(0, 6.28)))
    hematomas = []
    if rng.random() > 0.2:
        for _ in range(1 if rng.random() < 0.75 else 2):
            region = str(rng.choice(REGIONS))
            side = "left" if rng.random() < 0.5 else "right"
            cx, cy, cz = region_center_mm(region, side, head)
            jitter = rng.normal(0, 4, 3)
            volume = float(np.exp(rng.uniform(np.log(1.0), np.log(60.0))))
            hematomas.append(Hematoma(
                center_mm=(cx + jitter[0], cy + jitter[1], cz + jitter[2]), volume_ml=volume,
                edema_ml=volume * float(rng.uniform(0.3, 1.5)), density_hu=float(rng.uniform(55, 85)),
                elongation=tuple(float(v) for v in rng.uniform(0.75, 1.3, 3)), shape_seed=int(rng.integers(1 << 30))))
    return SeriesSpec(hematomas=tuple(hematomas), head=head,
                      head_offset_mm=tuple(float(v) for v in rng.normal(0, 4, 3)),
                      head_yaw_deg=float(rng.uniform(-10, 10)), noise_sigma_hu=float(rng.uniform(3, 6)))


def write_study(out: Path, patients: int, seed: int, matrix: int = 256, slice_thickness: float = 5.0,
                center: str = "XX01") -> list[dict]:
    """Write the study; returns one record per series (uid, patient, true volumes)."""
    rng = np.random.default_rng(seed)
    records = []
    for p in range(patients):
        spec = random_spec(rng)
        grid = Grid.centered(matrix=matrix, fov_mm=230.0, slice_thickness=slice_thickness)
        r = render_series(spec, grid, rng)
        pid = f"{center}-S{seed}-{p:04d}"
        series_uid = f"2.25.{seed}{p:05d}{int(rng.integers(1 << 40))}"
        positions = [tuple(v) for v in grid.slice_positions()]
        write_ct_series(out / "dicom" / center / pid / "ct", r.hu, spacing=grid.spacing, positions=positions,
                        series_uid=series_uid, patient_id=pid)
        write_mask(out / "truth" / "masks" / f"{series_uid}.nii.gz", r.labels, grid.affine)
        records.append({"series_instance_uid": series_uid, "patient_id": pid, "hematoma_ml": r.hematoma_ml,
                        "edema_ml": r.edema_ml})
    return records


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--center", default="XX01")
    a = ap.parse_args()
    recs = write_study(a.out, a.patients, a.seed, a.matrix, center=a.center)
    print(f"{len(recs)} series written under {a.out}")
