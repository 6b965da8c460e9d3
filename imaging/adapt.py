"""Adapt the fast 2.5D U-Net to a study from its own annotations, and prove the gain on held-out patients.

Pure: volumes and label arrays in, a model and its held-out figures out; no database.

- **Held out first.** Annotated patients are held out per center (`holdout_fraction`, at least one in each
  center with two or more annotated patients, seeded; or the patients named in `held_out`) before anything
  is trained; nothing of theirs, annotated or not, is used for training. The starting model and the adapted
  one are scored on them with the same function, so before and after are comparable.
- **Few labels.** Training starts from the starting model's weights (fine-tuning, same network and
  preprocessing). Its loss counts only annotated voxels: labels may hold `vocabulary.labels.UNANNOTATED`
  where an annotator left a slice or class out (`imaging.train.masked_dice_ce`).
- **Never worse on validation.** BatchNorm keeps the starting model's statistics and weights
  (`TrainingConfig.freeze_batchnorm`): a few lesion-centred patches of a new source would otherwise rewrite the
  normalisation every layer relies on. The starting weights are scored on the validation patients (carved from
  the training patients) as epoch 0 and compete with every trained epoch, so adapting returns the start when no
  epoch validates better (on the five CT-ICH patients, each with another kind of hemorrhage, that is what
  happens: training patients gain, others lose; docs/benchmarks.md).
- **Unannotated series** of the training patients contribute the starting model's own labels
  (self-training), at most `pseudo_per_annotated` of them per annotated training series, drawn by seed, so
  the annotations stay the larger share; they go through the same CT augmentation as the annotated ones
  (rotation, shift, scale, window gain and offset, noise: `imaging.train._augment`).
- **Better or not.** The score is the mean over lesion classes present in the held-out annotations of the
  pooled Dice (all held-out voxels together). `improved` is the adapted model's score above the starting
  model's by more than `min_gain`, with no one of those classes losing more than `max_class_loss` of pooled
  Dice (a gain in one kind of lesion must not hide the loss of another); `--promote` acts only then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from imaging.agreement import class_agreement, summarize_agreement
from imaging.model import SegmentationModel
from imaging.train import EpochReport, TrainingConfig, TrainingExample, train_model, uid_digest
from imaging.volume import Volume
from vocabulary.labels import HEMORRHAGE_LABELS, LESION_CLASSES, UNANNOTATED, LesionClass

HEMORRHAGE = LesionClass(max(c.value for c in LESION_CLASSES) + 1, "hemorrhage", "Any hemorrhage",
                         "IPH, extra-axial and intraventricular blood merged.", "#000000", "", "")

Segment = Callable[[Volume], np.ndarray]


@dataclass(frozen=True)
class Scan:
    """One series with its volume; `labels` on the volume's grid (None: not annotated)."""

    series_instance_uid: str
    patient_key: str
    center: str
    volume: Volume
    labels: np.ndarray | None = None


@dataclass
class AdaptOptions:
    holdout_fraction: float = 0.3
    pseudo_per_annotated: float = 1.0
    min_gain: float = 0.0
    max_class_loss: float = 0.05
    seed: int = 1
    held_out: frozenset[str] | None = None  # patients to hold out, instead of drawing them by `holdout_fraction`
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(
        epochs=12, steps_per_epoch=30, batch_size=8, lr=1e-3, val_fraction=0.2, freeze_batchnorm=True))


@dataclass
class AdaptResult:
    model: SegmentationModel
    per_class: pd.DataFrame  # model (before / after), class, pooled and mean Dice on the held-out patients
    score_before: float
    score_after: float
    improved: bool
    card: dict
    verdict: str = ""  # why it is better or not, in words


@dataclass(frozen=True)
class Verdict:
    before: float
    after: float
    improved: bool
    text: str


def judged(summary: pd.DataFrame, classes: Sequence[str], min_gain: float, max_class_loss: float) -> Verdict:
    """Whether "after" beats "before" on the held-out patients: its score (mean pooled Dice over `classes`) above
    by more than `min_gain`, and no class of `classes` down by more than `max_class_loss`."""
    before, after = (held_out_score(summary, m, classes) for m in ("before", "after"))
    if not (np.isfinite(before) and np.isfinite(after)):
        return Verdict(before, after, False, "not better: the held-out annotations hold no lesion to score")
    if after <= before + min_gain:
        return Verdict(before, after, False, f"not better: the score did not rise by more than {min_gain:g}")
    pooled = summary[summary["class"].isin(classes)].pivot_table(index="class", columns="comparison",
                                                                   values="dice_pooled")
    lost = [f"{key} {row['before']:.3f} -> {row['after']:.3f}" for key, row in pooled.iterrows()
            if row["after"] < row["before"] - max_class_loss]
    if lost:
        return Verdict(before, after, False, f"not better: the score rose but {', '.join(lost)} "
                                             f"(a class may lose at most {max_class_loss:g})")
    return Verdict(before, after, True, "better")


def holdout_patients(annotated: Iterable[tuple[str, str]], fraction: float, seed: int) -> set[str]:
    """Patients held out among the (center, patient) pairs of annotated scans, per center: round(n x fraction),
    at least 1 where a center has 2 or more annotated patients."""
    by_center: dict[str, list[str]] = {}
    for center, patient in annotated:
        if patient not in by_center.setdefault(center, []):
            by_center[center].append(patient)
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for center in sorted(by_center):
        patients = sorted(by_center[center])
        if len(patients) < 2:
            continue
        rng.shuffle(patients)
        held.update(patients[: max(1, round(len(patients) * fraction))])
    if not held:
        raise ValueError("adapting needs a center with annotated scans of at least 2 patients, one to hold out "
                         f"(annotated patients per center: {({c: len(p) for c, p in by_center.items()})}); "
                         "import more annotations (`ctstudy imaging import-corrections`)")
    return held


def _scored(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays with unannotated voxels out of every class, and any hemorrhage as one more class."""
    pred = np.where(ref == UNANNOTATED, UNANNOTATED, pred)
    out = []
    for labels in (pred, ref):
        merged = labels.copy()
        merged[np.isin(labels, HEMORRHAGE_LABELS)] = HEMORRHAGE.value
        out.append((labels, merged))
    return out[0], out[1]


def heldout_agreement(segment: Segment, scans: Sequence[Scan], model: str) -> pd.DataFrame:
    """Per held-out scan and class (and any hemorrhage): `class_agreement` of `segment` against the annotation."""
    rows = []
    for s in scans:
        (pred, pred_h), (ref, ref_h) = _scored(segment(s.volume), s.labels)
        voxel_ml = s.volume.voxel_ml
        for r in class_agreement(pred, ref, voxel_ml) + class_agreement(pred_h, ref_h, voxel_ml, (HEMORRHAGE,)):
            rows.append({"model": model, "center": s.center, "series_digest": uid_digest(s.series_instance_uid), **r})
    return pd.DataFrame(rows)


def held_out_score(summary: pd.DataFrame, model: str, classes: Sequence[str]) -> float:
    """Mean pooled Dice of `model` over `classes` (those present in the held-out annotations)."""
    rows = summary[(summary["comparison"] == model) & summary["class"].isin(classes)]
    return float(rows["dice_pooled"].mean()) if len(rows) else float("nan")


def adapt(initial: SegmentationModel, scans: Sequence[Scan], segmenter: Callable[[SegmentationModel], Segment],
          options: AdaptOptions | None = None, device: torch.device | str = "cpu", *,
          on_step: Callable[[int, int, float], None] | None = None,
          on_epoch: Callable[[EpochReport], None] | None = None) -> AdaptResult:
    """Fine-tune `initial` on the annotated and pseudo-labelled training scans; score both on held-out patients.

    `segmenter(model)` gives the function that labels a volume with a model (the study's inference path).
    """
    opts = options or AdaptOptions()
    held = set(opts.held_out) if opts.held_out is not None else holdout_patients(
        ((s.center, s.patient_key) for s in scans if s.labels is not None), opts.holdout_fraction, opts.seed)
    held_out = [s for s in scans if s.patient_key in held and s.labels is not None]
    annotated = [s for s in scans if s.patient_key not in held and s.labels is not None]
    if len({s.patient_key for s in annotated}) < 2:
        raise ValueError(f"after holding out {len(held)} patient(s), annotated scans of "
                         f"{len({s.patient_key for s in annotated})} patient(s) are left to train on: adapting "
                         "needs at least 2 (its own validation split); import more annotations")
    start = segmenter(initial)
    candidates = sorted((s for s in scans if s.labels is None and s.patient_key not in held),
                        key=lambda s: s.series_instance_uid)
    rng = np.random.default_rng(opts.seed)
    n_pseudo = min(len(candidates), int(round(opts.pseudo_per_annotated * len(annotated))))
    pseudo = [candidates[i] for i in sorted(rng.choice(len(candidates), n_pseudo, replace=False))] if n_pseudo else []
    examples = [TrainingExample(s.series_instance_uid, s.patient_key, s.volume.hu, s.labels) for s in annotated]
    examples += [TrainingExample(s.series_instance_uid, s.patient_key, s.volume.hu, start(s.volume)) for s in pseudo]

    cfg = opts.training
    cfg = TrainingConfig(**{**cfg.__dict__, "net": dict(initial.net_config), "seed": opts.seed})
    model = train_model(examples, cfg, initial.preprocessing, device, on_step=on_step, on_epoch=on_epoch,
                        label_map=dict(initial.label_map), initial=initial)
    model.name = f"unet2d-adapted from {initial.name} {initial.version[:12]}"

    rows = pd.concat([heldout_agreement(start, held_out, "before"),
                      heldout_agreement(segmenter(model), held_out, "after")], ignore_index=True)
    summary = summarize_agreement(rows.rename(columns={"model": "comparison"}))
    present = sorted(rows.loc[(rows["ref_voxels"] > 0) & (rows["class"] != HEMORRHAGE.key), "class"].unique())
    verdict = judged(summary, present, opts.min_gain, opts.max_class_loss)
    card = model_card(initial, scans, held, annotated, pseudo, summary, verdict, cfg, device)
    model.metadata["adaptation"] = card
    return AdaptResult(model, summary, verdict.before, verdict.after, verdict.improved, card, verdict.text)


def model_card(initial: SegmentationModel, scans: Sequence[Scan], held: set[str], annotated: Sequence[Scan],
               pseudo: Sequence[Scan], summary: pd.DataFrame, verdict: Verdict,
               cfg: TrainingConfig, device: torch.device | str) -> dict:
    """What the adapted model learned from and how it did: data, annotations used, held-out figures."""
    def per_center(items: Sequence[Scan]) -> dict[str, int]:
        return {c: sum(s.center == c for s in items) for c in sorted({s.center for s in items})}

    held_scans = [s for s in scans if s.patient_key in held and s.labels is not None]
    figures = summary.rename(columns={"comparison": "model"})
    return {
        "adapted_from": {"name": initial.name, "version": initial.version},
        "data": {"annotated_training_series": per_center(annotated),
                 "pseudo_labelled_series": per_center(pseudo),
                 "held_out_patients": len(held), "held_out_series": per_center(held_scans),
                 "partially_annotated_series": sum(bool((s.labels == UNANNOTATED).any()) for s in annotated),
                 "training_series_digests": sorted(uid_digest(s.series_instance_uid) for s in annotated)},
        "validation": {"score": "mean pooled Dice over the lesion classes present in the held-out annotations",
                       "before": verdict.before, "after": verdict.after, "improved": verdict.improved,
                       "verdict": verdict.text,
                       "per_class": figures.replace({np.nan: None}).to_dict("records")},
        "training": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "device": str(device),
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
