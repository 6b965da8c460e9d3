"""CT classifications through the registry: extracted from truth masks, the clinical record's tSAH used, and a
reviewer's component stored, audited and shown as reviewer-entered."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from biomarkers import store
from biomarkers.review_components import set_component
from ctstudy.cli import app
from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, Series, SeriesFeatures
from registry.home import Home

runner = CliRunner()


def cli(home: Home, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--home", str(home.root), "--db-url", home.db_url, *args])
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic.study import generate_study

    out = tmp_path_factory.mktemp("study") / "s"
    generate_study(out, centers=2, patients=4, seed=11, matrix=128)
    return out


def test_scores_from_truth_masks_agree_with_truth_and_a_reviewer_component_rescores(home: Home, study: Path,
                                                                                  tmp_path: Path) -> None:
    for args in (("registry", "ingest", str(study / "dicom")),
                 ("registry", "import-clinical", str(study / "clinical.csv")),
                 ("biomarkers", "extract", "--source", "truth-dir", str(study))):
        code, out = cli(home, *args)
        assert code == 0, out
    csv = tmp_path / "series.csv"
    assert cli(home, "biomarkers", "export", str(csv))[0] == 0
    truth = pd.read_csv(study / "truth" / "series.csv")
    got = pd.read_csv(csv).merge(truth, on="series_instance_uid", suffixes=("", "_truth"))
    assert len(got) == len(truth)
    clinical = pd.read_csv(study / "clinical.csv").set_index("patient_id")["tsah"]
    known_tsah = got["patient_id_truth"].map(clinical).notna()
    # Evacuation comes from the clinical record's surgery field (none of these patients had one).
    assert ((got["marshall_ct_class_low"] <= got["marshall_ct_class_truth"])
            & (got["marshall_ct_class_truth"] <= got["marshall_ct_class_high"])).all()
    assert (got["ct_evacuated_source"] == "clinical_record").all() and (got["ct_evacuated"] == 0).all()
    assert (got.loc[known_tsah, "ct_tsah_source"] == "clinical_record").all()
    assert (got.loc[~known_tsah, "ct_tsah_source"] == "unknown").all()

    engine = make_engine(home.db_url)
    try:
        uid = got["series_instance_uid"].iloc[0]
        with session_scope(engine) as session:
            sid = session.scalars(select(Series.id).where(Series.series_instance_uid == uid)).one()
            set_component(session, sid, "basal_cisterns", "absent", reviewer="dr.r", note="effaced on review")
            set_component(session, sid, "tsah", "yes", reviewer="dr.r")
        with session_scope(engine) as session:
            row = session.scalars(select(SeriesFeatures).where(SeriesFeatures.series_id == sid)).one()
            v = row.values
            assert v["ct_basal_cisterns"] == "absent" and v["ct_basal_cisterns_source"] == "reviewer"
            assert v["ct_tsah"] == 1.0 and v["ct_tsah_source"] == "reviewer"
            assert v["rotterdam_ct_score"] is not None and v["rotterdam_ct_score"] >= 4  # cisterns 2 + tSAH 1 + 1
            assert v["marshall_ct_class"] >= 3
            assert v["basal_cisterns"] == got["basal_cisterns"].iloc[0]  # the measured value stays as measured
            events = session.scalars(select(AuditEvent).where(AuditEvent.action == "biomarkers.score_component")).all()
            assert len(events) == 2 and events[0].actor == "dr.r"
            set_component(session, sid, "basal_cisterns", "unset", reviewer="dr.r")
        with session_scope(engine) as session:
            v = session.scalars(select(SeriesFeatures).where(SeriesFeatures.series_id == sid)).one().values
            assert v["ct_basal_cisterns_source"] == "measured"
            with pytest.raises(ValueError, match="basal_cisterns: 'gone' is not one of"):
                set_component(session, sid, "basal_cisterns", "gone", reviewer="dr.r")
            with pytest.raises(ValueError, match="cannot be set by a reviewer"):
                set_component(session, sid, "ivh", "yes", reviewer="dr.r")
        # A re-extraction keeps the reviewer's tSAH.
        code, out = cli(home, "biomarkers", "extract", "--source", "truth-dir", str(study), "--force")
        assert code == 0, out
        with session_scope(engine) as session:
            row = store.stored_features(session, sid, "truth")
            assert row is not None and row.values["ct_tsah_source"] == "reviewer"
    finally:
        engine.dispose()
