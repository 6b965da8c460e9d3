"""The scan-level hemorrhage probability: calibrated per segmentation model, monotone in the segmented volume, with
an operating point; a mask of a model without its own calibration gets NaN and the reason."""

from __future__ import annotations

import json
import math

import pytest

from biomarkers.ich_probability import (
    CALIBRATED_VOLUMES,
    calibration_for,
    calibration_path,
    load_calibration,
    model_presence_probabilities,
    presence_probabilities,
    probability,
    shipped_calibrations,
)
from biomarkers.series import series_features
from synthetic.phantom import normal_series, single_hematoma_series

PHANTOM = load_calibration(calibration_path("unet2d"))
BLAST_CT = load_calibration(calibration_path("blast-ct"))
VOLUMES = {"hemorrhage_ml": 0.4, "iph_ml": 0.3, "eah_ml": 0.1, "ivh_ml": 0.0, "edema_ml": 0.2}


def test_each_shipped_calibration_names_its_model_what_it_was_fitted_on_and_its_operating_point() -> None:
    assert {("unet2d", PHANTOM["model"]["version"]), ("blast-ct", BLAST_CT["model"]["version"])} <= set(
        shipped_calibrations())
    for cal in (PHANTOM, BLAST_CT):
        assert len(cal["model"]["version"]) == 64
        assert all(c["slope"] > 0 for c in cal["coefficients"].values() if c)  # more segmented blood, more likely
        assert 0 < cal["operating_point"]["threshold"] < 1
    assert PHANTOM["operating_point"]["sensitivity_on_fit"] >= 0.95
    assert PHANTOM["fitted_on"]["series"] > 0
    assert BLAST_CT["coefficients"]["p_edema_present"] is None  # no edema truth on the real units


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


def test_a_mask_gets_the_calibration_of_the_model_that_made_it() -> None:
    blast = model_presence_probabilities(VOLUMES, "blast-ct", BLAST_CT["model"]["version"])
    phantom = model_presence_probabilities(VOLUMES, "unet2d", PHANTOM["model"]["version"])
    assert blast["ich_probability"] == pytest.approx(presence_probabilities(VOLUMES, BLAST_CT)["ich_probability"])
    assert phantom["ich_probability"] == pytest.approx(presence_probabilities(VOLUMES, PHANTOM)["ich_probability"])
    assert blast["ich_probability"] != pytest.approx(phantom["ich_probability"])
    assert blast["ich_calibration"] == f"blast-ct {BLAST_CT['model']['version'][:12]}"
    assert blast["ich_probability_reason"] == "" and phantom["ich_calibration"].startswith("unet2d ")
    assert math.isnan(blast["p_edema_present"]) and not math.isnan(phantom["p_edema_present"])


@pytest.mark.parametrize(("name", "version", "reason"), [
    ("distilled", "ab" * 32, "no calibration for model distilled abababababab"),
    ("blast-ct", "0" * 64, "no calibration for model blast-ct 000000000000"),  # another version of a known model
    (None, None, "no segmentation model made the mask"),
])
def test_a_mask_of_a_model_without_its_own_calibration_gets_nan_and_the_reason(name, version, reason) -> None:
    out = model_presence_probabilities(VOLUMES, name, version)
    assert all(math.isnan(out[k]) for k in [*CALIBRATED_VOLUMES, "ich_detected"])
    assert out["ich_calibration"] == "none" and out["ich_probability_reason"].startswith(reason)
    assert calibration_for(name, version)[0] is None


def test_phantom_scans_with_and_without_blood_fall_on_either_side_of_the_phantom_operating_point() -> None:
    model = {"model_name": "unet2d", "model_version": PHANTOM["model"]["version"]}
    blood = series_features(*(lambda r: (r.hu, r.labels, r.spacing, r.affine))(
        single_hematoma_series(8.0, matrix=128)), **model)[0]
    none = series_features(*(lambda r: (r.hu, r.labels, r.spacing, r.affine))(normal_series(matrix=128)), **model)[0]
    assert blood["ich_detected"] == 1.0 and none["ich_detected"] == 0.0
    assert blood["ich_probability"] > none["ich_probability"]
    assert blood["ich_probability"] == pytest.approx(
        probability(blood["hemorrhage_ml"], **{k: PHANTOM["coefficients"]["ich_probability"][k]
                                              for k in ("intercept", "slope")}))
    truth_mask = series_features(*(lambda r: (r.hu, r.labels, r.spacing, r.affine))(
        single_hematoma_series(8.0, matrix=128)))[0]
    assert math.isnan(truth_mask["ich_probability"]) and truth_mask["ich_calibration"] == "none"


def test_a_broken_calibration_file_is_named_with_what_to_do(tmp_path) -> None:
    bad = tmp_path / "cal.json"
    bad.write_text(json.dumps({"coefficients": {}}))
    with pytest.raises(ValueError, match="cal.json: calibration lacks .*ich_detection_bench.py --fit"):
        load_calibration(bad)
    no_model = tmp_path / "ich_calibration_x.json"
    no_model.write_text(json.dumps({k: v for k, v in PHANTOM.items() if k != "model"}))
    with pytest.raises(ValueError, match=r"ich_calibration_x.json: calibration lacks \['model.name', 'model.version'"):
        shipped_calibrations(tmp_path)
    with pytest.raises(ValueError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")


def test_the_shipped_calibrations_belong_to_the_models_segment_records() -> None:
    """The name and version `segment` records for the shipped models (phantom U-Net, one BLAST-CT network) are
    those the calibrations were fitted for: a changed model or version string would silently give NaN."""
    import torch

    from imaging.deepmedic_inference import open_blast_ct
    from imaging.inference import UNetSegmenter
    from imaging.model import DEFAULT_MODEL_PATH, load_model

    blast = open_blast_ct(torch.device("cpu"), ensemble=1)
    unet = UNetSegmenter(load_model(DEFAULT_MODEL_PATH), torch.device("cpu"))
    for segmenter in (blast, unet):
        cal, reason = calibration_for(segmenter.name, segmenter.version)
        assert cal is not None, reason
