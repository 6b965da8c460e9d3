"""`imaging adapt --from blast-ct` on real CT: BLAST-CT's network fine-tuned on CT-ICH patients, held-out Dice.

A scan is one CT-ICH patient's slices as one series (`bench/realct_scans.py` says how each slice's hemorrhage
is labelled). Each fold (`--folds`, default: leave one patient out, each of the five in turn) holds whole
patients out, adapts on the other patients' scans with `imaging adapt`'s DeepMedic defaults (one training
patient is the validation split) and prints the pooled Dice on the held-out patients before and after, per
class and for any hemorrhage, the best epoch (0: the start kept), the CPU seconds and wall time of adapting,
then the mean change of the held-out score over all folds and over the folds whose held-out patient's kind of
hemorrhage the training annotations hold (extra-axial: patients 77, 78, 81), and the load average.

`--cache DIR` keeps the frozen pathways' features of each scan and BLAST-CT's labels of each held-out scan
(the "before"), so folds and reruns compute each once.

`--within`: slices held out within patient 81 instead (`tests/imaging/test_adapt_blast_ct.py`'s setting):
its slices 13-17 train, 18-22 validate, 23-27 are held out; 4 epochs of 15 steps.

    python bench/adapt_blast_ct_bench.py [--folds 77,78,79,80,81] [--cache DIR] [--epochs N] [--steps N] [--lr X]
                                         [--background-per-lesion R] [--keep-start W] [--keep-unannotated W]
                                         [--threads N]
    python bench/adapt_blast_ct_bench.py --within [--lr X]
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
from realct_scans import ct_ich_patient_scans, teacher_labels  # noqa: E402

from ctstudy import ct_ich  # noqa: E402
from imaging.adapt import AdaptOptions, Scan  # noqa: E402
from imaging.deepmedic_finetune import (  # noqa: E402
    DeepMedicTuning,
    adapt_deepmedic,
    blast_ct_start,
    checkpoint_segmenter,
)
from imaging.volume import load_series  # noqa: E402

# Patients whose kind of hemorrhage (extra-axial) other patients' annotations also hold.
SHARED_KIND = {"77", "78", "81"}


def within_81(tmp: Path) -> list[Scan]:
    """Patient 81's slices 13-27 in three blocks of five, each a scan with a "patient" key of its own."""
    out = []
    for key, numbers in {"81-a": range(13, 18), "81-b": range(18, 23), "81-c": range(23, 28)}.items():
        slices = ct_ich.patient_slices(81, numbers)
        volume = load_series(ct_ich.write_series(slices, tmp / key), allow_irregular=True)
        out.append(Scan(f"ctich-{key}", f"CTICH-{key}", "CTICH", volume, ct_ich.class_labels(slices)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="77,78,79,80,81", help="held-out CT-ICH patients per fold, e.g. 77+79,78+81")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--layers", type=int, default=None, help="fully connected layers that train (1-3)")
    ap.add_argument("--background-per-lesion", type=float, default=None)
    ap.add_argument("--keep-start", type=float, default=None, help="weight of the KL term to the start (0: none)")
    ap.add_argument("--keep-unannotated", type=float, default=None,
                    help="weight of the per-class KL term for classes nobody annotated (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="folder for features and BLAST-CT's labels")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--within", action="store_true", help="hold out slices of patient 81 (the test's setting)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.within:
        a.folds, a.epochs, a.steps = "81-c", a.epochs or 4, a.steps or 15
    given = {k: v for k, v in {"epochs": a.epochs, "steps_per_epoch": a.steps, "lr": a.lr,
                               "trainable_layers": a.layers, "background_per_lesion": a.background_per_lesion,
                               "keep_start": a.keep_start, "keep_unannotated": a.keep_unannotated}.items()
             if v is not None}
    start = blast_ct_start()

    def segmenter(ckpt):  # noqa: ANN001, ANN202
        if a.cache is not None and ckpt is start:  # BLAST-CT's first network: its labels cached per scan
            return lambda volume: teacher_labels(volume, a.cache)
        return checkpoint_segmenter(ckpt, torch.device("cpu"))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scans = within_81(Path(tmp)) if a.within else ct_ich_patient_scans(Path(tmp))
        for fold in a.folds.split(","):
            held = frozenset(f"CTICH-{p.strip()}" for p in fold.split("+"))
            tuning = DeepMedicTuning(seed=a.seed, **given, **({"val_fraction": 0.5} if a.within else {}))
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = adapt_deepmedic(start, scans, AdaptOptions(seed=a.seed, held_out=held), tuning,
                                     segmenter=segmenter, feature_cache=a.cache)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            table = result.per_class.pivot_table(index="class", columns="comparison", values="dice_pooled")
            ft = result.card["fine_tuning"]
            train = sorted({s.patient_key[6:] for s in scans if s.patient_key not in held})
            row = {"held out": fold, "train patients": ", ".join(train),
                   "score before": result.score_before, "score after": result.score_after,
                   "best epoch": ft["best_epoch"],
                   "val scores": " ".join(f"{h['val_score']:.3f}" for h in ft["history"]),
                   "CPU s": cpu, "wall s": wall}
            for cls in table.index:
                row[f"{cls} before"], row[f"{cls} after"] = table.loc[cls].get("before"), table.loc[cls].get("after")
            rows.append(row)
            print(pd.DataFrame([row]).round(3).to_string(index=False), flush=True)
    df = pd.DataFrame(rows)
    print(df.round(3).to_string(index=False))
    change = df["score after"] - df["score before"]
    shared = df["held out"].isin(SHARED_KIND)
    print(f"mean change of the held-out score: {change.mean():+.3f} over {len(df)} folds"
          + (f"; {change[shared].mean():+.3f} over the {int(shared.sum())} whose kind of hemorrhage the training "
             f"annotations hold ({', '.join(df.loc[shared, 'held out'])})" if shared.any() else ""))
    print(f"tuning {DeepMedicTuning(seed=a.seed, **given)}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
