"""Fitting a segmentation model's hemorrhage calibration on real units: the MAP logistic, leave-one-patient-out,
the operating-point rule, and the shipped BLAST-CT calibration reproduced from the units' cached volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from biomarkers.ich_calibration_fit import (
    fit_real_calibration,
    lopo_probabilities,
    map_logistic,
    operating_threshold,
)
from biomarkers.ich_probability import calibration_path, load_calibration

UNITS = Path(__file__).parents[1] / "data" / "ich_units_blast_ct.csv"


def test_with_a_flat_prior_the_fit_is_the_maximum_likelihood_logistic() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.5 + 1.5 * x)))).astype(float)
    mle = sm.Logit(y, sm.add_constant(x)).fit(disp=0).params
    assert map_logistic(x, y, prior_mean=(0.0, 0.0), prior_sd=1e6) == pytest.approx(tuple(mle), rel=1e-4)
    # A tight prior holds the coefficients at its mean, and one class alone still gives a finite fit.
    assert map_logistic(x, y, prior_mean=(1.0, 2.0), prior_sd=1e-4) == pytest.approx((1.0, 2.0), abs=1e-3)
    assert np.isfinite(map_logistic(x, np.ones_like(x))).all()


def test_a_left_out_patient_is_predicted_without_its_own_units() -> None:
    x = np.array([-3.0, -2.5, 0.5, 1.0, -2.9, 2.0, 0.1, -1.0])
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0], bool)
    groups = np.array(["a", "a", "a", "b", "b", "b", "c", "c"])
    p = lopo_probabilities(x, y, groups)
    flipped = y.copy()
    flipped[groups == "a"] = ~flipped[groups == "a"]
    q = lopo_probabilities(x, flipped, groups)
    assert q[groups == "a"] == pytest.approx(p[groups == "a"])
    assert q[groups != "a"] != pytest.approx(p[groups != "a"])


def test_the_operating_point_is_the_highest_threshold_meeting_the_sensitivity() -> None:
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.85, 0.05])
    y = np.array([1] * 10 + [0, 0], bool)
    assert operating_threshold(p, y, 0.9) == pytest.approx(0.2)
    assert operating_threshold(p, y, 0.5) == pytest.approx(0.6)


def test_the_shipped_blast_ct_calibration_is_the_fit_on_the_cached_units() -> None:
    units = pd.read_csv(UNITS, dtype={"patient": str, "types": str})
    shipped = load_calibration(calibration_path("blast-ct"))
    assert shipped["model"]["version"] == units["model_version"].iloc[0]
    refit = fit_real_calibration(units, "blast-ct", units["model_version"].iloc[0])
    for name, c in shipped["coefficients"].items():
        if c is None:
            assert refit["coefficients"][name] is None
        else:
            assert refit["coefficients"][name] == pytest.approx(c, rel=1e-6)
    assert refit["operating_point"] == pytest.approx(shipped["operating_point"])
    assert refit["evaluation"]["ich_probability"]["sensitivity"] == shipped["evaluation"]["ich_probability"][
        "sensitivity"]
    assert refit["evaluation"]["ich_probability"]["specificity"] == shipped["evaluation"]["ich_probability"][
        "specificity"]


def test_a_units_table_without_the_needed_columns_or_without_negatives_is_named() -> None:
    with pytest.raises(ValueError, match=r"units table lacks columns \['types'"):
        fit_real_calibration(pd.DataFrame({"set": [], "patient": [], "hemorrhage": []}), "m", "v")
    units = pd.read_csv(UNITS, dtype={"patient": str, "types": str})
    with pytest.raises(ValueError, match="only units with hemorrhage: a calibration needs both"):
        fit_real_calibration(units[units["patient"] != "GE"], "m", "v")
