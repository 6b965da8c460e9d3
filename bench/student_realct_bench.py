"""The distilled student on real CT: BLAST-CT (one network) teaches the 2.5D U-Net on real scans, and both are
scored against the CT-ICH truth on patients the student never saw.

Real scans: the 5 CT-ICH patients' slice stacks and the normal GE head (`bench/realct_scans.py`). Two folds of
patients: the student learns BLAST-CT's labels of the GE head and of one fold's CT-ICH patients (its training
validation split carved from those), and is scored on the other fold's patients; then the folds swap. The
student starts from the phantom U-Net's weights (`--from`; the 36 slices are too few to learn a network from
scratch). Teacher labels are cached on disk (`--cache`), so only the first run pays BLAST-CT's minutes.
Prints hemorrhage Dice (any class) per held-out patient and pooled, for the teacher, the student and the
phantom model, the CPU seconds of distilling, and the load average.

    python bench/student_realct_bench.py [--cache DIR] [--epochs 6] [--steps 20]
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
from realct_scans import ct_ich_patient_scans, ge_head, teacher_labels  # noqa: E402

from imaging.inference import UNetSegmenter  # noqa: E402
from imaging.model import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from imaging.train import TrainingConfig, TrainingExample, train_model  # noqa: E402
from vocabulary.labels import HEMORRHAGE_LABELS  # noqa: E402

FOLDS = (("CTICH-78", "CTICH-80", "CTICH-81"), ("CTICH-77", "CTICH-79"))


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
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    initial = load_model(DEFAULT_MODEL_PATH if a.start == "phantom" else Path(a.start))
    rows, cpu_total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        scans = {s.patient_key: s for s in ct_ich_patient_scans(Path(tmp))}
        ge = ge_head()
        t0 = time.process_time()
        teacher = {k: teacher_labels(s.volume, a.cache) for k, s in scans.items()}
        ge_teacher = teacher_labels(ge, a.cache) if ge is not None else None
        teacher_cpu = time.process_time() - t0
        phantom = UNetSegmenter(initial, torch.device("cpu"))
        for fold, learn in enumerate(FOLDS):
            examples = [TrainingExample(s.series_instance_uid, k, s.volume.hu, teacher[k])
                        for k, s in scans.items() if k in learn]
            if ge is not None:
                examples.append(TrainingExample("ge-head", "GE-HEAD", ge.hu, ge_teacher))
            cfg = TrainingConfig(epochs=a.epochs, steps_per_epoch=a.steps, batch_size=8, lr=1e-3, seed=a.seed,
                                 net=dict(initial.net_config))
            c0 = time.process_time()
            model = train_model(examples, cfg, initial.preprocessing, "cpu", label_map=dict(initial.label_map),
                                initial=initial)
            cpu_total += time.process_time() - c0
            student = UNetSegmenter(model, torch.device("cpu"))
            for k, s in scans.items():
                if k in learn:
                    continue
                for name, pred in (("teacher (blast-ct)", teacher[k]), ("student", student.segment(s.volume)[0]),
                                   ("phantom U-Net", phantom.segment(s.volume)[0])):
                    overlap, predicted, true = hemorrhage_counts(pred, s.labels)
                    rows.append({"fold": fold, "patient": k, "model": name, "overlap": overlap,
                                 "predicted": predicted, "true": true})
    df = pd.DataFrame(rows)
    df["dice"] = 2 * df["overlap"] / (df["predicted"] + df["true"])
    print(df.pivot_table(index="patient", columns="model", values="dice").round(3).to_string())
    pooled = df.groupby("model")[["overlap", "predicted", "true"]].sum()
    print("pooled over the 5 held-out patients:",
          "; ".join(f"{m} {2 * r.overlap / (r.predicted + r.true):.3f}" for m, r in pooled.iterrows()))
    print(f"teacher labels: {teacher_cpu:.0f} CPU s (0 when cached); distilling the two students: "
          f"{cpu_total:.0f} CPU s; GE head {'included' if ge is not None else 'not found'}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
