"""Registry -> imaging end to end on a tiny ingested study: annotations, train, segment, export-seg, evaluate."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from imaging_study import write_study
from sqlalchemy import delete, select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging.model import load_model
from imaging.train import TrainingConfig, TrainingExample, train_model
from imaging.volume import load_series, read_mask, write_mask
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import AuditEvent, Instance, ManualAnnotation, SegmentationRun, Series, SeriesFeatures
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory
from vocabulary.labels import LESION_CLASSES

runner = CliRunner()
TINY = TrainingConfig(epochs=2, steps_per_epoch=3, batch_size=4, patch=32, seed=3,
                      net={"channels": [4, 8], "strides": [2], "num_res_units": 0})


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("imaging_study")
    records = write_study(root / "study", patients=4, seed=11, matrix=48)
    home = Home.resolve(root / "home")
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, root / "study" / "dicom", actor="test")
    uids = [r["series_instance_uid"] for r in records]
    with session_scope(engine) as session:
        for uid in uids[:3]:
            record_qc_decision(session, uid, "passed", None, "test")
    examples = []
    with session_scope(engine) as session:
        for uid in uids:
            s = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
            paths = session.scalars(select(Instance.file_path).where(Instance.series_id == s.id)).all()
            vol = load_series(paths)
            labels, _ = read_mask(root / "study" / "truth" / "masks" / f"{uid}.nii.gz")
            examples.append(TrainingExample(uid, f"p{s.study_id}", vol.hu, labels))
    from imaging.preprocess import Preprocessing

    model = train_model(examples, TINY, Preprocessing(size=32))
    model_path = root / "tiny.pt"
    model.save(model_path)
    engine.dispose()
    return {"root": root, "home": home, "uids": uids, "model": model_path, "truth": root / "study" / "truth"}


def cli(study: dict, *args: str):
    return runner.invoke(app, ["--home", str(study["home"].root), *args], catch_exceptions=False)


def test_training_is_deterministic_and_checkpoint_carries_provenance(tmp_path):
    from synthetic.phantom import single_hematoma_series

    examples = [TrainingExample(f"1.2.{i}", f"p{i}", r.hu, r.labels) for i, r in enumerate(
        single_hematoma_series(v, side, matrix=48, seed=i) for i, (v, side) in enumerate([(10, "left"), (20, "right"),
                                                                                          (5, "left")]))]
    from imaging.preprocess import Preprocessing

    a = train_model(examples, TINY, Preprocessing(size=32))
    b = train_model(examples, TINY, Preprocessing(size=32))
    for (ka, va), (_, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    version = a.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.version == version and len(version) == 64
    assert loaded.preprocessing == Preprocessing(size=32)
    assert loaded.label_map == {0: "background", 1: "iph", 2: "eah", 3: "edema", 4: "ivh"}
    assert loaded.net(torch.rand(1, 1, 32, 32)).shape[1] == 5  # one output per class of the label map
    for key in ("seed", "training_data_sha256", "metrics", "split"):
        assert key in loaded.metadata
    assert len(loaded.metadata["split"]["validation"]) == 1  # one patient of three held out
    x = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(a.net.eval()(x), loaded.net(x), atol=1e-6)


def test_segment_is_idempotent_records_runs_and_goes_on_after_a_failure(study):
    uids, model = study["uids"], study["model"]
    result = cli(study, "imaging", "segment", "--all", "--model", str(model), "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "3 segmented" in result.output  # the 4th series is QC pending
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        runs = session.scalars(select(SegmentationRun)).all()
        assert len(runs) == 3 and {r.status for r in runs} == {"done"}
        run = runs[0]
        assert run.device == "cpu" and run.seconds > 0 and run.timings["slices"] > 0
        assert run.model_version == load_model(model).version
        s = session.get(Series, run.series_id)
        vol = load_series(session.scalars(select(Instance.file_path).where(Instance.series_id == s.id)).all())
        labels, affine = read_mask(run.mask_path)
        assert labels.shape == vol.shape and np.allclose(affine, vol.affine)
        assert Path(run.mask_path).is_relative_to(study["home"].masks_dir)

    again = cli(study, "imaging", "segment", "--all", "--model", str(model), "--device", "cpu")
    assert "0 segmented, 3 already done" in again.output

    # Pending series only with the flag; one broken series is recorded as failed and the run goes on.
    with session_scope(engine) as session:
        s = session.scalars(select(Series).where(Series.series_instance_uid == uids[3])).one()
        victim = session.scalars(select(Instance.file_path).where(Instance.series_id == s.id)).first()
    saved = Path(victim).read_bytes()
    Path(victim).write_bytes(b"not dicom")
    try:
        bad = cli(study, "imaging", "segment", "--all", "--include-pending", "--model", str(model), "--device", "cpu")
    finally:
        Path(victim).write_bytes(saved)
    assert bad.exit_code == 1 and "1 failed" in bad.output and "3 already done" in bad.output
    with session_scope(engine) as session:
        failed = session.scalars(select(SegmentationRun).where(SegmentationRun.status == "failed")).one()
        assert "not a readable DICOM file" in failed.error
    fixed = cli(study, "imaging", "segment", "--series", uids[3], "--include-pending", "--model", str(model))
    assert fixed.exit_code == 0 and "1 segmented" in fixed.output
    with session_scope(engine) as session:
        assert session.scalars(select(SegmentationRun).where(SegmentationRun.status == "failed")).first() is None
    engine.dispose()


def test_export_seg_references_source_instances(study, tmp_path):
    uid = study["uids"][0]
    cli(study, "imaging", "segment", "--series", uid, "--model", str(study["model"]))
    out = tmp_path / "seg.dcm"
    result = cli(study, "imaging", "export-seg", uid, "--out", str(out), "--model", str(study["model"]))
    assert result.exit_code == 0, result.output
    seg = hd.seg.segread(out)
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        s = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
        paths = session.scalars(select(Instance.file_path).where(Instance.series_id == s.id)).all()
        run = session.scalars(select(SegmentationRun).where(SegmentationRun.series_id == s.id)).one()
    engine.dispose()
    vol = load_series(paths)
    labels, _ = read_mask(run.mask_path)
    referenced = [ref.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence
                  for ref in item.ReferencedInstanceSequence]
    assert sorted(referenced) == sorted(vol.sop_instance_uids)
    # One segment per class present in the mask, in label order, coded from vocabulary.labels.
    present = [c for c in LESION_CLASSES if (labels == c.value).any()]
    assert present and seg.number_of_segments == len(present)
    for number, c in enumerate(present, start=1):
        desc = seg.get_segment_description(number)
        assert desc.segment_label == c.name and desc.tracking_id == c.key
        assert desc.segmented_property_type.value == c.snomed_code
        assert desc.segmented_property_type.scheme_designator == "SCT"
        assert desc.segmented_property_category.value == "49755003"  # Morphologically abnormal structure
    for k, sop in enumerate(vol.sop_instance_uids):
        frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=[sop],
                                                   segment_numbers=list(range(1, len(present) + 1)))
        for i, c in enumerate(present):
            assert np.array_equal(frames[0, :, :, i], labels[k] == c.value)
    assert pydicom.dcmread(out).Modality == "SEG"


def test_evaluate_against_truth_dir_writes_csv(study, tmp_path):
    cli(study, "imaging", "segment", "--all", "--model", str(study["model"]))
    out = tmp_path / "eval.csv"
    result = cli(study, "imaging", "evaluate", "--against", "truth-dir", "--truth-dir", str(study["truth"]),
                 "--model", str(study["model"]), "--out", str(out))
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert set(df["class"]) == {"iph", "eah", "edema", "ivh", "hemorrhage"}
    assert set(df["split"]) <= {"train", "validation", "test"} and "validation" in set(df["split"])
    assert df["series_instance_uid"].nunique() >= 3
    assert "ABC/2" in result.output


def test_import_annotations_checks_grid_and_keeps_versions(study, tmp_path):
    uids = study["uids"]
    src = tmp_path / "ann"
    src.mkdir()
    shutil.copy(study["truth"] / "masks" / f"{uids[0]}.nii.gz", src)
    labels, affine = read_mask(study["truth"] / "masks" / f"{uids[1]}.nii.gz")
    write_mask(src / f"{uids[1]}.nii.gz", labels[:-1], affine)  # one slice short
    moved = affine.copy()
    moved[0, 3] += 3.0
    write_mask(src / f"{uids[2]}.nii.gz", labels * 0, moved)
    bad_labels = labels.copy()
    bad_labels[0, 0, 0] = 7
    write_mask(src / f"{uids[3]}.nii.gz", bad_labels, affine)
    write_mask(src / "1.2.3.999.nii.gz", labels, affine)
    result = runner.invoke(app, ["--home", str(study["home"].root), "registry", "import-annotations", str(src),
                                 "--annotator", "reader-1"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "1 imported" in text and "4 rejected" in text
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        anns = session.scalars(select(ManualAnnotation)).all()
        assert len(anns) == 1 and anns[0].annotator == "reader-1" and Path(anns[0].mask_path).exists()
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "import_annotation")).one()
    again = runner.invoke(app, ["--home", str(study["home"].root), "registry", "import-annotations", str(src)])
    assert "0 imported, 1 unchanged" in " ".join(again.output.split())
    engine.dispose()


def test_import_annotations_messages_name_what_differs(study, tmp_path):
    uids = study["uids"]
    labels, affine = read_mask(study["truth"] / "masks" / f"{uids[1]}.nii.gz")
    src = tmp_path / "ann2"
    write_mask(src / f"{uids[1]}.nii.gz", labels[:-1], affine)
    moved = affine.copy()
    moved[0, 3] += 3.0
    write_mask(src / f"{uids[2]}.nii.gz", labels * 0, moved)
    result = runner.invoke(app, ["--home", str(study["home"].root), "registry", "import-annotations", str(src)])
    flat = " ".join(result.output.split())
    assert "grid_mismatch" in flat and "shape (z,y,x)" in flat and "origin" in flat


def test_segment_all_of_named_centers_only(study):
    from imaging.store import series_to_segment
    from registry.db.models import Center

    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        code = session.scalars(select(Center.code)).one()
        every = [s.series_instance_uid for s in series_to_segment(session)]
        assert [s.series_instance_uid for s in series_to_segment(session, centers=[code])] == every
        session.add(Center(code="ZZ999"))  # a center with no series yet
        session.flush()
        assert series_to_segment(session, centers=["ZZ999"]) == []
        session.rollback()
    engine.dispose()
    unknown = cli(study, "imaging", "segment", "--all", "--center", "NOPE", "--model", str(study["model"]))
    assert unknown.exit_code == 2 and "no center NOPE" in unknown.output


def test_segment_says_when_a_series_biomarkers_change_source(study):
    uid, model = study["uids"][1], study["model"]
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        series = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
        session.execute(delete(SegmentationRun).where(SegmentationRun.series_id == series.id))
        session.add(SeriesFeatures(series_id=series.id, source="manual", definitions_version="test", values={}))
    engine.dispose()
    result = cli(study, "imaging", "segment", "--series", uid, "--model", str(model))
    assert result.exit_code == 0, result.output
    assert "biomarker source changes" in result.output and "measured on a manual annotation" in result.output
    again = cli(study, "imaging", "segment", "--series", uid, "--model", str(model))
    assert "biomarker source changes" not in again.output  # already done by this model: nothing changes
