"""The committed default model on phantoms it never saw: a small version of issue 4's accuracy targets.

The full check is `ctstudy imaging evaluate --against truth-dir` on a whole synthetic study of
another seed (README, Imaging); this one renders eight series in memory (two slice thicknesses,
both sides, four regions, 2-60 mL) and runs the shipped model on the CPU in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from imaging.abc2 import abc2_ml, largest_lesion
from imaging.evaluation import dice
from imaging.inference import segment_volume
from imaging.model import load_model
from imaging.volume import Volume
from synthetic.phantom import single_hematoma_series

# (volume mL, side, region, slice thickness mm); shape seeds 900+ were never used for training.
CASES = [
    (2.5, "left", "frontal", 5.0),
    (6.0, "right", "temporal", 5.0),
    (12.0, "left", "parietal", 2.5),
    (18.0, "right", "basal_ganglia", 5.0),
    (25.0, "left", "occipital", 5.0),
    (35.0, "right", "frontal", 2.5),
    (45.0, "left", "temporal", 5.0),
    (60.0, "right", "parietal", 5.0),
]


@pytest.fixture(scope="module")
def results() -> list[dict]:
    model = load_model()
    out = []
    for i, (ml, side, region, thickness) in enumerate(CASES):
        r = single_hematoma_series(ml, side, region, slice_thickness=thickness, matrix=256, seed=900 + i)
        z = r.hu.shape[0]
        positions = np.array([r.affine @ np.array([0.0, 0.0, k, 1.0]) for k in range(z)])[:, :3]
        volume = Volume(hu=r.hu.astype(np.float32), spacing=r.spacing, affine=r.affine, positions=positions,
                        sop_instance_uids=tuple(f"1.2.3.{k}" for k in range(z)))
        pred = segment_volume(volume, model, device="cpu")
        vox = r.grid.voxel_volume_ml
        true_ml = float((r.labels == 1).sum()) * vox
        out.append({
            "dice_hematoma": dice(pred == 1, r.labels == 1),
            "dice_edema": dice(pred == 2, r.labels == 2),
            "volume_error_ml": abs(float((pred == 1).sum()) * vox - true_ml),
            "abc2_error_ml": abs(abc2_ml(largest_lesion(r.labels == 1), r.spacing) - true_ml),
        })
    return out


def test_default_model_meets_the_dice_targets_on_unseen_phantoms(results: list[dict]) -> None:
    assert np.mean([r["dice_hematoma"] for r in results]) >= 0.85
    assert np.mean([r["dice_edema"] for r in results]) >= 0.70


def test_default_model_volumes_are_closer_than_abc2(results: list[dict]) -> None:
    errors = [r["volume_error_ml"] for r in results]
    assert np.median(errors) < 1.0
    assert np.mean(errors) < np.mean([r["abc2_error_ml"] for r in results])
