"""`imaging adapt --from blast-ct` on real CT: BLAST-CT's network fine-tuned on CT-ICH patients, held-out Dice.

A scan is one CT-ICH patient's slices as one series (`bench/realct_scans.py` says how each slice's hemorrhage
is labelled); each fold holds whole patients out (`--folds`, default 77+79 and 78+81), adapts on the other
patients' scans with `imaging adapt`'s DeepMedic defaults (one training patient is the validation split), and
prints the pooled Dice on the held-out patients before and after, per class and for any hemorrhage, the best
epoch (0: the start kept), the CPU seconds and wall time of adapting, and the load average.

    python bench/adapt_blast_ct_bench.py [--folds 77+79,78+81] [--epochs N] [--steps N] [--lr X] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realct_scans import ct_ich_patient_scans  # noqa: E402

from imaging.adapt import AdaptOptions  # noqa: E402
from imaging.deepmedic_finetune import DeepMedicTuning, adapt_deepmedic, blast_ct_start  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="77+79,78+81", help="held-out CT-ICH patients per fold, e.g. 77+79,78+81")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--layers", type=int, default=None, help="fully connected layers that train (1-3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    given = {k: v for k, v in {"epochs": a.epochs, "steps_per_epoch": a.steps, "lr": a.lr,
                               "trainable_layers": a.layers}.items() if v is not None}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scans = ct_ich_patient_scans(Path(tmp))
        for fold in a.folds.split(","):
            held = frozenset(f"CTICH-{p.strip()}" for p in fold.split("+"))
            tuning = DeepMedicTuning(seed=a.seed, **given)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = adapt_deepmedic(blast_ct_start(), scans, AdaptOptions(seed=a.seed, held_out=held), tuning)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            table = result.per_class.pivot_table(index="class", columns="comparison", values="dice_pooled")
            ft = result.card["fine_tuning"]
            row = {"held out": fold, "train patients": ", ".join(sorted(
                       {s.patient_key[6:] for s in scans if s.patient_key not in held})),
                   "score before": result.score_before, "score after": result.score_after,
                   "best epoch": ft["best_epoch"],
                   "val scores": " ".join(f"{h['val_score']:.3f}" for h in ft["history"]),
                   "CPU s": cpu, "wall s": wall}
            for cls in table.index:
                row[f"{cls} before"], row[f"{cls} after"] = table.loc[cls].get("before"), table.loc[cls].get("after")
            rows.append(row)
            print(pd.DataFrame([row]).round(3).to_string(index=False), flush=True)
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(f"tuning {DeepMedicTuning(seed=a.seed, **given)}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
