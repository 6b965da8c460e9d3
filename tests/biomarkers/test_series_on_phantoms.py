"""Per-series features against the synthetic phantom's truth (synthetic.phantom states its mass effect)."""

from __future__ import annotations

import numpy as np
import pytest

from biomarkers.series import series_features
from synthetic import phantom as P


def render(*hematomas: P.Hematoma, matrix: int = 256, thickness: float = 5.0, yaw: float = 0.0,
           extra: P.ExtraAxial | None = None, seed: int = 0) -> P.RenderedSeries:
    spec = P.SeriesSpec(hematomas=hematomas, head_yaw_deg=yaw, extra_axial=extra)
    return P.render_series(spec, P.Grid.centered(matrix, 230.0, thickness), np.random.default_rng(seed))


@pytest.mark.parametrize(("hematomas", "matrix", "thickness"), [
    ((P.hematoma(20, "left", "frontal"),), 256, 5.0),
    ((P.hematoma(35, "right", "temporal", shape_seed=2), P.hematoma(6, "left", "occipital", shape_seed=5)), 256, 2.5),
    ((P.hematoma(8, "right", "parietal", shape_seed=4), P.hematoma(4, "right", "frontal", shape_seed=9)), 512, 5.0),
    ((), 256, 5.0),
])
def test_volumes_counts_and_sides_match_truth(hematomas, matrix, thickness) -> None:
    r = render(*hematomas, matrix=matrix, thickness=thickness)
    values, lesions = series_features(r.hu, r.labels, r.spacing, r.affine)
    assert values["hematoma_ml"] == pytest.approx(r.hematoma_ml, rel=0.005)
    assert values["edema_ml"] == pytest.approx(r.edema_ml, rel=0.005)
    truth = [les for les in r.lesions if les.volume_ml > 0]
    assert values["lesion_count"] == len(truth)
    assert values["side"] == r.side
    # Each truth lesion is found at its centroid, on its side, with its volume and its own edema.
    for les in truth:
        d = np.linalg.norm(lesions[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy()
                           - np.asarray(les.centroid_mm), axis=1)
        found = lesions.iloc[int(np.argmin(d))]
        assert d.min() < 0.5
        assert found["side"] == les.side
        assert found["volume_ml"] == pytest.approx(les.volume_ml, rel=0.005)
        assert found["edema_ml"] == pytest.approx(les.edema_ml, rel=0.05)


@pytest.mark.parametrize(("volume_ml", "side", "region", "matrix", "thickness", "yaw"), [
    (5, "left", "basal_ganglia", 256, 5.0, 0.0),
    (20, "left", "frontal", 512, 5.0, 0.0),
    (40, "left", "parietal", 256, 2.5, 8.0),
    (60, "right", "temporal", 256, 5.0, -6.0),
    (90, "right", "frontal", 256, 5.0, 0.0),
])
def test_midline_shift_within_1_mm_of_the_generator(volume_ml, side, region, matrix, thickness, yaw) -> None:
    r = render(P.hematoma(volume_ml, side, region, shape_seed=volume_ml), matrix=matrix, thickness=thickness, yaw=yaw)
    values, _ = series_features(r.hu, r.labels, r.spacing, r.affine)
    assert values["midline_shift_method"] == "septum"
    assert values["midline_shift_signed_mm"] == pytest.approx(r.midline_shift_signed_mm, abs=1.0)
    assert values["midline_shift_mm"] == pytest.approx(r.midline_shift_mm, abs=1.0)
    # The ideal plane follows the head's yaw (positive yaw turns the nose left: the normal turns with it).
    angle = np.degrees(np.arctan2(values["midline_normal_y"], values["midline_normal_x"]))
    assert angle == pytest.approx(yaw, abs=1.0)


def test_no_shift_without_mass_effect() -> None:
    values, _ = series_features(*(lambda r: (r.hu, r.labels, r.spacing, r.affine))(P.normal_series()))
    assert values["midline_shift_mm"] < 0.6 and values["lesion_count"] == 0


@pytest.mark.parametrize("side", ["left", "right"])
def test_asymmetry_signs_follow_the_lesion_side(side: str) -> None:
    r = render(P.hematoma(40, side, "parietal", edema_ml=25))
    values, _ = series_features(r.hu, r.labels, r.spacing, r.affine)
    sign = 1.0 if side == "left" else -1.0
    assert sign * values["asymmetry_lesion"] > 1.9  # a few edema voxels may reach across
    # Lesion tissue is not parenchyma, and the ipsilateral ventricle is compressed.
    assert sign * values["asymmetry_parenchyma"] < -0.02
    assert sign * values["asymmetry_ventricles"] < -0.3
    assert values["largest_lesion_left"] == (1.0 if side == "left" else 0.0)


def test_unlabelled_extra_axial_blood_is_not_counted_as_parenchyma() -> None:
    base = render()
    with_sdh = render(extra=P.ExtraAxial("left", 30.0))
    v0, _ = series_features(base.hu, base.labels, base.spacing, base.affine)
    v1, _ = series_features(with_sdh.hu, with_sdh.labels, with_sdh.spacing, with_sdh.affine)
    assert v1["parenchyma_left_ml"] < v0["parenchyma_left_ml"] - 15.0
    assert v1["asymmetry_parenchyma"] < 0


@pytest.mark.parametrize(("region", "expected"), [
    ("frontal", "frontal"), ("temporal", "temporal"), ("parietal", "parietal"), ("occipital", "occipital"),
    ("basal_ganglia", "deep/central"),
])
def test_coarse_region_of_phantom_lesions(region: str, expected: str) -> None:
    r = render(P.hematoma(10, "right", region, shape_seed=3))
    values, lesions = series_features(r.hu, r.labels, r.spacing, r.affine)
    assert lesions.iloc[0]["region"] == expected == values["largest_lesion_region"]


def test_hematoma_density_is_the_mean_of_its_voxels() -> None:
    r = render(P.hematoma(15, "left", "frontal"))
    values, lesions = series_features(r.hu, r.labels, r.spacing, r.affine)
    assert values["hematoma_mean_hu"] == pytest.approx(float(r.hu[r.labels == 1].mean()), abs=1e-3)
    assert values["edema_mean_hu"] == pytest.approx(float(r.hu[r.labels == 3].mean()), abs=1e-3)
    assert 20 < values["parenchyma_mean_hu"] < 40
    assert lesions.iloc[0]["max_hu"] == pytest.approx(float(r.hu[r.labels == 1].max()))
