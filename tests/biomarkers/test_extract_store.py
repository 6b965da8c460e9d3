"""Extraction through the registry: a synthetic study ingested like real data, truth masks, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from biomarkers import store
from biomarkers.series import DEFINITIONS_VERSION
from ctstudy.cli import app
from imaging.volume import read_mask, write_mask
from registry.db.engine import make_engine, session_scope
from registry.db.models import Center, Patient, Series, SeriesFeatures, Study
from registry.home import Home

runner = CliRunner()


def cli(home: Home, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, *args])
    return result.exit_code, " ".join(result.output.split())  # rich wraps lines at the terminal width


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic.study import generate_study

    out = tmp_path_factory.mktemp("study") / "s"
    generate_study(out, centers=2, patients=3, seed=3, matrix=128)
    return out


def registered(home: Home, study: Path) -> Home:
    code, out = cli(home, "registry", "ingest", str(study / "dicom"))
    assert code == 0, out
    code, out = cli(home, "registry", "import-clinical", str(study / "clinical.csv"))
    assert code == 0, out
    return home


def test_truth_dir_extraction_matches_truth_and_is_idempotent(home: Home, study: Path, tmp_path: Path) -> None:
    registered(home, study)
    code, out = cli(home, "biomarkers", "extract", "--source", "truth-dir", str(study))
    truth = pd.read_csv(study / "truth" / "series.csv")
    assert code == 0, out
    assert f"{len(truth)} computed" in out

    code, out = cli(home, "biomarkers", "extract", "--truth-dir", str(study))
    assert code == 0 and f"0 computed, {len(truth)} already current" in out

    csv = tmp_path / "series.csv"
    assert cli(home, "biomarkers", "export", str(csv))[0] == 0
    got = pd.read_csv(csv).merge(truth, on="series_instance_uid", suffixes=("", "_truth"))
    assert len(got) == len(truth)
    assert np.allclose(got["hematoma_ml"], got["hematoma_ml_truth"], rtol=0.005, atol=1e-6)
    assert np.allclose(got["edema_ml"], got["edema_ml_truth"], rtol=0.005, atol=1e-6)
    assert (got["lesion_count"] == got["lesion_count_truth"]).all()
    assert (got["side"] == got["side_truth"]).all()
    assert (got["timepoint"] == got["timepoint_truth"]).all()
    assert (got["source"] == "truth").all() and (got["definitions_version"] == DEFINITIONS_VERSION).all()

    parquet = tmp_path / "patients.parquet"
    assert cli(home, "biomarkers", "export", str(parquet), "--per-patient")[0] == 0
    patients = pd.read_parquet(parquet)
    key = got[["patient_id", "patient_id_truth"]].drop_duplicates()
    truth_p = pd.read_csv(study / "truth" / "patient_level.csv").rename(columns={"patient_id": "patient_id_truth"})
    both = patients.merge(key, on="patient_id").merge(truth_p, on="patient_id_truth", suffixes=("", "_truth"))
    assert len(both) == len(truth_p)
    for col in ("adm_hematoma_ml", "peak_edema_ml", "hematoma_expansion_ml", "edema_growth_ml_per_day"):
        np.testing.assert_allclose(both[col].astype(float), both[f"{col}_truth"].astype(float), rtol=0.005,
                                   atol=1e-4, equal_nan=True, err_msg=col)
    for col in ("adm_lesion_count", "adm_lesion_left", "significant_expansion", "n_scans"):
        np.testing.assert_array_equal(both[col].astype(float), both[f"{col}_truth"].astype(float), err_msg=col)


def test_changed_mask_is_recomputed_and_a_bad_one_fails_alone(home: Home, study: Path, tmp_path: Path) -> None:
    registered(home, study)
    masks = tmp_path / "truth" / "masks"
    masks.mkdir(parents=True)
    for p in (study / "truth" / "masks").glob("*.nii.gz"):
        (masks / p.name).write_bytes(p.read_bytes())
    assert cli(home, "biomarkers", "extract", "--truth-dir", str(tmp_path))[0] == 0
    first, second = sorted(masks.glob("*.nii.gz"))[:2]
    labels, affine = read_mask(first)
    labels[labels.shape[0] // 2, 5:9, 5:9] = 1  # 16 more hematoma voxels
    write_mask(first, labels, affine)
    labels2, affine2 = read_mask(second)
    write_mask(second, labels2[:-1], affine2)  # one slice short: the wrong grid

    engine = make_engine(home.db_url)
    uid_second = second.name[: -len(".nii.gz")]
    with session_scope(engine) as session:
        before = {r.series_id: dict(r.values) for r in session.query(SeriesFeatures)}
    code, out = cli(home, "biomarkers", "extract", "--truth-dir", str(tmp_path))
    assert code == 1
    assert "1 computed" in out and "1 failed" in out and uid_second in out and "mask grid" in out
    with session_scope(engine) as session:
        after = {r.series_id: dict(r.values) for r in session.query(SeriesFeatures)}
        sid_second = session.query(Series.id).filter(Series.series_instance_uid == uid_second).scalar()
    engine.dispose()
    assert after[sid_second] == before[sid_second]  # the failed series keeps its stored features
    changed = [sid for sid in after if after[sid]["hematoma_ml"] != before[sid]["hematoma_ml"]]
    assert len(changed) == 1


def test_auto_uses_manual_annotations_when_there_is_no_segmentation(home: Home, study: Path) -> None:
    registered(home, study)
    code, out = cli(home, "registry", "import-annotations", str(study / "truth" / "masks"))
    assert code == 0, out
    code, out = cli(home, "biomarkers", "extract")
    assert code == 0, out
    engine = make_engine(home.db_url)
    with session_scope(engine) as session:
        rows = session.query(SeriesFeatures).all()
        assert rows and all(r.source == "manual" and r.annotation_id is not None for r in rows)
        assert all(r.mask_sha256 and len(r.mask_sha256) == 64 for r in rows)
    engine.dispose()


def test_a_partial_annotation_gives_no_features_and_says_why(home: Home, study: Path, tmp_path: Path) -> None:
    """Its volumes would be the annotated part's: the series has no manual features, the reason is printed."""
    registered(home, study)
    masks = sorted((study / "truth" / "masks").glob("*.nii.gz"))
    partial_dir = tmp_path / "partial"
    partial_dir.mkdir()
    labels, affine = read_mask(masks[0])
    labels[labels.shape[0] // 2:] = 255  # the annotator left the upper half out
    write_mask(partial_dir / masks[0].name, labels, affine)
    code, out = cli(home, "registry", "import-annotations", str(partial_dir))
    assert code == 0 and "partial" in out, out
    code, out = cli(home, "biomarkers", "extract", "--source", "manual")
    assert "partial annotation" in out and "not the scan's" in out, out
    engine = make_engine(home.db_url)
    with session_scope(engine) as session:
        assert session.query(SeriesFeatures).count() == 0
    engine.dispose()


def test_export_refuses_unknown_formats_and_empty_registries(home: Home, tmp_path: Path) -> None:
    assert cli(home, "biomarkers", "export", str(tmp_path / "x.xlsx"))[0] == 2
    code, out = cli(home, "biomarkers", "export", str(tmp_path / "x.csv"))
    assert code == 1 and "extract" in out


@pytest.mark.postgres
def test_missing_values_are_stored_as_null_on_both_databases(any_home: Home) -> None:
    engine = make_engine(any_home.db_url)
    with session_scope(engine) as session:
        center = Center(code="X1")
        patient = Patient(pseudo_id="p" * 40, center=center)
        study_row = Study(study_instance_uid="1.2.3", patient=patient)
        series = Series(series_instance_uid="1.2.3.4", study=study_row)
        session.add(series)
        session.flush()
        job = store.MaskJob(series.id, "1.2.3.4", store.SOURCE_TRUTH, Path("m.nii.gz"))
        store.save_features(session, job, "a" * 64, {"hematoma_ml": 0.0, "largest_lesion_left": float("nan"),
                                                     "lesion_count": np.int64(0)}, pd.DataFrame())
    with session_scope(engine) as session:
        table = store.series_feature_table(session)
        row = session.query(SeriesFeatures).one()
        assert row.values["largest_lesion_left"] is None and row.values["lesion_count"] == 0
    engine.dispose()
    assert math.isnan(table.loc[0, "largest_lesion_left"]) and table.loc[0, "timepoint"] == 0


@pytest.mark.parametrize("texts", [
    ['{"hematoma_ml": 1, "side": "L"}', None, '{"hematoma_ml": 2.5, "ivh_present": true, "side": null}'],
    ['{"x": true}', '{"x": 1.0}'],  # a key mixing types: Arrow refuses, json.loads decodes
    ['{\n "a": 1\n}', '{"a": 2}'],  # not one object per line
    ['{"l": [1, 2]}', '{"l": null}'],  # lists stay lists
    ["{}", None],
])
def test_feature_values_decode_as_json_loads_does(texts: list[str | None]) -> None:
    got = store.decode_json_objects(pd.Series(texts, index=range(7, 7 + len(texts))))
    expected = pd.DataFrame([json.loads(t or "{}") for t in texts], index=range(7, 7 + len(texts)))
    pd.testing.assert_frame_equal(got.where(got.notna(), None), expected.where(expected.notna(), None))
    for column in got.columns:
        assert [type(v) for v in got[column].dropna()] == [type(v) for v in expected[column].dropna()], column


def test_a_segmentation_gets_the_hemorrhage_calibration_of_its_own_model(home: Home, study: Path) -> None:
    import datetime as dt

    from biomarkers.ich_probability import calibration_path, load_calibration, presence_probabilities
    from imaging.store import RUN_DONE, record_run

    registered(home, study)
    blast = load_calibration(calibration_path("blast-ct"))
    models = [("blast-ct", blast["model"]["version"]), ("distilled", "d" * 64)]
    engine = make_engine(home.db_url)
    with session_scope(engine) as session:
        series = session.query(Series).order_by(Series.id).limit(2).all()
        for s, (name, version) in zip(series, models, strict=True):
            record_run(session, s, model_name=name, model_version=version, device="cpu", status=RUN_DONE,
                       mask_path=study / "truth" / "masks" / f"{s.series_instance_uid}.nii.gz", seconds=1.0,
                       timings=None, error=None, started_at=dt.datetime(2026, 1, 1))
        ids = [s.id for s in series]
    code, out = cli(home, "biomarkers", "extract")
    assert code == 0 and "2 computed" in out, out
    with session_scope(engine) as session:
        values = {r.series_id: dict(r.values) for r in session.query(SeriesFeatures)}
    engine.dispose()
    calibrated, uncalibrated = values[ids[0]], values[ids[1]]
    assert calibrated["ich_calibration"] == f"blast-ct {blast['model']['version'][:12]}"
    assert calibrated["ich_probability"] == pytest.approx(
        presence_probabilities(calibrated, blast)["ich_probability"])
    assert uncalibrated["ich_calibration"] == "none" and uncalibrated["ich_probability"] is None
    assert uncalibrated["ich_probability_reason"] == "no calibration for model distilled dddddddddddd"
