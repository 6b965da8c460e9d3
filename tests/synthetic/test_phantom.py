"""The phantom's truth must match its image: volumes, HU ranges, sides, mass effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthetic.phantom import (
    HU_CSF,
    SHIFT_MM_PER_ML,
    ExtraAxial,
    Grid,
    Intraventricular,
    SeriesSpec,
    hematoma,
    normal_series,
    render_series,
    single_hematoma_series,
)
from vocabulary.labels import EAH, EDEMA, IPH, IVH


@pytest.fixture(scope="module")
def left_frontal():
    return single_hematoma_series(20, "left", "frontal", edema_ml=10, slice_thickness=5, matrix=128)


def test_hematoma_and_edema_volumes_are_exact_voxel_counts(left_frontal):
    vv = np.prod(left_frontal.spacing) / 1000
    assert left_frontal.hematoma_ml == pytest.approx(20, abs=vv)
    assert left_frontal.edema_ml == pytest.approx(10, abs=vv)
    assert left_frontal.lesions[0].volume_ml == pytest.approx(np.count_nonzero(left_frontal.labels == 1) * vv)


def test_noise_free_hu_lies_in_the_label_ranges(left_frontal):
    hem = left_frontal.hu_clean[left_frontal.labels == 1]
    edema = left_frontal.hu_clean[left_frontal.labels == EDEMA]
    assert hem.min() >= 50 and hem.max() <= 90
    assert edema.min() >= 10 and edema.max() <= 25
    # Noise is there in what is written, at about the requested level in the air outside the head.
    air = left_frontal.hu[:, :4, :4]
    assert 2.5 < (air - left_frontal.hu_clean[:, :4, :4]).std() < 6


def test_left_lesion_lies_at_positive_lps_x_and_pushes_the_midline_right(left_frontal):
    les = left_frontal.lesions[0]
    assert les.side == "left" and les.centroid_mm[0] > 10
    assert left_frontal.midline_shift_signed_mm == pytest.approx(-SHIFT_MM_PER_ML * 30)
    assert left_frontal.side == "left"


def test_one_hematoma_is_one_connected_lesion():
    r = render_series(SeriesSpec(hematomas=(hematoma(35, "right", "temporal", shape_seed=5),
                                            hematoma(4, "left", "parietal", shape_seed=6))),
                      Grid.centered(128, 230, 2.5), np.random.default_rng(0))
    assert ndimage.label(r.labels == 1)[1] == 2
    assert r.side == "bilateral"


def test_midline_structures_move_by_the_stated_shift():
    """The septum between the lateral ventricles moves toward the lighter side by the formula's amount."""
    spec_normal = SeriesSpec(noise_sigma_hu=0)
    spec_shift = SeriesSpec(extra_axial=ExtraAxial("left", 60.0), noise_sigma_hu=0)
    grid = Grid.centered(256, 230, 5)
    base = render_series(spec_normal, grid, np.random.default_rng(0))
    shifted = render_series(spec_shift, grid, np.random.default_rng(0))
    k = int(np.argmin(np.abs(grid.slice_positions()[:, 2] - 14)))
    row = int(np.argmin(np.abs(grid.origin[1] + np.arange(grid.rows) * grid.pixel_spacing[0] + 2)))

    def septum_x(r):
        """Midpoint of the tissue gap between the two lateral ventricles on this row."""
        x = grid.origin[0] + np.arange(grid.columns) * grid.pixel_spacing[1]
        csf_x = x[(r.hu_clean[k, row] == HU_CSF) & (np.abs(x) < 40)]
        runs = np.split(csf_x, np.flatnonzero(np.diff(csf_x) > 1.5 * grid.pixel_spacing[1]) + 1)
        assert len(runs) == 2, "expected the two lateral ventricles on this row"
        return (runs[0][-1] + runs[1][0]) / 2

    expected = -SHIFT_MM_PER_ML * shifted.extra_axial_ml
    assert shifted.midline_shift_signed_mm == pytest.approx(expected, abs=0.05)
    assert septum_x(shifted) - septum_x(base) == pytest.approx(expected, abs=1.5 * grid.pixel_spacing[1])


def test_normal_head_has_bone_brain_and_no_labels():
    r = normal_series(slice_thickness=5, matrix=128)
    assert r.labels.max() == 0 and r.midline_shift_mm == 0
    assert r.hu_clean.max() > 1000 and (r.hu_clean == 40).any() and (r.hu_clean == 25).any()


def test_same_rng_same_image_and_lesion_shape_independent_of_noise_seed():
    a = single_hematoma_series(10, "right", "occipital", matrix=128, seed=3)
    b = single_hematoma_series(10, "right", "occipital", matrix=128, seed=3)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    spec = a.spec
    c = render_series(spec, a.grid, np.random.default_rng(99))
    assert np.array_equal(a.labels, c.labels) and not np.array_equal(a.hu, c.hu)


def test_extra_axial_collection_is_labelled_eah_along_the_inner_table_of_its_side():
    r = render_series(SeriesSpec(extra_axial=ExtraAxial("right", 30.0), noise_sigma_hu=0),
                      Grid.centered(128, 230, 5), np.random.default_rng(0))
    vv = r.grid.voxel_volume_ml
    assert r.class_ml(EAH) == pytest.approx(30.0, abs=vv) and r.extra_axial_ml == r.class_ml(EAH)
    assert set(np.unique(r.labels).tolist()) == {0, EAH}
    blood = r.hu_clean[r.labels == EAH]
    assert blood.min() >= 50 and blood.max() <= 90
    # Patient right is LPS x < 0: every EAH voxel lies on that side.
    zyx = np.argwhere(r.labels == EAH)
    x_mm = r.grid.origin[0] + zyx[:, 2] * r.grid.pixel_spacing[1]
    assert (x_mm < 0).all()


def test_intraventricular_blood_fills_the_dependent_ventricles_and_adds_no_mass():
    grid = Grid.centered(128, 230, 5)
    spec = SeriesSpec(intraventricular=Intraventricular(3.0, density_hu=62.0), noise_sigma_hu=0)
    r = render_series(spec, grid, np.random.default_rng(0))
    base = render_series(SeriesSpec(noise_sigma_hu=0), grid, np.random.default_rng(0))
    assert r.ivh_ml == pytest.approx(3.0, abs=grid.voxel_volume_ml)
    assert set(np.unique(r.labels).tolist()) == {0, IVH}
    # It replaces ventricular CSF of the same head (no mass effect) and is hyperdense.
    assert (base.hu_clean[r.labels == IVH] == HU_CSF).all() and r.midline_shift_mm == 0
    blood = r.hu_clean[r.labels == IVH]
    assert blood.min() >= 50 and blood.max() <= 90
    # It layers posteriorly (supine patient): IVH lies behind the ventricular CSF left over.
    rows_ivh = np.argwhere(r.labels == IVH)[:, 1].mean()
    rows_csf = np.argwhere((base.hu_clean == HU_CSF) & (r.labels == 0)
                           & (np.abs(np.arange(128) - 64) < 12)[None, None, :]
                           & (np.abs(np.arange(128) - 64) < 30)[None, :, None])[:, 1].mean()
    assert rows_ivh > rows_csf


def test_every_class_in_one_series_keeps_its_own_label():
    spec = SeriesSpec(hematomas=(hematoma(15, "left", "frontal", edema_ml=6),),
                      extra_axial=ExtraAxial("right", 20.0), intraventricular=Intraventricular(2.0))
    r = render_series(spec, Grid.centered(128, 230, 5), np.random.default_rng(0))
    vv = r.grid.voxel_volume_ml
    for label, ml in ((IPH, 15.0), (EAH, 20.0), (EDEMA, 6.0), (IVH, 2.0)):
        assert r.class_ml(label) == pytest.approx(ml, abs=vv), label
