"""Marshall class V from the clinical record's surgery field: every scan of a patient whose mass lesion was
evacuated is class V, source clinical record; without the field, evacuation is not recorded; a field imported
after extraction rescores the stored features on the next extraction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from biomarkers.review_components import rescore_if_changed
from ctstudy.cli import app
from registry.db.engine import make_engine, session_scope
from registry.db.models import SeriesFeatures
from registry.home import Home

runner = CliRunner()


def cli(home: Home, *args: str) -> None:
    result = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def study(small_scored_study: Path) -> Path:
    return small_scored_study


def _scores(home: Home, study: Path, clinical: Path, out: Path) -> pd.DataFrame:
    cli(home, "registry", "ingest", str(study / "dicom"))
    cli(home, "registry", "import-clinical", str(clinical))
    cli(home, "biomarkers", "extract", "--source", "truth-dir", str(study))
    cli(home, "biomarkers", "export", str(out))
    truth = pd.read_csv(study / "truth" / "series.csv")
    return pd.read_csv(out).merge(truth, on="series_instance_uid", suffixes=("", "_truth"))


def test_an_evacuated_mass_lesion_makes_every_scan_marshall_v(home: Home, study: Path, tmp_path: Path) -> None:
    got = _scores(home, study, study / "clinical.csv", tmp_path / "series.csv")
    evacuated = got[got["evacuated"] == 1]
    assert len(evacuated) >= 2  # admission and follow-up: the class is the patient's
    assert (evacuated["marshall_ct_class"] == 5).all() and (evacuated["marshall_ct_class_truth"] == 5).all()
    assert (got["ct_evacuated_source"] == "clinical_record").all()
    assert (got["ct_evacuated"] == got["evacuated"]).all()
    assert (got.loc[got["evacuated"] == 0, "marshall_ct_class_high"] < 5).all()


def test_without_the_surgery_field_evacuation_is_not_recorded_until_it_is(home: Home, study: Path,
                                                                          tmp_path: Path) -> None:
    clinical = pd.read_csv(study / "clinical.csv").drop(columns="evacuated_mass_lesion")
    clinical.to_csv(tmp_path / "clinical.csv", index=False)
    got = _scores(home, study, tmp_path / "clinical.csv", tmp_path / "series.csv")
    assert (got["ct_evacuated_source"] == "not_recorded").all() and (got["ct_evacuated"] == 0).all()
    assert (got.loc[got["evacuated"] == 1, "marshall_ct_class"] != 5).all()
    # The surgery field imported after extraction: extracting again (masks unchanged, nothing recomputed from
    # the images) rescores the stored features, and a further run changes nothing.
    again = _scores(home, study, study / "clinical.csv", tmp_path / "again.csv")
    assert (again.loc[again["evacuated"] == 1, "marshall_ct_class"] == 5).all()
    assert (again["ct_evacuated_source"] == "clinical_record").all()
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            rows = session.scalars(select(SeriesFeatures)).all()
            assert rows and rescore_if_changed(session, rows) == 0
    finally:
        engine.dispose()
