"""Scan-level hemorrhage detection: fit each segmentation model's calibration of `biomarkers.ich_probability`,
and measure it on real CT.

    python bench/ich_detection_bench.py --fit --model phantom [--seed 77] [--patients 30]
        # -> biomarkers/data/ich_calibration_unet2d.json
    python bench/ich_detection_bench.py --fit --model blast-ct [--cache CSV] [--refresh]
        # -> biomarkers/data/ich_calibration_blast-ct.json
    python bench/ich_detection_bench.py [--model blast-ct|phantom] [--ensemble N] [--limit N] [--cache CSV]

--fit --model phantom renders a synthetic cohort (seed 77 by default, never the demo's 0) plus normal heads,
segments every series with the phantom model, fits one logistic calibration per class of ln(segmented mL +
0.05) against whether the truth holds the class (scikit-learn LogisticRegression), and picks the operating
point: the highest threshold on `ich_probability` whose sensitivity on the fit data is at least 0.95.

The real units: each patient's shipped CT-ICH slices (ctstudy/data/ct_ich, 36 slices of 5 patients, all with
hemorrhage by `hemorrhage_diagnosis.csv`) segmented as one series, as they enter the registry, so that the
3D networks see neighbouring slices where there are any, each slice's class volumes read from its slice of the
mask; and the real normal GE head (shared/realct/ge-head-ct) segmented as a whole scan, with the volumes of
the scan and of each 5 mm slab through the brain (as thick as a CT-ICH slice). Segmenting them takes minutes
with BLAST-CT, so the table of per-unit class volumes is cached (`--cache`, default under
$CTSTUDY_BENCH_CACHE or the temp folder; tests/data/ich_units_blast_ct.csv is BLAST-CT's) and read from
there by the next run.

--fit --model blast-ct fits BLAST-CT's calibration on those units (`biomarkers.ich_calibration_fit`: CT-ICH
slices positive, GE slabs negative, a MAP log-volume logistic, cross-validated, operating point by a stated
rule) and prints per class, the operating point, the cross-validated sensitivity and specificity with Wilson
95% intervals, and the Brier scores.

Without --fit it prints, per unit and with Wilson 95% intervals (statsmodels), sensitivity per CT-ICH slice
with hemorrhage and specificity on the GE scan as a whole and per 5 mm slab (slabs of one head, so not
independent), at the `speck` operating point and at the model's own calibrated one (OPERATING_POINTS below).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biomarkers.ich_probability import (
    CALIBRATED_VOLUMES,
    VOLUME_OFFSET_ML,
    calibration_for,
    calibration_path,
    presence_probabilities,
)
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


def fit_phantom(seed: int, patients: int, normals: int) -> None:
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
                        "volume_offset_ml": VOLUME_OFFSET_ML,
                        "command": "python bench/ich_detection_bench.py --fit --model phantom"}
    cal = {"model": {"name": segmenter.name, "version": segmenter.version, "spec": "phantom"}, **cal}
    path = calibration_path(segmenter.name)
    path.write_text(json.dumps(cal, indent=2) + "\n")
    print(f"operating point: ich_probability >= {threshold:.4f} (fit data: sensitivity {sens:.3f}, "
          f"specificity {spec:.3f}); written to {path}")


# Operating points on real CT:
# - "speck": a slice (or scan) is called positive when the model segments at least MIN_LESION_ML of hemorrhage
#   in it, the lesion speck size below which biomarkers ignore a component; fixed before any real scan was
#   segmented.
# - "calibrated": the model's own calibration (ich_probability >= its stored threshold), where it has one.
#   For BLAST-CT that calibration is fitted on these same units (its leave-one-patient-out figures are printed by
#   --fit); the figures here are on the fit data.
OPERATING_POINTS = ("speck", "calibrated")


def wilson(k: int, n: int) -> str:
    """'k/n = p (95% CI lo-hi)', Wilson score interval (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return "0/0 (none)"
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return f"{k}/{n} = {k / n:.3f} (95% CI {lo:.3f}-{hi:.3f})"


def measure(model: str, limit: int | None, ensemble: int | None, cache: Path | None, refresh: bool) -> None:
    from biomarkers.lesions import MIN_LESION_ML

    table = cached_units(model, limit, ensemble, cache, refresh)
    name, version = str(table["model"].iloc[0]), str(table["model_version"].iloc[0])
    cal, reason = calibration_for(name, version)
    threshold = cal["operating_point"]["threshold"] if cal else float("nan")
    probs = [presence_probabilities(r._asdict(), cal)["ich_probability"] if cal else float("nan")
             for r in table[["hemorrhage_ml"]].itertuples(index=False)]
    table = table.assign(ich_probability=probs, speck=table["hemorrhage_ml"] >= MIN_LESION_ML,
                         calibrated=np.asarray(probs) >= threshold)
    table["hemorrhage"] = table["hemorrhage"].astype(str).str.lower().isin(["true", "1"])
    print(f"operating points: speck = segmented hemorrhage >= {MIN_LESION_ML} mL (the lesion speck size); "
          + (f"calibrated = ich_probability >= {threshold:.4f} ({cal['operating_point']['rule']})" if cal
             else f"calibrated: none ({reason})"))
    shown = ["unit", "set", "types", "hemorrhage", *UNIT_VOLUMES, "ich_probability", "speck", "calibrated", "seconds"]
    with pd.option_context("display.max_rows", None, "display.width", 220):
        print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"model {name} {version[:12]}; load average {os.getloadavg()[0]:.1f}")
    for point in OPERATING_POINTS if cal else OPERATING_POINTS[:1]:
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


def fit_real(model: str, ensemble: int | None, cache: Path | None, refresh: bool, out: Path | None) -> None:
    """Fit the model's calibration on the real units (segmented once, then read from the cache) and write it."""
    from biomarkers.ich_calibration_fit import (
        MIN_SENSITIVITY,
        PRIOR_SD,
        checked_units,
        fit_real_calibration,
        log_volume,
        map_logistic,
        truth,
    )

    table = cached_units(model, None, ensemble, cache, refresh)
    name, version = str(table["model"].iloc[0]), str(table["model_version"].iloc[0])
    cal = fit_real_calibration(table, name, version)
    units = checked_units(table)
    print(f"model {name} {version[:12]}: {cal['fitted_on']['units']} units of {cal['fitted_on']['patients']} "
          f"patients (the normal head is one); prior N(mean, {PRIOR_SD}^2) centred on "
          f"({cal['prior']['intercept_mean']}, {cal['prior']['slope_mean']})")
    for k, c in cal["coefficients"].items():
        ev = cal["evaluation"][k]
        if c is None:
            print(f"  {k}: no calibration ({ev['reason']})")
            continue
        print(f"  {k}: intercept {c['intercept']:.3f}, slope {c['slope']:.3f} ({c['positives']} positive, "
              f"{c['negatives']} negative units); Brier cross-validated {ev['brier_cv']:.3f}, "
              f"on the fit data {ev['brier_fit']:.3f}")
    op, ev = cal["operating_point"], cal["evaluation"]["ich_probability"]
    print(f"operating point: ich_probability >= {op['threshold']:.4f} ({op['rule']})")

    def shown(ev: dict, key: str) -> str:
        (k, n), (lo, hi) = ev[key], ev[f"{key}_ci"]
        return f"{k}/{n} = {k / n:.3f} (95% CI {lo:.3f}-{hi:.3f})"

    print(f"cross-validated at it (CT-ICH patients left out whole, GE slabs one at a time): sensitivity "
          f"{shown(ev, 'sensitivity')}, specificity (GE slabs, one head: optimistic) {shown(ev, 'specificity')}; "
          f"on the fit data {op['sensitivity_on_fit']:.3f} / {op['specificity_on_fit']:.3f}")
    strict = cal["evaluation"]["strict_leave_one_patient_out"]
    print(f"strict leave-one-patient-out (the GE head left out whole: no negative unit left to fit on): "
          f"sensitivity {shown(strict, 'sensitivity')}, specificity {shown(strict, 'specificity')}, "
          f"Brier {strict['brier']:.3f}")
    # Per CT-ICH class: how many slices holding it the calibrated call finds (fit on all units).
    a, b = cal["coefficients"]["ich_probability"]["intercept"], cal["coefficients"]["ich_probability"]["slope"]
    called = 1 / (1 + np.exp(-(a + b * log_volume(units["hemorrhage_ml"])))) >= op["threshold"]
    for cls in ("Intraparenchymal", "Epidural", "Subdural", "Intraventricular", "Subarachnoid"):
        has = units["types"].str.split("+").apply(lambda ts, c=cls: c in ts).to_numpy(bool)
        if has.any():
            print(f"  slices with {cls}: {int(called[has].sum())}/{int(has.sum())} called")
    x, y = log_volume(units["hemorrhage_ml"]), truth(units, "ich_probability")
    whole = table[table["set"] == "GE scan"]
    for r in whole.itertuples():
        p = 1 / (1 + np.exp(-(a + b * log_volume(r.hemorrhage_ml))))
        print(f"  GE normal head as a whole scan: {r.hemorrhage_ml:.3f} mL segmented, ich_probability {p:.3f} "
              f"({'called positive' if p >= op['threshold'] else 'called negative'})")
    from biomarkers.ich_calibration_fit import cv_groups, lopo_probabilities, operating_threshold, rates

    flat = {"prior_mean": (0.0, 0.0), "prior_sd": 2.5}
    p_flat = lopo_probabilities(x, y, cv_groups(units), **flat)
    t_flat = operating_threshold(p_flat, y, MIN_SENSITIVITY)
    r = rates(p_flat, y, t_flat)
    print(f"for comparison, a prior centred on 0 (sd 2.5): cross-validated at its threshold {t_flat:.4f}: "
          f"sensitivity {r['sensitivity'][0]}/{r['sensitivity'][1]}, specificity {r['specificity'][0]}/"
          f"{r['specificity'][1]}; coefficients on all units {map_logistic(x, y, **flat)}")
    path = out or calibration_path(name)
    path.write_text(json.dumps(cal, indent=2) + "\n")
    print(f"written to {path}; load average {os.getloadavg()[0]:.1f}")


UNIT_VOLUMES = ("iph_ml", "eah_ml", "ivh_ml", "edema_ml", "hemorrhage_ml")


def default_cache(model: str, ensemble: int | None) -> Path:
    """Where the segmented volumes of the real units are kept between runs (BLAST-CT takes minutes a scan)."""
    root = Path(os.environ.get("CTSTUDY_BENCH_CACHE", Path(tempfile.gettempdir()) / "ctstudy-bench-cache"))
    return root / f"ich_units_{model}{'' if ensemble is None else f'_x{ensemble}'}.csv"


def per_slice_volumes(labels: np.ndarray, voxel_ml: float) -> list[dict[str, float]]:
    """Segmented volume of each class (and hemorrhage, labels 1, 2, 4) per slice, mL."""
    return [{k: v for k, v in class_volumes_ml(np.bincount(z.ravel(), minlength=5), voxel_ml).items()
             if k in UNIT_VOLUMES} for z in labels]


def segment_units(model: str, limit: int | None, ensemble: int | None) -> pd.DataFrame:
    """Segment the real units and return one row per unit with its class volumes (the cache's content).

    Columns: unit, set ("CT-ICH slice", "GE scan", "GE 5 mm slab"), patient (CT-ICH patient number; "GE"
    for the GE head), hemorrhage (truth), types (CT-ICH `hemorrhage_diagnosis.csv` classes, "+"-joined),
    the UNIT_VOLUMES in mL, seconds, model, model_version.
    """
    from ctstudy.ct_ich import (
        ASSUMED_PIXEL_SPACING_MM,
        CT_ICH_DIR,
        SLICE_STEP_MM,
        patient_slices,
        slice_index,
        write_series,
    )

    if model == "blast-ct":
        from imaging.deepmedic_inference import open_blast_ct

        segmenter = open_blast_ct(torch.device("cpu"), ensemble)
    else:
        segmenter = open_segmenter(model, torch.device("cpu"))
    diagnosis = pd.read_csv(CT_ICH_DIR / "hemorrhage_diagnosis.csv", encoding="utf-8-sig")
    type_columns = ["Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural", "Subdural"]
    types = {(int(r.PatientNumber), int(r.SliceNumber)): "+".join(c for c in type_columns if getattr(r, c) == 1)
             for r in diagnosis.itertuples()}
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
            for s, ml in zip(slices, per_slice_volumes(labels, voxel_ml), strict=True):
                rows.append({"unit": f"CT-ICH {s.patient}/{s.slice}", "set": "CT-ICH slice", "patient": str(s.patient),
                             "hemorrhage": (s.patient, s.slice) not in no_bleed,
                             "types": types.get((s.patient, s.slice), ""), **ml, "seconds": seconds / len(slices)})
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
        slices_ml = pd.DataFrame(per_slice_volumes(labels, vml))
        rows.append({"unit": "GE normal head (scan)", "set": "GE scan", "patient": "GE", "hemorrhage": False,
                     "types": "", **slices_ml.sum().to_dict(), "seconds": seconds})
        # Slabs as thick as the CT-ICH slices (5 mm), so that a GE "slice" is judged on the same amount of tissue;
        # only slabs through the brain (at least 5 mL of voxels in 0-80 HU).
        per = max(1, round(SLICE_STEP_MM / vol.spacing[0]))
        brain = ((vol.hu > 0) & (vol.hu < 80)).reshape(len(vol.hu), -1).sum(axis=1) * vml
        n_slabs = 0
        for start in range(0, len(vol.hu) - per + 1, per):
            if brain[start:start + per].sum() < 5.0:
                continue
            rows.append({"unit": f"GE slab {start}-{start + per - 1}", "set": "GE 5 mm slab", "patient": "GE",
                         "hemorrhage": False, "types": "", **slices_ml.iloc[start:start + per].sum().to_dict(),
                         "seconds": np.nan})
            n_slabs += 1
        print(f"  GE head: {len(vol.hu)} slices ({n_slabs} slabs of 5 mm through the brain) in {seconds:.0f} s",
              flush=True)
    table = pd.DataFrame(rows)
    table["model"] = segmenter.name
    table["model_version"] = segmenter.version
    return table


def cached_units(model: str, limit: int | None, ensemble: int | None, cache: Path | None,
                 refresh: bool = False) -> pd.DataFrame:
    """The units' segmented volumes from `cache` when it holds them, else segmented now and written there."""
    cache = cache or default_cache(model, ensemble)
    if cache.is_file() and not refresh and limit is None:
        print(f"segmented volumes read from {cache} (--refresh to segment again)")
        return pd.read_csv(cache, dtype={"patient": str, "types": str}, keep_default_na=False,
                           na_values=[""]).assign(types=lambda t: t["types"].fillna(""))
    table = segment_units(model, limit, ensemble)
    if limit is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(cache, index=False)
        print(f"segmented volumes written to {cache}")
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="Fit the model's calibration and write it.")
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--normals", type=int, default=10)
    ap.add_argument("--model", default="blast-ct", help="blast-ct (the real-CT model) or phantom.")
    ap.add_argument("--limit", type=int, default=None, help="Only the first N CT-ICH slices (not cached).")
    ap.add_argument("--ensemble", type=int, default=None, help="blast-ct: networks averaged (default: one).")
    ap.add_argument("--cache", type=Path, default=None,
                    help="CSV of the real units' segmented volumes (default: under $CTSTUDY_BENCH_CACHE or the "
                         "temp folder); read when there, written when segmented.")
    ap.add_argument("--refresh", action="store_true", help="Segment the real units again even if cached.")
    ap.add_argument("--out", type=Path, default=None, help="--fit on real units: write the calibration here.")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.fit and args.model == "phantom":
        fit_phantom(args.seed, args.patients, args.normals)
    elif args.fit:
        fit_real(args.model, args.ensemble, args.cache, args.refresh, args.out)
    else:
        measure(args.model, args.limit, args.ensemble, args.cache, args.refresh)


if __name__ == "__main__":
    main()
