"""`ctstudy prognosis fit` records a ModelFit from the registry; `report` writes one self-contained HTML file."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.db.engine import make_engine, session_scope
from registry.db.models import ModelFit
from registry.home import Home
from synthetic.outcomes import simulate_tabular


def test_fit_records_a_model_fit_and_report_embeds_everything(home: Home, tmp_path: Path) -> None:
    study = simulate_tabular(300, seed=5)
    study.clinical.to_csv(tmp_path / "clinical.csv", index=False)
    study.outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    runner = CliRunner()
    base = ["--home", str(home.root), "--db-url", home.db_url]
    for cmd in (["registry", "import-clinical", str(tmp_path / "clinical.csv"), "--create"],  # no images here
                ["registry", "import-outcomes", str(tmp_path / "outcomes.csv")]):
        assert runner.invoke(app, base + cmd).exit_code == 0
    res = runner.invoke(app, base + ["prognosis", "fit", "--outcome", "mortality", "--features", "clinical",
                                     "--m", "2", "--n-boot", "20"])
    assert res.exit_code == 0, res.output
    assert "Odds ratio" in res.output and "Recorded ModelFit #1" in res.output
    # Terms and metrics in words, one metric a line: no `key=value` pairs, no snake_case names.
    assert "Age (per year)" in res.output and "Events per model term" in res.output
    assert re.search(r"AUC \(apparent\)\W+0\.\d{3}", res.output)
    assert not re.search(r"\b[a-z]+_[a-z_0-9]+\b|\w=\d", res.output), res.output
    # Same data snapshot, same settings: the stored fit is reported unchanged, not fitted again.
    again = runner.invoke(app, base + ["prognosis", "fit", "--outcome", "mortality", "--features", "clinical",
                                       "--m", "2", "--n-boot", "20"])
    assert again.exit_code == 0 and "unchanged: ModelFit #1" in again.output
    # Imaging terms without extracted features: a clear error, nothing recorded.
    bad = runner.invoke(app, base + ["prognosis", "fit", "--outcome", "gos", "--features", "imaging"])
    assert bad.exit_code == 1 and "adm_hematoma_ml" in bad.output and "no observed" in bad.output
    engine = make_engine(home.db_url)
    with session_scope(engine) as session:
        fits = session.scalars(select(ModelFit)).all()
        assert len(fits) == 1
        f = fits[0]
        assert (f.outcome, f.feature_set, f.model_kind, f.cv) == ("mortality", "clinical", "logistic", "kfold")
        assert f.n_patients == 300 and f.n_events == int(study.outcomes["died"].sum())
        assert len(f.data_hash) == 64 and f.variables[0] == "age"
        assert {c["term"] for c in f.coefficients} >= {"const", "age", "motor_1"}
        assert 0.5 < f.metrics["cv_auc"] < 1 and f.metrics["curves"]["roc"]
        assert f.spec["model"]["cov"] and f.spec["m"] == 2
    engine.dispose()
    out = tmp_path / "report"
    res = runner.invoke(app, base + ["prognosis", "report", "--out", str(out), "--n-boot", "20", "--m", "1"])
    assert res.exit_code == 0, res.output
    text = (out / "prognosis_report.html").read_text()
    assert text.count("<script") >= 3 and "<script src=" not in text  # plotly inlined, no network
    assert "IMPACT core+ct+lab" in text and "Missing-data patterns" in text
    for section in ("What the data can support", "Methods", "Validated performance", "Coefficients", "Centers",
                    "Assumptions", "TRIPOD+AI checklist"):
        assert f">{section}</h2>" in text, section
    # The lead states the sample against Riley's criteria and links the simulation's results.
    assert "Riley" in text and "prognosis-simulation.md" in text
    assert "Multiply imputed" in text or "multiply imputed (m = 2)" in text  # methods from the fit record
    assert "pct_missing" not in text and "n_missing" not in text  # no raw column names
    assert "GCS ≤ 12" in text
    assert "Out of date." not in text  # the fit is of the data as they are
