"""The scan-level hemorrhage probability: calibrated, monotone in the segmented volume, with an operating point."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from biomarkers.ich_probability import CALIBRATED_VOLUMES, load_calibration, presence_probabilities, probability
from biomarkers.series import series_features
from synthetic.phantom import normal_series, single_hematoma_series


def test_the_shipped_calibration_says_what_it_was_fitted_on_and_its_operating_point() -> None:
    cal = load_calibration()
    assert set(CALIBRATED_VOLUMES) <= set(cal["coefficients"])
    assert all(c["slope"] > 0 for c in cal["coefficients"].values())  # more segmented blood, more likely
    assert 0 < cal["operating_point"]["threshold"] < 1
    assert cal["operating_point"]["sensitivity_on_fit"] >= 0.95
    assert cal["fitted_on"]["series"] > 0


def test_probability_rises_with_volume_and_calls_at_the_operating_point() -> None:
    cal = {"coefficients": {k: {"intercept": 0.0, "slope": 2.0} for k in CALIBRATED_VOLUMES},
           "operating_point": {"threshold": 0.5}}
    low = presence_probabilities({"hemorrhage_ml": 0.0, "iph_ml": 0.0, "eah_ml": 0.0, "ivh_ml": 0.0,
                                  "edema_ml": 0.0}, cal)
    high = presence_probabilities({"hemorrhage_ml": 20.0, "iph_ml": 20.0, "eah_ml": 0.0, "ivh_ml": 0.0,
                                   "edema_ml": 5.0}, cal)
    assert low["ich_probability"] < 0.01 and low["ich_detected"] == 0.0
    assert high["ich_probability"] > 0.99 and high["ich_detected"] == 1.0
    assert high["p_iph_present"] > high["p_eah_present"]
    assert probability(1.0, 0.0, 2.0) == pytest.approx(1 / (1 + math.exp(-2 * math.log(1.05))))
    assert math.isnan(presence_probabilities({}, cal)["ich_probability"])


def test_phantom_scans_with_and_without_blood_fall_on_either_side_of_the_operating_point() -> None:
    blood = series_features(*(lambda r: (r.hu, r.labels, r.spacing, r.affine))(
        single_hematoma_series(8.0, matrix=128)))[0]
    none = series_features(*(lambda r: (r.hu, r.labels, r.spacing, r.affine))(normal_series(matrix=128)))[0]
    assert blood["ich_detected"] == 1.0 and none["ich_detected"] == 0.0
    assert blood["ich_probability"] > none["ich_probability"]


def test_a_broken_calibration_file_is_named_with_what_to_do(tmp_path) -> None:
    bad = tmp_path / "cal.json"
    bad.write_text(json.dumps({"coefficients": {}}))
    with pytest.raises(ValueError, match="cal.json: calibration lacks .*ich_detection_bench.py --fit"):
        load_calibration(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")
    assert np.isfinite(load_calibration()["operating_point"]["threshold"])
