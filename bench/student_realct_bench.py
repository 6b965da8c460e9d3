"""The distilled student on real CT: BLAST-CT (one network) teaches the 2.5D U-Net on real scans, and teacher,
students and the student's start are scored against the CT-ICH truth on patients the students never saw.

Real scans: the 5 CT-ICH patients' slice stacks and the normal GE head (`bench/realct_scans.py`). Leave one
patient out: each student learns BLAST-CT's labels of the GE head and of four CT-ICH patients (its training
validation patient carved from those five series by `train_model`) and is scored on the fifth; five folds, so
every patient is scored once, by a student that never saw it. The students start from the phantom U-Net's
weights (`--from`; 36 slices are too few to learn a network from scratch), in two recipes trained in the same
run with the same seed, steps and batches:

- recipe: that of `ctstudy imaging distill --from phantom --rehearsal N` (on this bench's shorter schedule):
  BatchNorm statistics of the start kept, peak learning rate 3e-4, and `--rehearsal` phantoms with their
  truth (`imaging.rehearsal`, seeded by `--seed`) drawn for `--rehearsal-fraction` of each batch's slices,
  so the student keeps what it knew;
- plain: the start fine-tuned on the teacher's labels alone (BatchNorm trained, peak learning rate 1e-3).

In both the start competes as epoch 0 on the validation patient, so a student may be its start unchanged: the
best epoch of each fold is printed (0: the start). Teacher labels are cached on disk (`--cache`), so only the
first run pays BLAST-CT's minutes. Prints hemorrhage Dice (any class) per held-out patient and pooled, for the
teacher, both students and the start, the CPU seconds of distilling, and the load average.

    python bench/student_realct_bench.py [--cache DIR] [--epochs 6] [--steps 20] [--rehearsal 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realct_scans import ct_ich_patient_scans, ge_head, teacher_labels  # noqa: E402

from imaging.inference import UNetSegmenter  # noqa: E402
from imaging.model import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from imaging.rehearsal import phantom_examples  # noqa: E402
from imaging.train import TrainingConfig, TrainingExample, train_model  # noqa: E402
from vocabulary.labels import HEMORRHAGE_LABELS  # noqa: E402

TEACHER, START = "teacher (blast-ct)", "phantom U-Net (start)"
RECIPE, PLAIN = "student (recipe)", "student (plain)"


def hemorrhage_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(overlap, predicted, true) hemorrhage voxels, any class, where the truth is annotated."""
    ref = truth > 0  # UNANNOTATED: blood whose class the public masks do not tell; still blood
    p = np.isin(pred, HEMORRHAGE_LABELS)
    return int((p & ref).sum()), int(p.sum()), int(ref.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ctstudy-blast-ct-labels")
    ap.add_argument("--from", dest="start", default="phantom")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rehearsal", type=int, default=8, help="phantoms rehearsed by the recipe")
    ap.add_argument("--rehearsal-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    initial = load_model(DEFAULT_MODEL_PATH if a.start == "phantom" else Path(a.start))
    base = TrainingConfig(epochs=a.epochs, steps_per_epoch=a.steps, batch_size=8, seed=a.seed,
                          net=dict(initial.net_config))
    recipes = {RECIPE: (replace(base, lr=3e-4, freeze_batchnorm=True, rehearsal_fraction=a.rehearsal_fraction),
                        phantom_examples(a.rehearsal, a.seed) if a.rehearsal else []),
               PLAIN: (replace(base, lr=1e-3), [])}
    rows, cpu, best = [], dict.fromkeys(recipes, 0.0), {name: [] for name in recipes}
    with tempfile.TemporaryDirectory() as tmp:
        scans = {s.patient_key: s for s in ct_ich_patient_scans(Path(tmp))}
        ge = ge_head()
        t0 = time.process_time()
        teacher = {k: teacher_labels(s.volume, a.cache) for k, s in scans.items()}
        ge_teacher = teacher_labels(ge, a.cache) if ge is not None else None
        teacher_cpu = time.process_time() - t0
        start = UNetSegmenter(initial, torch.device("cpu"))
        for held in scans:
            examples = [TrainingExample(s.series_instance_uid, k, s.volume.hu, teacher[k])
                        for k, s in scans.items() if k != held]
            if ge is not None:
                examples.append(TrainingExample("ge-head", "GE-HEAD", ge.hu, ge_teacher))
            predictions = {TEACHER: teacher[held], START: start.segment(scans[held].volume)[0]}
            for name, (cfg, rehearsal) in recipes.items():
                c0 = time.process_time()
                model = train_model(examples, cfg, initial.preprocessing, "cpu", label_map=dict(initial.label_map),
                                    initial=initial, rehearsal=rehearsal)
                cpu[name] += time.process_time() - c0
                best[name].append(f"{held[-2:]}:{model.metadata['metrics']['best_epoch']}")
                predictions[name] = UNetSegmenter(model, torch.device("cpu")).segment(scans[held].volume)[0]
            for name, pred in predictions.items():
                overlap, predicted, true = hemorrhage_counts(pred, scans[held].labels)
                rows.append({"patient": held, "model": name, "overlap": overlap, "predicted": predicted,
                             "true": true})
    df = pd.DataFrame(rows)
    df["dice"] = 2 * df["overlap"] / (df["predicted"] + df["true"])
    order = [TEACHER, RECIPE, PLAIN, START]
    print(df.pivot_table(index="patient", columns="model", values="dice")[order].round(3).to_string())
    pooled = df.groupby("model")[["overlap", "predicted", "true"]].sum().loc[order]
    print("pooled over the 5 held-out patients:",
          "; ".join(f"{m} {2 * r.overlap / (r.predicted + r.true):.3f}" for m, r in pooled.iterrows()))
    print("best epoch per held-out patient (0: the start returned unchanged):",
          "; ".join(f"{name} {' '.join(b)}" for name, b in best.items()))
    print(f"recipe: {a.rehearsal} rehearsal phantoms at {a.rehearsal_fraction:g} of each batch, lr 3e-4, BatchNorm "
          f"kept; {a.epochs} epochs of {a.steps} steps of 8 slices")
    print(f"teacher labels: {teacher_cpu:.0f} CPU s (0 when cached); distilling five students: "
          + ", ".join(f"{name} {s:.0f} CPU s" for name, s in cpu.items())
          + f"; GE head {'included' if ge is not None else 'not found'}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
