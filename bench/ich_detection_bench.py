"""Scan-level hemorrhage detection: fit the calibration of `biomarkers.ich_probability`, and measure it on real CT.

    python bench/ich_detection_bench.py --fit [--seed 77] [--patients 30]  # -> biomarkers/data/ich_calibration.json
    python bench/ich_detection_bench.py [--model blast-ct|phantom] [--ensemble N] [--limit N]  # real CT

--fit renders a synthetic cohort (seed 77 by default, never the demo's 0) plus normal heads, segments every
series with the phantom model, fits one logistic calibration per class of ln(segmented mL + 0.05) against
whether the truth holds the class (scikit-learn LogisticRegression), and picks the operating point: the
highest threshold on `ich_probability` whose sensitivity on the fit data is at least 0.95 (specificity is
printed beside it).

The measurement on real scans segments each patient's shipped CT-ICH slices (ctstudy/data/ct_ich, 36 slices
of 5 patients, all with hemorrhage by `hemorrhage_diagnosis.csv`) as one series, as they enter the registry, so
that the real-CT model (`--model blast-ct`, BLAST-CT's networks, the default for real DICOM) sees neighbouring
slices where there are any, and the real normal GE head (shared/realct/ge-head-ct) as a whole scan. It prints,
with Wilson 95% intervals (statsmodels):
- sensitivity per CT-ICH slice with hemorrhage (the slice's segmented hemorrhage, labels 1, 2 and 4);
- specificity on the GE scan as a whole, and per 5 mm slab of it through the brain (as thick as a CT-ICH
  slice; slabs of one head, so not independent), and on CT-ICH slices without hemorrhage were any shipped;
at two operating points fixed before any real scan was segmented (OPERATING_POINTS below): `speck` (at least
the lesion speck size of hemorrhage; the operating point for the real-CT model, whose volumes the phantom
calibration was not fitted on) and `calibrated` (the stored phantom-fitted threshold on ich_probability).
"""

from __future__ import annotations

import argparse
import json
import os
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


# Operating points on real CT, fixed before any real scan was segmented (no tuning on the data they are measured on):
# - "speck": a slice (or scan) is called positive when the model segments at least MIN_LESION_ML of hemorrhage
#   in it, the lesion speck size below which biomarkers ignore a component. This is the operating point for the
#   real-CT model: the stored calibration was fitted on the phantom model's volumes and does not belong to it.
# - "calibrated": the stored operating point (ich_probability >= threshold, chosen on phantoms), applied to the
#   slice's or scan's segmented hemorrhage volume, shown beside it.
OPERATING_POINTS = ("speck", "calibrated")
HEMORRHAGE_LABELS = (1, 2, 4)  # IPH, EAH, IVH (vocabulary.labels)


def wilson(k: int, n: int) -> str:
    """'k/n = p (95% CI lo-hi)', Wilson score interval (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return "0/0 (none)"
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return f"{k}/{n} = {k / n:.3f} (95% CI {lo:.3f}-{hi:.3f})"


def per_slice_ml(labels: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Segmented hemorrhage (labels 1, 2, 4) per slice, mL."""
    return np.isin(labels, HEMORRHAGE_LABELS).reshape(len(labels), -1).sum(axis=1) * voxel_ml


def measure(model: str, limit: int | None, ensemble: int | None) -> None:
    import tempfile

    from biomarkers.lesions import MIN_LESION_ML
    from ctstudy.ct_ich import (
        ASSUMED_PIXEL_SPACING_MM,
        CT_ICH_DIR,
        SLICE_STEP_MM,
        patient_slices,
        slice_index,
        write_series,
    )

    cal = json.loads(CALIBRATION_PATH.read_text())
    threshold = cal["operating_point"]["threshold"]

    def calls(ml: float) -> dict[str, bool]:
        p = presence_probabilities({"hemorrhage_ml": ml}, cal)["ich_probability"]
        return {"speck": ml >= MIN_LESION_ML, "calibrated": p >= threshold, "ich_probability": p}

    print(f"operating points: speck = segmented hemorrhage >= {MIN_LESION_ML} mL (the lesion speck size; the "
          f"operating point for the real-CT model); calibrated = ich_probability >= {threshold:.4f} "
          f"({cal['operating_point']['rule']}, on phantoms)")
    if model == "blast-ct":
        from imaging.deepmedic_inference import open_blast_ct

        segmenter = open_blast_ct(torch.device("cpu"), ensemble)
    else:
        segmenter = open_segmenter(model, torch.device("cpu"))
    diagnosis = pd.read_csv(CT_ICH_DIR / "hemorrhage_diagnosis.csv", encoding="utf-8-sig")
    no_bleed = {(int(r.PatientNumber), int(r.SliceNumber)) for r in diagnosis.itertuples() if r.No_Hemorrhage == 1}
    shipped = slice_index()[:limit]
    rows = []
    voxel_ml = SLICE_STEP_MM * ASSUMED_PIXEL_SPACING_MM ** 2 / 1000.0
    with tempfile.TemporaryDirectory(prefix="ich-detection-") as tmp:
        # Each patient's shipped slices as one series, as they enter the registry: the 3D networks see the
        # neighbouring slices where there are any (two patients have contiguous stacks).
        for patient in sorted({s.patient for s in shipped}):
            slices = [s for s in patient_slices(patient) if s in shipped]
            files = write_series(slices, Path(tmp) / str(patient))
            vol = load_series(files, allow_irregular=True)
            t0 = time.perf_counter()
            labels, _ = segmenter.segment(vol)
            seconds = time.perf_counter() - t0
            if len(labels) != len(slices):
                raise SystemExit(f"patient {patient}: {len(labels)} segmented slices for {len(slices)} files")
            for s, ml in zip(slices, per_slice_ml(labels, voxel_ml), strict=True):
                rows.append({"unit": f"CT-ICH {s.patient}/{s.slice}", "set": "CT-ICH slice",
                             "hemorrhage": (s.patient, s.slice) not in no_bleed, "segmented_ml": ml, **calls(ml),
                             "seconds": seconds / len(slices)})
            print(f"  patient {patient}: {len(slices)} slices in {seconds:.0f} s", flush=True)
    if GE_HEAD.is_dir():
        from imaging.regrid import regular_grid, regular_volume, slice_step_for_resampling

        received = load_series(sorted(GE_HEAD.glob("*.dcm")), allow_irregular=True)
        # Irregular slice steps and a tilted gantry: resampled to a regular grid, as `imaging segment --resample`.
        grid = regular_grid(received, (slice_step_for_resampling(received), *received.spacing[1:]))
        vol = regular_volume(received, grid)
        t0 = time.perf_counter()
        labels, _ = segmenter.segment(vol)
        seconds = time.perf_counter() - t0
        vml = float(np.prod(vol.spacing)) / 1000.0
        slice_ml = per_slice_ml(labels, vml)
        rows.append({"unit": "GE normal head (scan)", "set": "GE scan", "hemorrhage": False,
                     "segmented_ml": float(slice_ml.sum()), **calls(float(slice_ml.sum())), "seconds": seconds})
        # Slabs as thick as the CT-ICH slices (5 mm), so that a GE "slice" is judged on the same amount of tissue;
        # only slabs through the brain (at least 5 mL of voxels in 0-80 HU).
        per = max(1, round(SLICE_STEP_MM / vol.spacing[0]))
        brain = ((vol.hu > 0) & (vol.hu < 80)).reshape(len(vol.hu), -1).sum(axis=1) * vml
        n_slabs = 0
        for start in range(0, len(vol.hu) - per + 1, per):
            if brain[start:start + per].sum() < 5.0:
                continue
            ml = float(slice_ml[start:start + per].sum())
            rows.append({"unit": f"GE slab {start}-{start + per - 1}", "set": "GE 5 mm slab", "hemorrhage": False,
                         "segmented_ml": ml, **calls(ml), "seconds": np.nan})
            n_slabs += 1
        print(f"  GE head: {len(vol.hu)} slices ({n_slabs} slabs of 5 mm through the brain) in {seconds:.0f} s",
              flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"model {model}" + (f" ({segmenter.version})" if hasattr(segmenter, "version") else "")
          + f"; load average {os.getloadavg()[0]:.1f}")
    for point in OPERATING_POINTS:
        pos = table[table["hemorrhage"] & (table["set"] == "CT-ICH slice")]
        print(f"[{point}] sensitivity, CT-ICH slices with hemorrhage: {wilson(int(pos[point].sum()), len(pos))}")
        for what in ("CT-ICH slice", "GE scan", "GE 5 mm slab"):
            neg = table[~table["hemorrhage"] & (table["set"] == what)]
            if len(neg) or what != "CT-ICH slice":
                note = " (slabs of one head: not independent)" if what == "GE 5 mm slab" else ""
                print(f"[{point}] specificity, {what} without hemorrhage{note}: "
                      f"{wilson(int((~neg[point]).sum()), len(neg))}")
    if not (~table["hemorrhage"] & (table["set"] == "CT-ICH slice")).any():
        print("No CT-ICH slice without hemorrhage is shipped (all 36 hold hemorrhage): specificity rests on the "
              "GE normal head.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--normals", type=int, default=10)
    ap.add_argument("--model", default="blast-ct", help="blast-ct (the real-CT model) or phantom.")
    ap.add_argument("--limit", type=int, default=None, help="Only the first N CT-ICH slices.")
    ap.add_argument("--ensemble", type=int, default=None, help="blast-ct: networks averaged (default: one).")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.fit:
        fit(args.seed, args.patients, args.normals)
    else:
        measure(args.model, args.limit, args.ensemble)


if __name__ == "__main__":
    main()
