"""Per-class segmentation accuracy of a model on a synthetic study's series, rendered in memory.

The series are those of `ctstudy synth --seed S` (same patients, grids, noise draws; HU rounded to
integers as the DICOM files store them), so with the defaults this is the demo study (seed 0,
which the shipped phantom model never saw) without writing or ingesting 700 MB of DICOM.
Prints, per class of the label map and for any hemorrhage (labels 1, 2, 4): series with the class,
mean and SD Dice over them, median absolute volume error; and IVH detection (present or not).

    python bench/label_accuracy.py [--seed 0] [--patients 60] [--model phantom|PATH] [--max-series N] [--csv OUT]

`--csv` keeps the per-series rows as they come (a long run can be summarised part-way with
`--summarise OUT`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from imaging.evaluation import CLASSES, series_metrics
from imaging.segmenters import open_segmenter
from imaging.volume import Volume
from synthetic.centers import center_profiles
from synthetic.cohort import simulate_cohort
from synthetic.phantom import Grid, render_series


def rendered_series(seed: int, patients: int, centers: int, matrix: int = 256):
    """(label, RenderedSeries) of every CT series of the synthetic study, as generate_study renders them."""
    profiles = center_profiles(centers)
    by_code = {c.code: c for c in profiles}
    for plan in simulate_cohort(patients, seed, profiles).plans:
        center = by_code[plan.center]
        for t in range(len(plan.scan_days)):
            spec = plan.series_spec(t, center.noise_sigma())
            grid = Grid.centered(matrix, center.fov_mm, center.slice_thickness_mm)
            rng = np.random.default_rng(np.random.SeedSequence([seed, 5, plan.patient_seed, t]))
            yield f"{plan.patient_id}/{t}", render_series(spec, grid, rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--centers", type=int, default=5)
    ap.add_argument("--model", default="phantom")
    ap.add_argument("--max-series", type=int, default=None)
    ap.add_argument("--csv", default=None, help="Write the per-series rows here as they come.")
    ap.add_argument("--summarise", default=None, help="Only print the summary of such a CSV.")
    args = ap.parse_args()
    if args.summarise:
        summarise(pd.read_csv(args.summarise), f"{args.summarise}")
        return
    segmenter = open_segmenter(args.model, torch.device("cpu"))
    rows, t0 = [], time.perf_counter()
    for n, (name, r) in enumerate(rendered_series(args.seed, args.patients, args.centers)):
        if args.max_series is not None and n >= args.max_series:
            break
        z = r.hu.shape[0]
        positions = np.array([r.affine @ np.array([0.0, 0.0, k, 1.0]) for k in range(z)])[:, :3]
        volume = Volume(hu=np.round(r.hu).astype(np.float32), spacing=r.spacing, affine=r.affine,
                        positions=positions, sop_instance_uids=tuple(f"1.2.3.{k}" for k in range(z)))
        pred, _ = segmenter.segment(volume)
        for m in series_metrics(pred, r.labels, r.spacing, r.grid.voxel_volume_ml):
            rows.append({"series": name, **m})
        if args.csv:
            pd.DataFrame(rows).to_csv(args.csv, index=False)
    df = pd.DataFrame(rows)
    summarise(df, f"model {segmenter.name} {segmenter.version[:16]}; synthetic study seed {args.seed}, "
                  f"in {time.perf_counter() - t0:.0f} s")


def summarise(df: pd.DataFrame, title: str) -> None:
    print(f"{title}: {df['series'].nunique()} series")
    print(f"{'class':<12}{'series with it':>16}{'Dice mean':>11}{'Dice SD':>9}{'median |dV| mL':>16}"
          f"{'false-positive series':>23}")
    for c in CLASSES:
        g = df[df["class"] == c]
        has = g[g["true_ml"] > 0]
        fp = int(((g["true_ml"] == 0) & (g["pred_ml"] > 0)).sum())
        print(f"{c:<12}{len(has):>16}{has['dice'].mean():>11.3f}{has['dice'].std(ddof=1):>9.3f}"
              f"{has['abs_volume_error_ml'].median():>16.2f}{fp:>23}")
    ivh = df[df["class"] == "ivh"]
    truth, found = ivh["true_ml"] >= 0.05, ivh["pred_ml"] >= 0.05
    print(f"IVH present (>= 0.05 mL): sensitivity {int((truth & found).sum())}/{int(truth.sum())}, "
          f"specificity {int((~truth & ~found).sum())}/{int((~truth).sum())}")


if __name__ == "__main__":
    main()
