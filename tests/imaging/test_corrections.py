"""The correction round trip: export a model's masks for an annotator, import the corrections, measure the change."""

from __future__ import annotations

import datetime as dt
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from imaging_study import write_study
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging import store
from imaging.correction import correction_changes, summarize_corrections
from imaging.store import segmentation_mask_path
from imaging.volume import load_series, read_mask, write_mask
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import CorrectionAgreement, ManualAnnotation, Series
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory
from vocabulary.labels import EAH, IPH, LESION_CLASSES, UNANNOTATED

runner = CliRunner()


def _pretend_segmented(session, home: Home, uid: str, labels: np.ndarray, affine: np.ndarray, version: str) -> None:
    """A finished segmentation run whose mask is `labels` (the model's output the annotator will correct)."""
    series = store.series_by_uid(session, uid)
    path = write_mask(segmentation_mask_path(home.masks_dir, version, uid), labels, affine)
    store.record_run(session, series, model_name="test model", model_version=version, device="cpu", status="done",
                     mask_path=path, seconds=0.1, timings=None, error=None,
                     started_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))


def _model_error(truth: np.ndarray) -> np.ndarray:
    """The model's mistakes: half of the IPH missed, a false extra-axial rim added on two slices."""
    model = truth.copy()
    iph = np.argwhere(truth == IPH)
    missed = iph[: len(iph) // 2]
    model[tuple(missed.T)] = 0
    z = truth.shape[0] // 2
    model[z:z + 2, 2:4, 10:30] = EAH
    return model


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("corrections")
    records = write_study(root / "study", patients=4, seed=11, matrix=48)
    home = Home.resolve(root / "home")
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, root / "study" / "dicom", actor="test")
    with_lesion = [r["series_instance_uid"] for r in records
                   if (read_mask(root / "study" / "truth" / "masks" / f"{r['series_instance_uid']}.nii.gz")[0]
                       == IPH).sum() > 20]
    assert len(with_lesion) >= 2, "the seed must give two series with a hematoma"
    truth, model = {}, {}
    with session_scope(engine) as session:
        for uid in with_lesion:
            record_qc_decision(session, uid, "passed", None, "test")
            labels, affine = read_mask(root / "study" / "truth" / "masks" / f"{uid}.nii.gz")
            truth[uid], model[uid] = labels, _model_error(labels)
            _pretend_segmented(session, home, uid, model[uid], affine, "a" * 64)
    engine.dispose()
    return {"root": root, "home": home, "uids": with_lesion, "truth": truth, "model": model}


def cli(study: dict, *args: str):
    return runner.invoke(app, ["--home", str(study["home"].root), *args], catch_exceptions=False)


def test_export_writes_mask_ct_and_seg_on_one_grid(study, tmp_path):
    out = tmp_path / "package"
    result = cli(study, "imaging", "export-correction", "--center", "XX01", "--out", str(out))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "corrections.json").read_text())["series"]
    assert set(manifest) == set(study["uids"])
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        for uid in study["uids"]:
            mask, mask_affine = read_mask(out / "masks" / f"{uid}.nii.gz")
            assert np.array_equal(mask, study["model"][uid])  # the model's mask, to be corrected in place
            ct = nib.load(out / "ct" / f"{uid}.nii.gz")
            mask_img = nib.load(out / "masks" / f"{uid}.nii.gz")
            assert np.allclose(ct.affine, mask_img.affine) and ct.shape == mask_img.shape
            volume = load_series(store.instance_paths(session, store.series_by_uid(session, uid)))
            hu = np.asanyarray(ct.dataobj).transpose(2, 1, 0)
            assert np.abs(hu - volume.hu).max() <= 0.5  # HU, rounded to whole units
            assert (out / "seg" / f"{uid}.dcm").stat().st_size > 0
            assert manifest[uid]["model_version"] == "a" * 64
    engine.dispose()


def test_import_measures_what_the_annotator_changed_against_the_exported_run(study, tmp_path):
    out = tmp_path / "package"
    assert cli(study, "imaging", "export-correction", "--series", study["uids"][0], "--series", study["uids"][1],
               "--out", str(out)).exit_code == 0
    # A newer model segments the series after the export: the correction is still of the exported mask.
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        for uid in study["uids"][:2]:
            _, affine = read_mask(out / "masks" / f"{uid}.nii.gz")
            _pretend_segmented(session, study["home"], uid, np.zeros_like(study["truth"][uid]), affine, "b" * 64)
    # The annotator corrects each mask in place: back to the truth.
    for uid in study["uids"][:2]:
        _, affine = read_mask(out / "masks" / f"{uid}.nii.gz")
        write_mask(out / "masks" / f"{uid}.nii.gz", study["truth"][uid], affine)

    result = cli(study, "imaging", "import-corrections", str(out), "--annotator", "reader 1")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich folds long lines at the terminal's width
    assert "2 corrections imported" in said
    assert "Intraparenchymal hematoma" in said and " iph " not in said

    with session_scope(engine) as session:
        for uid in study["uids"][:2]:
            series = session.scalars(select(Series).where(Series.series_instance_uid == uid)).one()
            ann = session.scalars(select(ManualAnnotation).where(ManualAnnotation.series_id == series.id)).one()
            assert ann.annotator == "reader 1"
            rows = {r.lesion_class: r for r in session.scalars(
                select(CorrectionAgreement).where(CorrectionAgreement.annotation_id == ann.id))}
            assert set(rows) == {c.key for c in LESION_CLASSES}
            model, truth = study["model"][uid], study["truth"][uid]
            m, t = model == IPH, truth == IPH
            assert rows["iph"].dice == pytest.approx(2 * (m & t).sum() / (m.sum() + t.sum()))
            assert rows["iph"].dice < 0.8  # half the hematoma was missed
            assert rows["iph"].corrected_ml > rows["iph"].model_ml
            assert rows["eah"].model_ml > 0 and (rows["eah"].corrected_ml == 0) == (not (truth == EAH).any())
            assert session.get(type(ann), ann.id) is not None
            run_versions = {r.segmentation_run_id for r in rows.values()}
            assert len(run_versions) == 1
            run = store.run_for(session, series, "a" * 64)
            assert run_versions == {run.id}  # compared with the exported run, not the newer one

    summary = cli(study, "imaging", "corrections")
    assert summary.exit_code == 0, summary.output
    said = " ".join(summary.output.split())
    assert "XX01" in said and "Pooled Dice" in said
    engine.dispose()


def test_summary_pools_voxels_over_series() -> None:
    a = np.zeros((2, 10, 10), np.uint8)
    b = a.copy()
    a[0, :5, :5] = IPH  # series 1: model 25 voxels, correction 25, overlap 25 -> Dice 1
    b[0, :5, :5] = IPH
    c = np.zeros_like(a)
    c[1, 0, 0] = IPH  # series 2: model 1 voxel, correction none -> Dice 0
    rows = pd.DataFrame([{"center": "A", **r} for r in correction_changes(a, b, 0.001)]
                        + [{"center": "A", **r} for r in correction_changes(c, np.zeros_like(c), 0.001)])
    out = summarize_corrections(rows).set_index("class").loc["iph"]
    assert out["corrections"] == 2 and out["with_class"] == 2
    assert out["dice_mean"] == pytest.approx(0.5)
    assert out["dice_pooled"] == pytest.approx(2 * 25 / (26 + 25))
    assert out["change_ml_mean"] == pytest.approx(-0.0005)


def test_a_broken_manifest_is_named(study, tmp_path):
    out = tmp_path / "package"
    (out / "masks").mkdir(parents=True)
    (out / "corrections.json").write_text("{not json")
    result = runner.invoke(app, ["--home", str(study["home"].root), "imaging", "import-corrections", str(out)])
    assert result.exit_code != 0
    said = "".join(result.output.split())  # folded lines may cut the file name itself
    assert "corrections.json" in said and "notacorrectionmanifest" in said


def test_a_dicom_seg_of_a_partial_mask_has_no_segment_for_unannotated_voxels(study):
    from imaging.dicom_seg import segmentation_dataset

    uid = study["uids"][0]
    engine = make_engine(study["home"].db_url)
    with session_scope(engine) as session:
        paths = store.instance_paths(session, store.series_by_uid(session, uid))
    engine.dispose()
    volume = load_series(paths)
    labels = study["truth"][uid].copy()
    labels[: labels.shape[0] // 2] = UNANNOTATED  # the annotator left the lower half out
    seg = segmentation_dataset(paths, labels, volume.sop_instance_uids, "test model", "a" * 64)
    kept = [c.key for c in LESION_CLASSES if (labels == c.value).any()]
    assert [s.TrackingID for s in seg.SegmentSequence] == kept
    assert int(np.asarray(seg.pixel_array).sum()) == int(np.isin(labels, [c.value for c in LESION_CLASSES]).sum())
