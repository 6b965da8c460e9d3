"""Learning curve of `imaging adapt` on real CT: held-out Dice against the number of annotated scans.

Real CT: a scan here is one CT-ICH slice (36 slices of 5 patients; `bench/realct_scans.py` says how each slice's
hemorrhage is labelled). The held-out patients are fixed (`--held-out`, default CT-ICH 77 and 79: drawn by
`imaging adapt`'s own hold-out with seed 7); for each N the N annotated scans are drawn, seeded, round-robin
over the other patients' slices (so that the validation split always has a patient), and the starting model is
adapted on them with `imaging adapt`'s defaults (`--epochs`/`--steps` to shorten). Prints, per N, the pooled
Dice on the held-out patients before and after, per class and for any hemorrhage, the CPU seconds and wall
time of adapting, and the load average.

`--phantoms`: the same on phantoms from a scanner unlike the one the phantom U-Net learned from (thin noisy
slices, basal cisterns rendered); a scan is one patient's series, the held-out patients the last
`--held-out-phantoms` rendered.

    python bench/adapt_curve_bench.py [--from phantom|PATH] [--n 2,5,10,20] [--held-out 77,79] [--png PATH]
    python bench/adapt_curve_bench.py --phantoms [--n 2,5,10,20] [--held-out-phantoms 6] [--png PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realct_scans import ct_ich_slice_scans  # noqa: E402

from imaging.adapt import AdaptOptions, adapt  # noqa: E402
from imaging.inference import UNetSegmenter  # noqa: E402
from imaging.model import DEFAULT_MODEL_PATH, load_model  # noqa: E402


def round_robin(scans: list, n: int, seed: int) -> list:
    """`n` scans drawn one patient at a time in turn (patients and their slices in a seeded order)."""
    rng = np.random.default_rng(seed)
    by_patient: dict[str, list] = {}
    for s in scans:
        by_patient.setdefault(s.patient_key, []).append(s)
    queues = [list(rng.permutation(len(v))) for v in by_patient.values()]
    lists = list(by_patient.values())
    order = list(rng.permutation(len(lists)))
    out: list = []
    while len(out) < n and any(queues):
        for i in order:
            if queues[i] and len(out) < n:
                out.append(lists[i][queues[i].pop()])
    return out


# The shifted scanner of the phantom curve: thin slices, a noisy low-dose protocol with coarse noise grain, and the
# basal cisterns rendered (the shipped phantom model never saw them and reads their CSF as edema).
SHIFTED_NOISE_HU, SHIFTED_GRAIN_PX, SHIFTED_SLICE_MM = 10.0, 1.4, 2.5
REGIONS = ("frontal", "temporal", "parietal", "occipital", "basal_ganglia")


def shifted_scanner_grid(matrix: int):  # noqa: ANN201 - synthetic.phantom.Grid, imported where used
    """The shifted scanner's grid: `matrix` pixels over 230 mm, 2.5 mm slices from -30 to 60 mm."""
    from synthetic import phantom as P

    return P.Grid.centered(matrix, 230.0, SHIFTED_SLICE_MM, z_range_mm=(-30.0, 60.0))


def shifted_scanner_series(i: int, seed: int, grid, rng: np.random.Generator):  # noqa: ANN001, ANN201
    """Patient `i`'s series from the shifted scanner (`synthetic.phantom.render_series`' result): a hematoma of
    5-50 mL with edema, an extra-axial collection in every other patient."""
    from synthetic import phantom as P

    side = ("left", "right")[i % 2]
    spec = P.SeriesSpec(
        hematomas=(P.hematoma(float(rng.uniform(5, 50)), side, REGIONS[int(rng.integers(len(REGIONS)))],
                              shape_seed=5000 + seed * 100 + i),),
        extra_axial=P.ExtraAxial(("right", "left")[i % 2], float(rng.uniform(8, 30))) if i % 2 else None,
        noise_sigma_hu=SHIFTED_NOISE_HU, noise_correlation_px=SHIFTED_GRAIN_PX, render_cisterns=True)
    return P.render_series(spec, grid, rng)


def phantom_scans(n_patients: int, seed: int, matrix: int) -> list:
    """`n_patients` phantom heads, one series each, from the shifted scanner: hematomas of 5-50 mL with edema,
    half of them with an extra-axial collection; annotated with their truth."""
    from imaging.adapt import Scan
    from imaging.volume import Volume

    rng = np.random.default_rng(seed)
    grid = shifted_scanner_grid(matrix)
    scans = []
    for i in range(n_patients):
        r = shifted_scanner_series(i, seed, grid, rng)
        z = r.hu.shape[0]
        positions = np.array([r.affine @ np.array([0.0, 0.0, k, 1.0]) for k in range(z)])[:, :3]
        volume = Volume(hu=r.hu.astype(np.float32), spacing=r.spacing, affine=r.affine, positions=positions,
                        sop_instance_uids=tuple(f"2.25.{seed}.{i}.{k}" for k in range(z)))
        scans.append(Scan(f"2.25.{seed}.{i}", f"PH-{i:03d}", "SHIFTED", volume, r.labels))
    return scans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", default="phantom", help="phantom or a U-Net checkpoint")
    ap.add_argument("--n", default="2,5,10,20")
    ap.add_argument("--held-out", default="77,79", help="CT-ICH patient numbers held out")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--png", type=Path, default=None, help="write the curve as a PNG here")
    ap.add_argument("--phantoms", action="store_true",
                    help="phantoms from a shifted scanner instead of CT-ICH: a scan is one patient's series")
    ap.add_argument("--held-out-phantoms", type=int, default=6)
    ap.add_argument("--matrix", type=int, default=128, help="phantom matrix (the network resizes to its grid)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    initial = load_model(DEFAULT_MODEL_PATH if a.start == "phantom" else Path(a.start))
    if a.phantoms:
        n_max = max(int(v) for v in a.n.split(","))
        held = frozenset(f"PH-{i:03d}" for i in range(n_max, n_max + a.held_out_phantoms))
    else:
        held = frozenset(f"CTICH-{p.strip()}" for p in a.held_out.split(","))

    def segmenter(model):  # noqa: ANN001, ANN202
        unet = UNetSegmenter(model, torch.device("cpu"))
        return lambda volume: unet.segment(volume)[0]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scans = (phantom_scans(n_max + a.held_out_phantoms, a.seed, a.matrix) if a.phantoms
                 else ct_ich_slice_scans(Path(tmp)))
        pool = [s for s in scans if s.patient_key not in held]
        held_scans = [s for s in scans if s.patient_key in held]
        for n in (int(v) for v in a.n.split(",")):
            options = AdaptOptions(seed=a.seed, held_out=held)
            t = options.training
            t.epochs, t.steps_per_epoch = a.epochs or t.epochs, a.steps or t.steps_per_epoch
            chosen = round_robin(pool, n, a.seed)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = adapt(initial, chosen + held_scans, segmenter, options, "cpu")
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            table = result.per_class.pivot_table(index="class", columns="comparison", values="dice_pooled")
            row = {"annotated scans": n, "training patients": len({s.patient_key for s in chosen}),
                   "score before": result.score_before, "score after": result.score_after,
                   "best epoch": result.model.metadata["metrics"]["best_epoch"], "CPU s": cpu, "wall s": wall}
            for cls in table.index:
                row[f"{cls} before"], row[f"{cls} after"] = table.loc[cls].get("before"), table.loc[cls].get("after")
            rows.append(row)
            print(pd.DataFrame([row]).round(3).to_string(index=False), flush=True)
    out = pd.DataFrame(rows)
    print(out.round(3).to_string(index=False))
    print(f"held out: {sorted(held)}; load average {os.getloadavg()[0]:.1f}")
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(out["annotated scans"], out["score after"], "o-", label="adapted")
        ax.axhline(out["score before"].iloc[0], ls="--", color="grey", label="starting model")
        ax.set_xlabel("annotated scans (phantom series)" if a.phantoms else "annotated scans (CT-ICH slices)")
        ax.set_title(f"imaging adapt, {len(held)} phantom patients of a shifted scanner held out" if a.phantoms
                     else "imaging adapt on real CT, patients 77 and 79 held out", fontsize=9)
        ax.set_ylabel("held-out Dice (pooled)")
        ax.set_ylim(0, 1)
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.png, dpi=120)


if __name__ == "__main__":
    main()
