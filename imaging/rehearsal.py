"""Rehearsal series: labelled phantoms that keep in view what the shipped phantom U-Net already knows while it is
fine-tuned or distilled on a few real scans (`imaging.train.train_model(..., rehearsal=...)`).

Rendered in memory by `synthetic` (the cohort simulator's admission scans, with their truth masks in the
project's label map), at the centers' slice thicknesses and fields of view; nothing is written to disk.
"""

from __future__ import annotations

import numpy as np

from imaging.train import TrainingExample
from synthetic.centers import center_profiles
from synthetic.cohort import simulate_cohort
from synthetic.phantom import Grid, render_series

REHEARSAL_PATIENT_PREFIX = "rehearsal-phantom"


def phantom_examples(n: int, seed: int = 11, matrix: int = 256, centers: int = 3) -> list[TrainingExample]:
    """`n` phantom admission scans with their truth, one per simulated patient, as training examples."""
    if n < 1:
        raise ValueError(f"rehearsal needs at least one phantom, not {n}")
    profiles = {c.code: c for c in center_profiles(centers)}
    out = []
    for k, plan in enumerate(simulate_cohort(n, seed, tuple(profiles.values())).plans):
        center = profiles[plan.center]
        grid = Grid.centered(matrix, center.fov_mm, center.slice_thickness_mm)
        r = render_series(plan.series_spec(0, center.noise_sigma()), grid,
                          np.random.default_rng(np.random.SeedSequence([seed, plan.patient_seed])))
        key = f"{REHEARSAL_PATIENT_PREFIX}-{seed}-{k}"
        out.append(TrainingExample(key, key, r.hu, r.labels))
    return out
