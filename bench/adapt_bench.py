"""Adapting the fast U-Net on real CT: the 36 CT-ICH slices (5 patients) as one center's annotated scans.

Each patient's slices are one scan, labelled as `bench/realct_scans.py` says. Annotated patients are held
out as `imaging adapt` holds them out (seeded), and the held-out pooled Dice of the starting model and the
adapted one is printed with the CPU seconds.

    python bench/adapt_bench.py [--from phantom|PATH] [--seed 7] [--epochs 6] [--steps 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realct_scans import ct_ich_patient_scans  # noqa: E402

from imaging.adapt import AdaptOptions, adapt  # noqa: E402
from imaging.inference import UNetSegmenter  # noqa: E402
from imaging.model import DEFAULT_MODEL_PATH, load_model  # noqa: E402


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
        scans = ct_ich_patient_scans(Path(tmp))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = adapt(initial, scans, segmenter, AdaptOptions(
            holdout_fraction=a.holdout_fraction, seed=a.seed,
            training=dataclasses.replace(AdaptOptions().training, epochs=a.epochs, steps_per_epoch=a.steps,
                                         lr=a.lr)), device)
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
