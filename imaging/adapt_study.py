"""The registry side of `imaging adapt`: which model to start from, the study's scans, the new model's folder.

A study model is a folder `<home>/models/adapted/<version[:16]>/` holding `model.pt` (the checkpoint, its
SHA-256 the version every segmentation run records; for a DeepMedic network adapted from BLAST-CT, a state
dict beside its `config.json`: `imaging.deepmedic_finetune`), `model_card.json` and `model_card.md`, and a
`study_model` row in the registry; promoting it makes it the study's default for `imaging segment`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sqlalchemy.engine import Engine

from imaging import store
from imaging.adapt import AdaptOptions, AdaptResult, Scan, adapt, holdout_patients
from imaging.deepmedic_finetune import (
    DeepMedicCheckpoint,
    DeepMedicTuning,
    adapt_deepmedic,
    blast_ct_start,
    is_deepmedic_checkpoint,
    load_checkpoint,
)
from imaging.model import DEFAULT_MODEL_PATH, SegmentationModel, load_model
from imaging.segmenters import BLAST_CT, PHANTOM
from imaging.volume import GridMismatchError, SeriesGeometryError, load_series, read_mask_for
from registry.db.engine import session_scope
from registry.home import Home

STUDY_DEFAULT = "study"  # `segment --model study`: the promoted study model, else BLAST-CT


@dataclass
class StudyAdaptation:
    result: AdaptResult
    path: Path
    version: str
    promoted: bool
    skipped: dict[str, str] = field(default_factory=dict)  # series UID -> why it was left out


def resolve_default_spec(session, spec: str | None) -> str:  # noqa: ANN001 - Session
    """`segment`'s model: `spec` as given, or (None / 'study') the promoted study model, else BLAST-CT."""
    if spec not in (None, STUDY_DEFAULT):
        return str(spec)
    promoted = store.promoted_model(session)
    return promoted.path if promoted is not None else BLAST_CT


def starting_model(session, home: Home,  # noqa: ANN001 - Session
                   spec: str | None) -> SegmentationModel | DeepMedicCheckpoint:
    """The network to adapt: `spec` (blast-ct: its first DeepMedic network), or the promoted study model, else
    the study's distilled student."""
    if spec == BLAST_CT:
        return blast_ct_start()
    if spec == PHANTOM:
        return load_model(DEFAULT_MODEL_PATH)
    if spec is None:
        promoted = store.promoted_model(session)
        student = home.models_dir / "student.pt"
        if promoted is not None:
            spec = promoted.path
        elif student.is_file():
            spec = str(student)
        else:
            raise ValueError("no model to adapt from: distil the student first (`ctstudy imaging distill`), or "
                             "name one with --from phantom|PATH")
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--from {spec}: neither {PHANTOM!r}, {BLAST_CT!r} nor a checkpoint file")
    return load_checkpoint(path) if is_deepmedic_checkpoint(path) else load_model(path)


def starts_deepmedic(engine: Engine, home: Home, spec: str | None) -> bool:
    """Whether adapting from `spec` (as `starting_model` resolves it) fine-tunes a DeepMedic network."""
    if spec == BLAST_CT:
        return True
    if spec not in (None, PHANTOM) and Path(spec).is_file():
        return is_deepmedic_checkpoint(spec)
    if spec is None:
        with session_scope(engine) as session:
            promoted = store.promoted_model(session)
        return promoted is not None and is_deepmedic_checkpoint(promoted.path)
    return False


def study_scans(engine: Engine, options: AdaptOptions) -> tuple[list[Scan], dict[str, str]]:
    """Annotated scans, and as many unannotated training-patient scans as the pseudo-labels may use.

    Unannotated scans are drawn here (seeded) so that only those are read; held-out patients' scans never are.
    """
    with session_scope(engine) as session:
        candidates = store.adaptation_candidates(session)
        paths = {c["series_instance_uid"]: store.instance_paths(session, store.series_by_uid(
            session, c["series_instance_uid"])) for c in candidates}
    annotated = [c for c in candidates if c["annotation"]]
    held = set(options.held_out) if options.held_out is not None else holdout_patients(
        ((c["center"], c["patient_key"]) for c in annotated), options.holdout_fraction, options.seed)
    n_train = sum(c["patient_key"] not in held for c in annotated)
    pool = [c for c in candidates if not c["annotation"] and c["patient_key"] not in held]
    n_pseudo = min(len(pool), int(round(options.pseudo_per_annotated * n_train)))
    drawn = [pool[i] for i in sorted(np.random.default_rng(options.seed).choice(len(pool), n_pseudo,
                                                                                replace=False))] if n_pseudo else []
    scans, skipped = [], {}
    for c in annotated + drawn:
        uid = c["series_instance_uid"]
        try:
            volume = load_series(paths[uid])
            labels = read_mask_for(c["annotation"], volume) if c["annotation"] else None
        except (SeriesGeometryError, GridMismatchError, OSError, ValueError) as exc:
            skipped[uid] = str(exc)
            continue
        scans.append(Scan(uid, c["patient_key"], c["center"], volume, labels))
    return scans, skipped


def write_model_folder(result: AdaptResult, models_dir: Path) -> tuple[Path, str]:
    """Save the adapted model with its card under `models_dir/adapted/<version[:16]>/`; (checkpoint, version)."""
    staging = models_dir / "adapted" / ".staging.pt"
    version = result.model.save(staging)
    folder = models_dir / "adapted" / version[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pt"
    shutil.move(staging, path)
    for name, text in getattr(result.model, "companions", dict)().items():  # files the checkpoint runs with
        (folder / name).write_text(text)
    (folder / "model_card.json").write_text(json.dumps(result.card, indent=1, default=str))
    (folder / "model_card.md").write_text(model_card_markdown(result, version))
    return path, version


def model_card_markdown(result: AdaptResult, version: str) -> str:
    """The model card for people: what it is, what it learned from, how it did on held-out patients."""
    from vocabulary.labels import BY_KEY

    card, data = result.card, result.card["data"]
    lines = [f"# {result.model.name}", "", f"Version (SHA-256 of model.pt): `{version}`",
             f"Adapted from: {card['adapted_from']['name']} `{card['adapted_from']['version'][:16]}`", "",
             "## Data", "",
             f"- Annotated training series per center: {data['annotated_training_series']}",
             f"- Pseudo-labelled series (the starting model's labels) per center: {data['pseudo_labelled_series']}",
             f"- Held-out patients: {data['held_out_patients']}; their annotated series per center: "
             f"{data['held_out_series']}",
             f"- Partially annotated training series: {data['partially_annotated_series']}",
             "", "## Held-out patients: pooled Dice against the annotations", "",
             "| class | before | after |", "|---|---|---|"]
    table = result.per_class.pivot_table(index="class", columns="comparison", values="dice_pooled", sort=False)
    for key, row in table.iterrows():
        name = BY_KEY[key].name if key in BY_KEY else "Any hemorrhage"
        lines.append(f"| {name} | {row.get('before', float('nan')):.3f} | {row.get('after', float('nan')):.3f} |")
    lines += ["", f"Score ({card['validation']['score']}): before {result.score_before:.3f}, after "
              f"{result.score_after:.3f}: {result.verdict}.", ""]
    return "\n".join(lines)


def adapt_study(engine: Engine, home: Home, spec: str | None, options: AdaptOptions, device: torch.device, *,
                actor: str, promote: bool, segmenter: Callable, on_step: Callable | None = None,
                tuning: DeepMedicTuning | None = None) -> StudyAdaptation:
    """Adapt, save and register the model; promote it only when it is better on the held-out patients.

    `segmenter(model)` labels volumes with a U-Net; a DeepMedic start runs through its own fast inference
    and trains with `tuning` (default `DeepMedicTuning()`).
    """
    with session_scope(engine) as session:
        initial = starting_model(session, home, spec)
    scans, skipped = study_scans(engine, options)
    if isinstance(initial, DeepMedicCheckpoint):
        result = adapt_deepmedic(initial, scans, options, tuning or DeepMedicTuning(seed=options.seed), device,
                                 on_step=on_step)
    else:
        result = adapt(initial, scans, segmenter, options, device, on_step=on_step)
    path, version = write_model_folder(result, home.models_dir)
    promoted = False
    with session_scope(engine) as session:
        store.register_model(session, version=version, name=result.model.name, path=path,
                             parent_version=initial.version, card=result.card, actor=actor)
        if promote and result.improved:
            store.promote_model(session, version)
            promoted = True
    return StudyAdaptation(result, path, version, promoted, skipped)
