"""Distil a heavy teacher model into the fast 2.5D U-Net on the study's own QC-passed series.

1. Draw a sample of QC-passed series (`imaging.sampling`: by patient, stratified by center and
   scanner).
2. The teacher labels them through `imaging.segment.segment_registered_series`: its masks are
   ordinary SegmentationRuns, so a series already done by that teacher version is never
   computed again (an interrupted distillation, run again, resumes there) and the study can use
   the teacher's masks like any other model's. Where the labelling runs is the caller's
   executor (`--scheduler`): in this process, or one Dask task per series on a cluster's
   (GPU) workers, the client writing each series' run in its own transaction, as `imaging
   segment` does; the teacher is timed on the series it labels, wherever they ran.
3. The student (`imaging.train.train_model`, all classes of `vocabulary.labels`) trains on those
   masks, a manual annotation replacing the teacher's mask wherever a series has one; patients
   are held out for validation (the split of `train_model`, seeded). By default it starts from
   random weights, which suits a study's hundreds of scans. With few scans it can start from a
   trained U-Net instead (`DistillOptions.initial`, e.g. the shipped phantom model): its weights
   compete as epoch 0 on the validation patients, and `rehearsal_phantoms` phantoms with their
   truth (`imaging.rehearsal`) are mixed into every batch so that it keeps what it knew while it
   learns the teacher's labels of real scans.
4. On the held-out series the student is compared with the teacher (and both with manual
   annotations where there are any), and both are timed per scan in this same run.
5. The checkpoint records the teacher (name, version, members), the series learned from (hashed),
   the agreement and the costs; its model name says it was distilled and from what, so every
   SegmentationRun it makes shows that too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sqlalchemy import Engine

from cluster.executor import Executor
from imaging import store
from imaging.agreement import class_agreement, summarize_agreement
from imaging.inference import UNetSegmenter
from imaging.model import SegmentationModel
from imaging.preprocess import Preprocessing
from imaging.rehearsal import phantom_examples
from imaging.sampling import draw_sample, sample_summary
from imaging.segment import segment_registered_series
from imaging.segmenters import LesionSegmenter
from imaging.train import EpochReport, TrainingConfig, TrainingExample, train_model, uid_digest
from imaging.volume import GridMismatchError, SeriesGeometryError, Volume, load_series, read_mask_for
from registry.db.engine import session_scope
from vocabulary.labels import ALLOWED_LABELS, LABEL_MAP, UNANNOTATED, describe

STUDENT_NAME = "unet2d-distilled"
MANUAL, TEACHER = "manual", "teacher"


@dataclass
class DistillOptions:
    series_limit: int | None = 200
    seed: int = 1
    timing_scans: int = 3  # scans the teacher is timed on when this run labelled fewer
    training: TrainingConfig = field(default_factory=TrainingConfig)
    preprocessing: Preprocessing = field(default_factory=lambda: Preprocessing(context_slices=1))
    initial: SegmentationModel | None = None  # warm start (its preprocessing and widths); None: random weights
    rehearsal_phantoms: int = 0  # phantoms that only train, `training.rehearsal_fraction` of each batch


@dataclass
class DistillResult:
    model: SegmentationModel
    sample: pd.DataFrame  # the drawn series (uid, patient, center, scanner, stratum, label source)
    per_series: pd.DataFrame  # class agreement rows on held-out series, one per (series, comparison, class)
    summary: pd.DataFrame  # summarize_agreement by comparison
    cost: dict[str, Any]
    teacher_labelled: list[str]  # labelled by the teacher in this run
    teacher_reused: list[str]  # labels reused from an earlier run
    skipped: dict[str, str]  # series left out, and why
    metadata: dict[str, Any]


def student_name(teacher: LesionSegmenter) -> str:
    """The model name every SegmentationRun of the student records: distilled, from which teacher version."""
    return f"{STUDENT_NAME} from {teacher.name} {teacher.version[:12]}"[:100]


def learned_from_sha256(digests: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def check_labels(labels: np.ndarray, source: str, partial_allowed: bool = False) -> None:
    """Labels in the label map; with `partial_allowed` (a manual annotation) UNANNOTATED too, which the
    training loss skips."""
    allowed = set(ALLOWED_LABELS) | ({UNANNOTATED} if partial_allowed else set())
    extra = sorted(set(np.unique(labels).tolist()) - allowed)
    if extra:
        raise ValueError(f"{source} has label values {extra} outside the project's label map ({describe()}); "
                         "re-import it in the four-class map")


def _timed_segment(seg: LesionSegmenter, volume: Volume) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    labels, _ = seg.segment(volume)
    return labels, time.perf_counter() - t0


def distill(
    engine: Engine,
    masks_dir: Path,
    teacher: LesionSegmenter,
    options: DistillOptions,
    device: torch.device | str = "cpu",
    *,
    teacher_spec: str | None = None,
    on_teacher_series: Callable[[str, str], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_phase: Callable[[str, int], None] | None = None,
    on_item: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    worker_device: str | None = None,
    gpu: bool | None = None,
) -> DistillResult:
    """Label a sample with `teacher`, train the student on it, compare and time both on held-out series.

    Progress: `on_phase(name, total)` as each phase starts (teacher, load, train, evaluate), then
    `on_teacher_series(uid, outcome)`, `on_item("load")`, `on_step`/`on_epoch` and `on_item("evaluate")`.
    `executor`, `worker_device` and `gpu`: where the teacher labels the series (default: in this
    process), as for `imaging.segment.segment_registered_series`; the rest runs here on `device`.
    """
    device = torch.device(device)
    phase = on_phase or (lambda _name, _total: None)
    item = on_item or (lambda _name: None)
    with session_scope(engine) as session:
        candidates = pd.DataFrame(store.distillation_candidates(session, teacher.version))
    sample = draw_sample(candidates, options.series_limit, options.seed)
    uids = list(sample["series_instance_uid"])

    # 1. Teacher labels (every drawn series, annotated ones too: the report compares the teacher with readers).
    phase("teacher", len(uids))
    labelled = segment_registered_series(engine, masks_dir, teacher, uids, on_series=on_teacher_series,
                                         executor=executor, worker_device=worker_device, gpu=gpu)
    skipped: dict[str, str] = {uid: f"teacher failed: {e}" for uid, e in labelled.failed.items()}

    # 2. Training examples: a manual annotation where there is one, else the teacher's mask.
    examples: list[TrainingExample] = []
    teacher_masks: dict[str, Path] = {}
    manual_masks: dict[str, Path] = {}
    sources: dict[str, str] = {}
    volumes: dict[str, Volume] = {}
    phase("load", len(uids))
    for uid in uids:
        if uid in skipped:
            continue
        try:
            with session_scope(engine) as session:
                series = store.series_by_uid(session, uid)
                run = store.run_for(session, series, teacher.version)
                annotation = store.latest_annotation_for(session, series)
                patient = store.patient_key(session, series)
                paths = store.instance_paths(session, series)
            volume = load_series(paths)
            if run is not None and run.status == store.RUN_DONE and run.mask_path:
                teacher_masks[uid] = Path(run.mask_path)
            if annotation is not None:
                manual_masks[uid] = Path(annotation.mask_path)
                labels, sources[uid] = read_mask_for(annotation.mask_path, volume), MANUAL
            elif uid in teacher_masks:
                labels, sources[uid] = read_mask_for(teacher_masks[uid], volume), TEACHER
            else:
                raise LookupError("no teacher mask and no manual annotation")
            check_labels(labels, f"the {sources[uid]} mask of series {uid}", partial_allowed=sources[uid] == MANUAL)
        except (SeriesGeometryError, GridMismatchError, LookupError, OSError, ValueError) as exc:
            skipped[uid] = str(exc)
            continue
        volumes[uid] = volume
        examples.append(TrainingExample(uid, patient, volume.hu, labels))
        item("load")
    if len({e.patient_key for e in examples}) < 2:
        raise ValueError(f"the teacher's labels cover {len(examples)} series of "
                         f"{len({e.patient_key for e in examples})} patient(s); distillation needs at least 2 "
                         "patients (one to hold out): raise --series-limit or fix the failed series "
                         f"({'; '.join(f'{u}: {r}' for u, r in list(skipped.items())[:3]) or 'none failed'})")

    # 3. The student, on every class of the label map.
    rehearsal = phantom_examples(options.rehearsal_phantoms, options.seed) if options.rehearsal_phantoms else []
    phase("train", options.training.epochs * options.training.steps_per_epoch)
    model = train_model(examples, options.training, options.preprocessing, device, on_step=on_step,
                        on_epoch=on_epoch, label_map=dict(LABEL_MAP), initial=options.initial,
                        rehearsal=rehearsal)
    model.name = student_name(teacher)
    held_out_digests = set(model.metadata["split"]["validation"])
    held_out = [e.series_instance_uid for e in examples if uid_digest(e.series_instance_uid) in held_out_digests]

    # 4. Held-out agreement and cost per scan, both models timed in this run on this device.
    student = UNetSegmenter(model, device)
    if held_out:  # the first call traces the network on CPU: a one-time cost, kept out of the per-scan figure
        student.segment(volumes[held_out[0]])
    rows, student_s = [], []
    phase("evaluate", len(held_out))
    for uid in held_out:
        volume = volumes[uid]
        pred, seconds = _timed_segment(student, volume)
        student_s.append(seconds)
        references = {}
        if uid in teacher_masks:
            teacher_labels = read_mask_for(teacher_masks[uid], volume)
            references["student_vs_teacher"] = (pred, teacher_labels)
        if uid in manual_masks:
            manual = read_mask_for(manual_masks[uid], volume)
            references["student_vs_manual"] = (pred, manual)
            if uid in teacher_masks:
                references["teacher_vs_manual"] = (teacher_labels, manual)
        for comparison, (a, b) in references.items():
            for r in class_agreement(a, b, volume.voxel_ml):
                rows.append({"series_digest": uid_digest(uid), "center": _center_of(sample, uid),
                             "comparison": comparison, **r})
        item("evaluate")
    labelling_s = list(labelled.model_seconds.values())  # the teacher's own time on each series it labelled
    teacher_s = list(labelling_s)
    teacher_devices = set(labelled.devices.values())
    teacher_basis = "labelling in this run"
    if len(teacher_s) < options.timing_scans and held_out:
        # The labels were reused from an earlier run: time the teacher afresh on held-out scans.
        for uid in held_out[: options.timing_scans - len(teacher_s)]:
            teacher_s.append(_timed_segment(teacher, volumes[uid])[1])
        teacher_devices.add(str(teacher.device))
        teacher_basis = "held-out scans timed in this run" if not labelling_s else \
            "labelling in this run and held-out scans timed in this run"
    teacher_device = ", ".join(sorted(teacher_devices)) or str(teacher.device)
    cost = _cost(teacher_s, student_s, teacher_basis, teacher_device, str(device))

    per_series = pd.DataFrame(rows)
    summary = summarize_agreement(per_series) if len(per_series) else pd.DataFrame()
    sample = sample.assign(label_source=sample["series_instance_uid"].map(sources).fillna("skipped"),
                           held_out=sample["series_instance_uid"].isin(held_out))
    learned = [uid_digest(u) for u in sources]
    metadata = {
        "distilled": True,
        "teacher": {"name": teacher.name, "version": teacher.version, "members": list(teacher.members),
                    "spec": teacher_spec or teacher.name, "device": teacher_device},
        "learned_from": {"series": len(learned), "patients": int(sample.loc[sample["label_source"] != "skipped",
                                                                            "patient_key"].nunique()),
                         "series_sha256": learned_from_sha256(learned),
                         "label_sources": {MANUAL: sum(v == MANUAL for v in sources.values()),
                                           TEACHER: sum(v == TEACHER for v in sources.values())}},
        "sample": {"series_limit": options.series_limit, "seed": options.seed,
                   "strata": sample_summary(sample).to_dict("records")},
        "start": ({"name": options.initial.name, "version": options.initial.version}
                  if options.initial is not None else None),
        "rehearsal_phantoms": options.rehearsal_phantoms,
        "agreement": _agreement_records(summary),
        "cost": cost,
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    metadata = plain(metadata)
    model.metadata["distillation"] = metadata
    return DistillResult(model=model, sample=sample, per_series=per_series, summary=summary, cost=cost,
                         teacher_labelled=list(labelled.done), teacher_reused=list(labelled.skipped),
                         skipped=skipped, metadata=metadata)


def _center_of(sample: pd.DataFrame, uid: str) -> str:
    return str(sample.loc[sample["series_instance_uid"] == uid, "center"].iloc[0])


def _cost(teacher_s: list[float], student_s: list[float], teacher_basis: str, teacher_device: str,
          student_device: str) -> dict[str, Any]:
    t = statistics.median(teacher_s) if teacher_s else None
    s = statistics.median(student_s) if student_s else None
    return {"teacher_s_per_scan": t, "teacher_scans": len(teacher_s), "teacher_basis": teacher_basis,
            "teacher_device": teacher_device, "student_s_per_scan": s, "student_scans": len(student_s),
            "student_device": student_device, "ratio": (t / s) if t is not None and s else None}


def plain(value: Any) -> Any:
    """Python scalars, lists and dicts only (numpy values as Python ones, NaN as None): what weights-only loads."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _agreement_records(summary: pd.DataFrame) -> list[dict]:
    if summary.empty:
        return []
    return plain(summary.to_dict("records"))
