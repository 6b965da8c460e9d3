"""rms `validate` as the reference for Harrell's bootstrap validation (`prognosis.validation.bootstrap_optimism`):
the apparent indexes exactly, the optimism-corrected ones within bootstrap noise (both sides draw 200
resamples of their own)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prognosis.logistic import LogisticModel
from prognosis.terms import terms_of
from prognosis.validation import bootstrap_optimism
from synthetic.outcomes import simulate_tabular
from tests.prognosis.prognosis_study import complete_table
from tests.prognosis.r_reference import run_r

TERMS = terms_of("clinical")
R_NAMES = {"Dxy": "auc", "R2": "r2_nagelkerke", "Intercept": "calibration_intercept", "Slope": "calibration_slope",
           "Emax": "emax", "D": "D", "U": "U", "Q": "Q", "B": "brier", "g": "g"}
# Tolerances of the corrected indexes: a few bootstrap standard errors of 200 replicates on 250 patients.
CORRECTED_TOLERANCE = {"auc": 0.015, "r2_nagelkerke": 0.04, "calibration_intercept": 0.12, "calibration_slope": 0.08,
                       "emax": 0.04, "D": 0.04, "U": 0.02, "Q": 0.04, "brier": 0.006, "g": 0.15}


def test_validate_table_matches_rms_validate(tmp_path: Path) -> None:
    table = complete_table(simulate_tabular(250, seed=31))
    data = table[["died", *TERMS]].astype(float)
    ours = bootstrap_optimism(lambda: LogisticModel(TERMS, "died"), table, "died", n_boot=200, seed=1)["validate"]
    r = run_r(f"""
        set.seed(1)
        f <- lrm(died ~ {' + '.join(TERMS)}, data = data, x = TRUE, y = TRUE)
        v <- validate(f, B = 200)
        result <- list(index = rownames(v), orig = v[, "index.orig"], corrected = v[, "index.corrected"],
                       optimism = v[, "optimism"])
        """, {"data": data}, tmp_path, packages=("rms",))
    rms = {R_NAMES[name]: (orig, corr) for name, orig, corr in zip(r["index"], r["orig"], r["corrected"], strict=True)
           if name in R_NAMES}
    to_auc = {"auc": lambda dxy: (dxy + 1) / 2}
    for index, (orig, corrected) in rms.items():
        convert = to_auc.get(index, lambda v: v)
        if index != "emax":
            assert ours[index]["apparent"] == pytest.approx(convert(orig), abs=1e-6), index
        tolerance = CORRECTED_TOLERANCE[index] / (2 if index == "auc" else 1)
        assert abs(ours[index]["corrected"] - convert(corrected)) < tolerance, (index, ours[index], corrected)
    # The comparison means something: the model is overfitted enough for the corrections to matter.
    assert ours["calibration_slope"]["corrected"] < 0.97 and ours["r2_nagelkerke"]["optimism"] > 0.01
    assert np.isfinite([v["corrected"] for v in ours.values()]).all()
