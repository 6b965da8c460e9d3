"""Epidural/subdural split by shape and the basal cisterns' state, on phantoms with known truth."""

from __future__ import annotations

import numpy as np
import pytest

import synthetic.phantom as P
from biomarkers.cisterns import cistern_state
from biomarkers.extra_axial_shape import epidural_subdural_ml, is_lentiform, shape_index
from biomarkers.series import series_features


def render(spec: P.SeriesSpec, matrix: int = 128, thickness: float = 5.0, seed: int = 0) -> P.RenderedSeries:
    return P.render_series(spec, P.Grid.centered(matrix, 230.0, thickness), np.random.default_rng(seed))


@pytest.mark.parametrize("shape", ["crescentic", "lentiform"])
@pytest.mark.parametrize(("volume_ml", "matrix", "thickness", "side"), [
    (5.0, 128, 5.0, "left"), (30.0, 128, 5.0, "right"), (60.0, 128, 5.0, "left"), (30.0, 256, 2.5, "right")])
def test_collection_shape_decides_epidural_or_subdural(shape, volume_ml, matrix, thickness, side) -> None:
    r = render(P.SeriesSpec(extra_axial=P.ExtraAxial(side, volume_ml, shape=shape)), matrix, thickness)
    out = epidural_subdural_ml(r.labels, r.spacing)
    assert out["edh_ml"] == pytest.approx(r.epidural_ml)
    assert out["sdh_ml"] == pytest.approx(r.subdural_ml)
    assert out["edh_count"] + out["sdh_count"] == 1


def test_shape_index_of_a_lens_and_a_crescent() -> None:
    # 30 mL lens 18 mm thick and 70 mm across; 30 mL crescent 10 mm thick.
    assert is_lentiform(18.0, 30.0) and not is_lentiform(10.0, 30.0)
    assert shape_index(0.0, 30.0) == 0.0


def test_no_extra_axial_blood_gives_zero_epidural_and_subdural() -> None:
    out = epidural_subdural_ml(np.zeros((4, 8, 8), dtype=np.uint8), (5.0, 1.0, 1.0))
    assert out == {"edh_ml": 0.0, "sdh_ml": 0.0, "edh_count": 0, "sdh_count": 0}


@pytest.mark.parametrize(("swelling_ml", "expected", "matrix", "thickness"), [
    (0.0, "present", 128, 5.0), (45.0, "compressed", 128, 5.0), (80.0, "absent", 128, 5.0),
    (45.0, "compressed", 256, 2.5)])
def test_basal_cisterns_follow_the_phantom_compression(swelling_ml, expected, matrix, thickness) -> None:
    spec = P.SeriesSpec(swelling_ml=swelling_ml, head_offset_mm=(3.0, -4.0, 2.0), head_yaw_deg=4.0,
                        render_cisterns=True)
    assert spec.basal_cisterns() == expected
    r = render(spec, matrix, thickness)
    values, _ = series_features(r.hu, r.labels, r.spacing, r.affine)
    assert values["basal_cisterns"] == expected and values["basal_cisterns_reason"] == ""


def test_cisterns_are_unknown_with_the_reason_when_the_scan_misses_their_level() -> None:
    r = render(P.SeriesSpec(render_cisterns=True))
    first = int(np.argmax(r.grid.slice_positions()[:, 2] > 0))  # keep only the slices above the head centre
    affine = np.array(r.affine)
    affine[2, 3] += first * r.grid.slice_thickness
    values, _ = series_features(r.hu[first:], r.labels[first:], r.spacing, affine)
    assert values["basal_cisterns"] == "unknown"
    assert "does not reach the cistern level" in values["basal_cisterns_reason"]
    assert np.isnan(values["rotterdam_ct_score"]) and "basal_cisterns" in values["rotterdam_ct_score_missing"]


def test_cistern_state_thresholds() -> None:
    assert cistern_state(1.0) == "present" and cistern_state(0.3) == "compressed" and cistern_state(0.0) == "absent"
    assert cistern_state(float("nan")) == "unknown"
