"""Time of all per-series biomarkers: per 512x512x40 volume, and per 1,000 series of 256x256x32.

Prints medians of repeats, a per-stage breakdown, and the ratio against a naive way measured in
the same run: the same features with tissue masks and midline on the full-resolution grid
(stride 1) and the per-lesion statistics over the whole volume instead of the lesions' bounding
box. The 1,000-series figure is extrapolated from a measured sample of distinct phantoms (stated
in the output). The machine is shared: the load average is printed with the figures.

The CT classifications' share: all features with and without the parts the classifications add
(epidural/subdural split, basal cisterns, the Marshall/Rotterdam/Helsinki scores and the scan-level
hemorrhage probabilities), on a 512x512x40 scan with a hematoma, an epidural and IVH; the added time
is printed as a percentage of the rest (target < 10 %). `biomarkers extract` also reads the DICOM
files and the mask, so the share of its time is smaller still.

    .venv/bin/python bench/biomarkers_bench.py [--repeats 7] [--sample 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from scipy import ndimage

from biomarkers import lesions as lesions_mod
from biomarkers import series as series_mod
from biomarkers.series import FeatureSettings, series_features
from synthetic import phantom as P


def timed(fn, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up: imports, caches, page faults
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def naive_lesion_table(labels, hu, spacing, affine, plane, brain_box_mm, min_lesion_ml, connectivity):  # noqa: ANN001
    """The per-lesion table computed on the whole volume (no bounding-box crop)."""
    full = (slice(0, labels.shape[0]), slice(0, labels.shape[1]), slice(0, labels.shape[2]))
    original = lesions_mod.bounding_box
    lesions_mod.bounding_box = lambda mask, pad=0: full if mask.any() else None
    try:
        return original_lesion_table(labels, hu, spacing, affine, plane, brain_box_mm, min_lesion_ml, connectivity)
    finally:
        lesions_mod.bounding_box = original


original_lesion_table = lesions_mod.lesion_table


def case_512(seed: int = 0) -> P.RenderedSeries:
    spec = P.SeriesSpec(hematomas=(P.hematoma(30, "left", "frontal", shape_seed=seed),
                                   P.hematoma(8, "right", "temporal", shape_seed=seed + 1)))
    grid = P.Grid.centered(512, 230.0, 3.3, z_range_mm=(-52.0, 78.0))  # 40 slices
    return P.render_series(spec, grid, np.random.default_rng(seed))


def case_256(seed: int) -> P.RenderedSeries:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3))
    regions = list(P.REGIONS)
    hems = tuple(P.hematoma(float(rng.uniform(2, 60)), str(rng.choice(["left", "right"])),
                            regions[int(rng.integers(len(regions)))], shape_seed=seed * 10 + i) for i in range(n))
    grid = P.Grid.centered(256, 230.0, 4.2, z_range_mm=(-52.0, 80.0))  # 32 slices
    return P.render_series(P.SeriesSpec(hematomas=hems), grid, np.random.default_rng(seed))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sample", type=int, default=12)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    r = case_512()
    print(f"512 case: shape (z,y,x) {r.hu.shape}, spacing {tuple(round(s, 3) for s in r.spacing)} mm, "
          f"{len(r.lesions)} hematomas")
    fast = timed(lambda: series_features(r.hu, r.labels, r.spacing, r.affine), args.repeats)
    naive_settings = FeatureSettings(tissue_pixel_mm=0.0)  # stride 1: tissue masks on all 512x512 pixels

    def naive() -> None:
        series_mod.lesion_table = naive_lesion_table
        try:
            series_features(r.hu, r.labels, r.spacing, r.affine, naive_settings)
        finally:
            series_mod.lesion_table = original_lesion_table

    slow = timed(naive, max(3, args.repeats // 2))
    print(f"all per-series features, 512x512x40: median {fast:.3f} s over {args.repeats} repeats "
          f"(target < 0.5 s); naive full-grid way {slow:.3f} s: {slow / fast:.1f}x faster")

    # Stage breakdown on the same volume (medians), to show where the time goes.
    from biomarkers.midline import ideal_midline_plane, lateral_ventricles
    from biomarkers.tissue import inplane_stride, tissue_masks

    stride = inplane_stride(r.spacing)
    tm = tissue_masks(r.hu, r.labels, stride)
    plane = ideal_midline_plane(tm.intracranial, stride, r.affine, r.labels.shape)
    stages = {
        "label bincount (volumes)": lambda: np.bincount(r.labels.ravel(), minlength=3),
        f"tissue masks (stride {stride})": lambda: tissue_masks(r.hu, r.labels, stride),
        "midline plane": lambda: ideal_midline_plane(tm.intracranial, stride, r.affine, r.labels.shape),
        "lateral ventricles": lambda: lateral_ventricles(tm.csf, tm.intracranial, plane, stride, r.spacing),
        "lesion table (bounding box)": lambda: original_lesion_table(r.labels, r.hu, r.spacing, r.affine, plane,
                                                                     None, 0.05, 26),
        "3D labelling of the whole volume (reference)": lambda: ndimage.label(r.labels == 1, np.ones((3, 3, 3))),
    }
    for name, fn in stages.items():
        print(f"  {name}: {timed(fn, args.repeats) * 1000:.0f} ms")

    sample = [case_256(seed) for seed in range(args.sample)]
    per = [timed(lambda c=c: series_features(c.hu, c.labels, c.spacing, c.affine), 3) for c in sample]
    med = statistics.median(per)
    print(f"256x256x32: median {med * 1000:.0f} ms per series over a sample of {len(sample)} distinct phantoms "
          f"(0-2 hematomas each, 3 repeats each); 1,000 series extrapolated: {med * 1000:.0f} s of features "
          f"on one core (DICOM reading and mask decoding not included)")
    scores_share(args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def scores_share(repeats: int) -> None:
    """All features with and without the CT classifications' parts (see the module doc)."""
    spec = P.SeriesSpec(hematomas=(P.hematoma(30, "left", "frontal"),),
                        extra_axial=P.ExtraAxial("right", 25.0, shape="lentiform"),
                        intraventricular=P.Intraventricular(3.0))
    r = P.render_series(spec, P.Grid.centered(512, 230.0, 3.3, z_range_mm=(-52.0, 78.0)), np.random.default_rng(1))
    added = ("epidural_subdural_ml", "basal_cisterns", "ct_score_features", "measured_components",
             "presence_probabilities")
    added = tuple(name for name in added if hasattr(series_mod, name))
    originals = {name: getattr(series_mod, name) for name in added}

    def without() -> None:
        for name in added:
            setattr(series_mod, name, lambda *a, **k: {})
        try:
            series_features(r.hu, r.labels, r.spacing, r.affine)
        finally:
            for name, fn in originals.items():
                setattr(series_mod, name, fn)

    # Alternated, and the fastest of each kept: on a shared machine the load changes between runs, and the
    # fastest run is the one least disturbed by it.
    full = lambda: series_features(r.hu, r.labels, r.spacing, r.affine)  # noqa: E731
    full(), without()
    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(repeats):
        for key, fn in (("with", full), ("without", without)):
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    with_all, base = min(times["with"]), min(times["without"])
    print(f"CT classifications ({', '.join(added)}): all features {with_all:.3f} s, without them {base:.3f} s "
          f"(fastest of {repeats}, alternated): they add {100 * (with_all - base) / base:.1f} % (target < 10 %)")


if __name__ == "__main__":
    main()
