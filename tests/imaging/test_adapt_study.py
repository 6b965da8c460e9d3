"""`imaging adapt` on a small registered study: held-out patients, a registered model with its card, promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from imaging_study import write_study
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging.adapt_study import resolve_default_spec
from imaging.model import file_sha256
from registry.annotations import import_annotations
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import StudyModel
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory

runner = CliRunner()
TINY = ("--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "4", "--threads", "2")


def annotated_study(tmp_path: Path, seed: int, **series) -> dict:
    """Five registered patients, all QC-passed, the first four annotated with their truth masks (one series left
    for pseudo-labels); `series` goes to `write_study` (e.g. slice_thickness)."""
    records = write_study(tmp_path / "study", patients=5, seed=seed, matrix=48, **series)
    home = Home.resolve(tmp_path / "home")
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, tmp_path / "study" / "dicom", actor="test")
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    uids = [r["series_instance_uid"] for r in records]
    with session_scope(engine) as session:
        for uid in uids:
            record_qc_decision(session, uid, "passed", None, "test")
        for uid in uids[:4]:
            (annotations / f"{uid}.nii.gz").write_bytes(
                (tmp_path / "study" / "truth" / "masks" / f"{uid}.nii.gz").read_bytes())
        import_annotations(session, annotations, home.masks_dir, "test", "reader")
    engine.dispose()
    return {"home": home, "uids": uids}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return annotated_study(tmp_path_factory.mktemp("adapt"), seed=11)


def cli(study: dict, *args: str):
    return runner.invoke(app, ["--home", str(study["home"].root), *args], catch_exceptions=False)


def test_adapt_registers_a_model_with_its_card_and_prints_its_spec_last(study):
    result = cli(study, "imaging", "adapt", "--from", "phantom", "--promote", *TINY)
    assert result.exit_code == 0, result.output
    spec = Path(result.output.strip().splitlines()[-1])
    assert spec.is_file() and spec.name == "model.pt"
    card = json.loads((spec.parent / "model_card.json").read_text())
    assert card["data"]["held_out_patients"] == 1  # round(4 x 0.3) of the one center's annotated patients
    assert sum(card["data"]["annotated_training_series"].values()) == 3
    assert sum(card["data"]["pseudo_labelled_series"].values()) == 1
    assert card["training"]["freeze_batchnorm"] is True  # the starting model's BatchNorm statistics kept
    assert (spec.parent / "model_card.md").read_text().startswith("# unet2d-adapted from")
    said = " ".join(result.output.split())
    assert "Pooled Dice before" in said and "Pooled Dice after" in said
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        row = session.scalars(select(StudyModel).where(StudyModel.version == file_sha256(spec))).one()
        assert row.path == str(spec)
        # Promoted exactly when the held-out score went up; the default segment model follows.
        assert (row.promoted_at is not None) == card["validation"]["improved"]
        expected = str(spec) if card["validation"]["improved"] else "blast-ct"
        assert resolve_default_spec(session, None) == expected
    engine.dispose()


def test_a_model_no_better_on_held_out_patients_is_not_promoted(study):
    result = cli(study, "imaging", "adapt", "--from", "phantom", "--promote", "--min-gain", "1", "--seed", "2", *TINY)
    assert result.exit_code == 0, result.output
    assert "Not promoted" in " ".join(result.output.split())
    spec = Path(result.output.strip().splitlines()[-1])
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        row = session.scalars(select(StudyModel).where(StudyModel.version == file_sha256(spec))).one()
        assert row.promoted_at is None
        assert resolve_default_spec(session, None) != str(spec)
    engine.dispose()


@pytest.fixture(scope="module")
def thick_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Five patients, four annotated, in 15 mm slices: few planes for BLAST-CT's network to compute."""
    return annotated_study(tmp_path_factory.mktemp("adapt_blast_ct"), seed=13, slice_thickness=15.0)


@pytest.mark.slow
def test_adapting_blast_ct_registers_a_deepmedic_checkpoint_that_segment_runs(thick_study):
    result = cli(thick_study, "imaging", "adapt", "--from", "blast-ct", "--promote", "--min-gain", "1",
                 "--epochs", "2", "--steps-per-epoch", "3", "--threads", "2")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Not promoted" in said and "Pooled Dice after" in said
    spec = Path(result.output.strip().splitlines()[-1])
    assert spec.name == "model.pt" and (spec.parent / "config.json").is_file()
    card = json.loads((spec.parent / "model_card.json").read_text())
    assert card["adapted_from"]["name"] == "blast-ct"
    assert card["network"]["architecture"] == "DeepMedic (BLAST-CT)"
    assert card["data"]["held_out_patients"] == 1 and sum(card["data"]["pseudo_labelled_series"].values()) == 1
    assert (spec.parent / "model_card.md").read_text().startswith("# blast-ct-adapted from blast-ct")
    engine = make_engine(thick_study["home"].db_url)
    with session_scope(engine) as session:
        row = session.scalars(select(StudyModel).where(StudyModel.version == file_sha256(spec))).one()
        assert row.promoted_at is None and resolve_default_spec(session, None) == "blast-ct"
    engine.dispose()
    uid = thick_study["uids"][4]
    seg = cli(thick_study, "imaging", "segment", "--model", str(spec), "--series", uid, "--threads", "2")
    assert seg.exit_code == 0, seg.output
    assert f"model blast-ct-adapted {file_sha256(spec)[:16]}" in " ".join(seg.output.split())
    assert "1 segmented" in " ".join(seg.output.split())
