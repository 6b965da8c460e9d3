"""Adapting the fast U-Net on real CT: the 36 CT-ICH slices (5 patients) as one center's annotated scans.

Each patient's slices are one scan; the hemorrhage mask is labelled with the slice's type from
`hemorrhage_diagnosis.csv` (epidural and subdural: extra-axial; intraparenchymal; intraventricular), and
with `UNANNOTATED` where a slice holds several types or subarachnoid blood (no class of the label map), so
the loss skips what the public masks cannot tell apart. Annotated patients are held out as `imaging adapt`
holds them out (seeded), and the held-out pooled Dice of the starting model and the adapted one is printed
with the CPU seconds.

    python bench/adapt_bench.py [--from phantom|PATH] [--seed 7] [--epochs 6] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ctstudy import ct_ich
from imaging.adapt import AdaptOptions, Scan, adapt
from imaging.inference import UNetSegmenter
from imaging.model import DEFAULT_MODEL_PATH, load_model
from imaging.train import TrainingConfig
from imaging.volume import load_series
from vocabulary.labels import EAH, IPH, IVH, UNANNOTATED

TYPE_CLASS = {"Epidural": EAH, "Subdural": EAH, "Intraparenchymal": IPH, "Intraventricular": IVH}


def ct_ich_scans(tmp: Path) -> list[Scan]:
    scans = []
    for patient in sorted({s.patient for s in ct_ich.slice_index()}):
        slices = ct_ich.patient_slices(patient)
        volume = load_series(ct_ich.write_series(slices, tmp / f"p{patient}"), allow_irregular=True)
        blood = ct_ich.truth_masks(slices)
        labels = np.zeros(blood.shape, np.uint8)
        for k, s in enumerate(slices):
            kinds = {TYPE_CLASS.get(t, UNANNOTATED) for t in s.types if t in TYPE_CLASS or t == "Subarachnoid"}
            labels[k][blood[k]] = kinds.pop() if len(kinds) == 1 else UNANNOTATED
        scans.append(Scan(f"ctich-{patient}", f"CTICH-{patient}", "CTICH", volume, labels))
    return scans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", default="phantom", help="phantom or a U-Net checkpoint")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--holdout-fraction", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    initial = load_model(DEFAULT_MODEL_PATH if a.start == "phantom" else Path(a.start))
    device = torch.device("cpu")

    def segmenter(model):  # noqa: ANN001, ANN202
        unet = UNetSegmenter(model, device)
        return lambda volume: unet.segment(volume)[0]

    with tempfile.TemporaryDirectory() as tmp:
        scans = ct_ich_scans(Path(tmp))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = adapt(initial, scans, segmenter, AdaptOptions(
            holdout_fraction=a.holdout_fraction, seed=a.seed,
            training=TrainingConfig(epochs=a.epochs, steps_per_epoch=a.steps, batch_size=8, lr=a.lr)), device)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    table = result.per_class.pivot_table(index="class", columns="comparison", values="dice_pooled", sort=False)
    print(table.reindex(columns=["before", "after"]).round(3).to_string())
    print(f"held out: {result.card['data']['held_out_series']}; trained on "
          f"{result.card['data']['annotated_training_series']} annotated scans")
    print(f"score before {result.score_before:.3f}, after {result.score_after:.3f}: "
          f"{'better' if result.improved else 'not better'}; {cpu:.0f} CPU s, {wall:.0f} s wall, "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
