"""`ctstudy prognosis export-r FIT`: a fit's imputed tables and an R script that refits and pools the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from r_reference import run_r
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.home import Home
from synthetic.outcomes import simulate_tabular


def test_export_r_writes_the_fits_tables_and_r_refits_the_same_pooled_model(home: Home, tmp_path: Path) -> None:
    study = simulate_tabular(400, seed=12)
    study.clinical.to_csv(tmp_path / "clinical.csv", index=False)
    study.outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    runner = CliRunner()
    base = ["--home", str(home.root), "--db-url", home.db_url]
    for cmd in (["registry", "import-clinical", str(tmp_path / "clinical.csv"), "--create"],
                ["registry", "import-outcomes", str(tmp_path / "outcomes.csv")]):
        assert runner.invoke(app, base + cmd).exit_code == 0
    res = runner.invoke(app, base + ["prognosis", "fit", "--outcome", "mortality", "--features", "clinical",
                                     "--m", "3", "--n-boot", "10", "--cv", "none", "--age-spline", "3"])
    assert res.exit_code == 0 and "Recorded ModelFit #1" in res.output, res.output

    missing = runner.invoke(app, base + ["prognosis", "export-r", "7", "--out", str(tmp_path / "none")])
    assert missing.exit_code != 0 and "no ModelFit #7" in missing.output

    out = tmp_path / "export"
    res = runner.invoke(app, base + ["prognosis", "export-r", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    tables = [pd.read_csv(out / f"imputed_{i}.csv") for i in (1, 2, 3)]
    assert not (out / "imputed_4.csv").exists() and "patient_id" not in tables[0].columns
    assert all(t[["age", "glucose_mmol_l"]].notna().all().all() for t in tables)
    assert not tables[0]["glucose_mmol_l"].equals(tables[1]["glucose_mmol_l"])  # the m data sets differ
    script = (out / "refit.R").read_text()
    # 400 patients, about 120 deaths, 13 parameters: under 10 events per parameter, so ridge (auto) as lrm
    assert "rcs(age, c(" in script and "lrm(died ~" in script and "penalty = penalties[i]" in script

    ours = pd.read_csv(out / "ctstudy_coefficients.csv")
    r = run_r(f'export_dir <- "{out.as_posix()}"\n' + script, {}, tmp_path / "r",
              packages=("rms", "survival", "ordinal", "mice"))
    np.testing.assert_allclose(r["r_estimate"], ours["coef"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r["r_se"], ours["se"], rtol=1e-3)
