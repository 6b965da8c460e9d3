"""Scan-level hemorrhage detection: fit the calibration of `biomarkers.ich_probability`, and measure it on real CT.

    python bench/ich_detection_bench.py --fit [--seed 77] [--patients 30]  # -> biomarkers/data/ich_calibration.json
    python bench/ich_detection_bench.py [--model phantom|blast-ct] [--limit N]  # sensitivity, specificity, real CT

--fit renders a synthetic cohort (seed 77 by default, never the demo's 0) plus normal heads, segments every
series with the phantom model, fits one logistic calibration per class of ln(segmented mL + 0.05) against
whether the truth holds the class (scikit-learn LogisticRegression), and picks the operating point: the
highest threshold on `ich_probability` whose sensitivity on the fit data is at least 0.95 (specificity is
printed beside it).

The measurement on real scans segments each shipped CT-ICH slice with hemorrhage (ctstudy/data/ct_ich, 36
slices, `hemorrhage_diagnosis.csv` says which have hemorrhage) as a one-slice volume, and the real normal GE
head (shared/realct/ge-head-ct) as a whole scan, and prints sensitivity (CT-ICH slices with hemorrhage) and
specificity (GE scan and any CT-ICH slice without hemorrhage) at the stored operating point. The CT-ICH
slices shipped all hold hemorrhage; the dataset's slices without it are not in the repository, so the
specificity here rests on the GE scan unless more slices are shipped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biomarkers.ich_probability import CALIBRATED_VOLUMES, CALIBRATION_PATH, VOLUME_OFFSET_ML, presence_probabilities
from biomarkers.volume import class_volumes_ml
from imaging.segmenters import open_segmenter
from imaging.volume import Volume, load_series

GE_HEAD = Path("/work/shared/realct/ge-head-ct")
MIN_SENSITIVITY = 0.95


def volume_of(hu: np.ndarray, spacing: tuple[float, float, float]) -> Volume:
    dz, dy, dx = spacing
    affine = np.diag([dx, dy, dz, 1.0])
    positions = np.column_stack([np.zeros(len(hu)), np.zeros(len(hu)), np.arange(len(hu)) * dz])
    return Volume(hu=hu.astype(np.float32), spacing=spacing, affine=affine, positions=positions,
                  sop_instance_uids=tuple(str(i) for i in range(len(hu))))


def segmented_volumes(labels: np.ndarray, spacing) -> dict[str, float]:
    vml = float(np.prod(spacing)) / 1000.0
    return class_volumes_ml(np.bincount(labels.ravel(), minlength=5), vml)


def fit(seed: int, patients: int, normals: int) -> None:
    from sklearn.linear_model import LogisticRegression

    from synthetic.centers import center_profiles
    from synthetic.cohort import simulate_cohort
    from synthetic.phantom import Grid, SeriesSpec, render_series

    segmenter = open_segmenter("phantom", torch.device("cpu"))
    profiles = center_profiles(3)
    by_code = {c.code: c for c in profiles}
    renders = []
    for plan in simulate_cohort(patients, seed, profiles).plans:
        center = by_code[plan.center]
        for t in range(len(plan.scan_days)):
            rng = np.random.default_rng(np.random.SeedSequence([seed, 5, plan.patient_seed, t]))
            renders.append(render_series(plan.series_spec(t, center.noise_sigma()),
                                         Grid.centered(256, center.fov_mm, center.slice_thickness_mm), rng))
    # Normal heads as the synthetic study renders them (basal cisterns drawn).
    renders += [render_series(SeriesSpec(render_cisterns=True), Grid.centered(256, 230.0, 5.0),
                              np.random.default_rng(seed * 100 + k)) for k in range(normals)]
    rows, t0 = [], time.perf_counter()
    for r in renders:
        labels, _ = segmenter.segment(volume_of(np.round(r.hu), r.spacing))
        seg = segmented_volumes(labels, r.spacing)
        truth = segmented_volumes(r.labels, r.spacing)
        rows.append({**{f"seg_{k}": v for k, v in seg.items()}, **{f"truth_{k}": v for k, v in truth.items()}})
        print(f"  {len(rows)}/{len(renders)} series segmented", flush=True)
    table = pd.DataFrame(rows)
    print(f"segmented {len(table)} phantom series in {time.perf_counter() - t0:.0f} s")
    coefficients = {}
    for name, col in CALIBRATED_VOLUMES.items():
        x = np.log(table[f"seg_{col}"].to_numpy() + VOLUME_OFFSET_ML)[:, None]
        y = (table[f"truth_{col}"] >= VOLUME_OFFSET_ML).to_numpy().astype(int)
        if y.min() == y.max():
            raise SystemExit(f"--fit: every series has the same truth for {col}; use more patients")
        model = LogisticRegression(C=1.0).fit(x, y)
        coefficients[name] = {"intercept": float(model.intercept_[0]), "slope": float(model.coef_[0, 0]),
                              "positives": int(y.sum()), "negatives": int((1 - y).sum())}
    cal = {"coefficients": coefficients, "operating_point": {"threshold": 0.5}}
    p = np.array([presence_probabilities({"hemorrhage_ml": v}, cal)["ich_probability"]
                  for v in table["seg_hemorrhage_ml"]])
    y = (table["truth_hemorrhage_ml"] >= VOLUME_OFFSET_ML).to_numpy()
    threshold = 0.5
    for t in sorted(set(np.round(p, 6)), reverse=True):
        if (p[y] >= t).mean() >= MIN_SENSITIVITY:
            threshold = float(t)
            break
    sens, spec = float((p[y] >= threshold).mean()), float((p[~y] < threshold).mean())
    cal["operating_point"] = {"threshold": threshold, "sensitivity_on_fit": sens, "specificity_on_fit": spec,
                              "rule": f"highest threshold with sensitivity >= {MIN_SENSITIVITY} on the fit data"}
    cal["fitted_on"] = {"what": "phantom series segmented by the phantom model (imaging/default_model)",
                        "seed": seed, "patients": patients, "normal_heads": normals, "series": len(table),
                        "volume_offset_ml": VOLUME_OFFSET_ML, "command": "python bench/ich_detection_bench.py --fit"}
    CALIBRATION_PATH.write_text(json.dumps(cal, indent=2) + "\n")
    print(f"operating point: ich_probability >= {threshold:.4f} (fit data: sensitivity {sens:.3f}, "
          f"specificity {spec:.3f}); written to {CALIBRATION_PATH}")


def measure(model: str, limit: int | None) -> None:
    from ctstudy.ct_ich import ASSUMED_PIXEL_SPACING_MM, CT_ICH_DIR, SLICE_STEP_MM, grey_image, hu_of_grey, slice_index

    cal = json.loads(CALIBRATION_PATH.read_text())
    threshold = cal["operating_point"]["threshold"]
    print(f"operating point: ich_probability >= {threshold:.4f} ({cal['operating_point']['rule']})")
    segmenter = open_segmenter(model, torch.device("cpu"))
    diagnosis = pd.read_csv(CT_ICH_DIR / "hemorrhage_diagnosis.csv", encoding="utf-8-sig")
    no_bleed = {(int(r.PatientNumber), int(r.SliceNumber)) for r in diagnosis.itertuples() if r.No_Hemorrhage == 1}
    rows = []
    spacing = (SLICE_STEP_MM, ASSUMED_PIXEL_SPACING_MM, ASSUMED_PIXEL_SPACING_MM)
    for s in slice_index()[:limit]:
        hu = hu_of_grey(grey_image(CT_ICH_DIR / "images" / s.file))[None]
        t0 = time.perf_counter()
        labels, _ = segmenter.segment(volume_of(hu, spacing))
        p = presence_probabilities(segmented_volumes(labels, spacing), cal)
        rows.append({"scan": f"CT-ICH {s.patient}/{s.slice}", "hemorrhage": (s.patient, s.slice) not in no_bleed,
                     "ich_probability": p["ich_probability"], "seconds": time.perf_counter() - t0})
    if GE_HEAD.is_dir():
        from imaging.regrid import regular_grid, regular_volume, slice_step_for_resampling

        received = load_series(sorted(GE_HEAD.glob("*.dcm")), allow_irregular=True)
        # Irregular slice steps and a tilted gantry: resampled to a regular grid, as `imaging segment --resample`.
        grid = regular_grid(received, (slice_step_for_resampling(received), *received.spacing[1:]))
        vol = regular_volume(received, grid)
        t0 = time.perf_counter()
        labels, _ = segmenter.segment(vol)
        p = presence_probabilities(segmented_volumes(labels, vol.spacing), cal)
        rows.append({"scan": "GE normal head", "hemorrhage": False, "ich_probability": p["ich_probability"],
                     "seconds": time.perf_counter() - t0})
    table = pd.DataFrame(rows)
    table["detected"] = table["ich_probability"] >= threshold
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    pos, neg = table[table["hemorrhage"]], table[~table["hemorrhage"]]
    print(f"model {model}: sensitivity {pos['detected'].mean():.3f} ({int(pos['detected'].sum())}/{len(pos)} "
          f"CT-ICH slices with hemorrhage); specificity {(~neg['detected']).mean():.3f} "
          f"({int((~neg['detected']).sum())}/{len(neg)}: {', '.join(neg['scan'])})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--normals", type=int, default=10)
    ap.add_argument("--model", default="phantom")
    ap.add_argument("--limit", type=int, default=None, help="Only the first N CT-ICH slices.")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.fit:
        fit(args.seed, args.patients, args.normals)
    else:
        measure(args.model, args.limit)


if __name__ == "__main__":
    main()
