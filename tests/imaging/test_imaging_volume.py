from __future__ import annotations

import numpy as np
import pytest
from imaging_dicom_factory import head_phantom, write_ct_series

from imaging.volume import (
    GridMismatchError,
    SeriesGeometryError,
    load_series,
    read_mask,
    read_mask_for,
    write_mask,
)


def ramp(nz: int = 6, ny: int = 16, nx: int = 20) -> np.ndarray:
    """Each slice filled with its own index * 10 HU, so that order errors show."""
    return (np.arange(nz, dtype=np.float32)[:, None, None] * 10 + np.zeros((nz, ny, nx), np.float32))


def test_orders_by_position_not_file_name_or_instance_number(tmp_path):
    hu = ramp()
    shuffled = [3, 0, 5, 1, 4, 2]
    paths = write_ct_series(tmp_path, hu, file_order=shuffled, instance_numbers=[6, 5, 4, 3, 2, 1])
    vol = load_series(paths)
    assert vol.hu[:, 0, 0].tolist() == hu[:, 0, 0].tolist()
    assert vol.spacing == pytest.approx((5.0, 0.9, 0.9))
    # Affine: column index -> +x (LPS), row -> +y, slice -> +z, origin = first slice's position.
    assert np.allclose(vol.affine @ [2, 3, 4, 1], [-115 + 2 * 0.9, -115 + 3 * 0.9, 20.0, 1])
    assert len(vol.sop_instance_uids) == 6 and len(set(vol.sop_instance_uids)) == 6


def test_descending_positions_are_sorted_along_the_normal(tmp_path):
    hu = ramp()
    positions = [(-115, -115, 100 - 5 * k) for k in range(6)]
    vol = load_series(write_ct_series(tmp_path, hu, positions=positions))
    assert vol.hu[:, 0, 0].tolist() == hu[::-1, 0, 0].tolist()
    assert vol.affine[2, 3] == pytest.approx(75.0)


def test_rescale_and_padding_values(tmp_path):
    hu = np.full((3, 8, 8), 40.0, np.float32)
    hu[:, 0, :] = -2000.0  # air padding outside the reconstruction circle
    hu[:, 1, :] = 1024.0 - 1024.0 - 2.0  # -2 HU: an ordinary value
    paths = write_ct_series(tmp_path / "a", hu, slope=0.5, intercept=-1024.0)
    vol = load_series(paths)
    assert vol.hu[0, 0, 0] == -1024.0  # below -1024 -> air
    assert vol.hu[0, 1, 0] == pytest.approx(-2.0)
    assert vol.hu[0, 4, 4] == pytest.approx(40.0)

    # PixelPaddingValue is a stored value: stored 1000 would read as -24 HU (tissue) without the tag.
    hu2 = np.full((3, 8, 8), 40.0, np.float32)
    hu2[:, 2, 2] = 1000 - 1024.0
    vol2 = load_series(write_ct_series(tmp_path / "b", hu2, padding_value=1000))
    assert vol2.hu[1, 2, 2] == -1024.0 and vol2.hu[1, 3, 3] == pytest.approx(40.0)
    vol3 = load_series(write_ct_series(tmp_path / "c", hu2))
    assert vol3.hu[1, 2, 2] == pytest.approx(-24.0)


def test_missing_slice_is_rejected_naming_the_gap(tmp_path):
    hu = ramp(5)
    positions = [(-115, -115, z) for z in (0, 5, 10, 20, 25)]
    paths = write_ct_series(tmp_path, hu, positions=positions, series_uid="1.2.3.4.5")
    with pytest.raises(SeriesGeometryError, match=r"1\.2\.3\.4\.5.*missing slice.*10\.00 mm.*20\.00 mm"):
        load_series(paths)


def test_non_uniform_spacing_is_rejected(tmp_path):
    positions = [(-115, -115, z) for z in (0, 5, 10, 13, 18, 23)]
    with pytest.raises(SeriesGeometryError, match="non-uniform spacing"):
        load_series(write_ct_series(tmp_path, ramp(6), positions=positions))


def test_mixed_sizes_are_rejected(tmp_path):
    a = write_ct_series(tmp_path / "a", ramp(3, 16, 20), series_uid="1.2.9")
    b = write_ct_series(tmp_path / "b", ramp(1, 12, 12), series_uid="1.2.9", origin=(-115, -115, 15))
    with pytest.raises(SeriesGeometryError, match=r"mixed image sizes.*3 x 16x20.*1 x 12x12"):
        load_series(a + b)


def test_duplicates_dropped_when_identical_rejected_when_different(tmp_path):
    hu = ramp(4)
    positions = [(-115, -115, z) for z in (0, 5, 5, 10)]
    same = hu.copy()
    same[2] = same[1]
    vol = load_series(write_ct_series(tmp_path / "same", same, positions=positions))
    assert vol.shape[0] == 3 and any("duplicate" in n for n in vol.notes)
    with pytest.raises(SeriesGeometryError, match="both at 5.00 mm"):
        load_series(write_ct_series(tmp_path / "diff", hu, positions=positions))


def test_gantry_tilt_reported_and_optionally_resampled(tmp_path):
    nz, ny, nx = 5, 24, 24
    hu = np.full((nz, ny, nx), 0.0, np.float32)
    shift_px = 2  # each slice's origin moves 2 rows (1.8 mm) along y: a tilted gantry
    for k in range(nz):
        hu[k, 8 + shift_px * 0 : 12, 10:14] = 80.0  # block at the same pixel rows in every slice
    positions = [(-10.0, -10.0 + k * shift_px * 0.9, 5.0 * k) for k in range(nz)]
    paths = write_ct_series(tmp_path, hu, positions=positions)
    native = load_series(paths)
    assert native.gantry_tilt_deg == pytest.approx(np.degrees(np.arctan2(1.8, 5.0)), abs=0.01)
    assert not native.tilt_corrected and native.hu[3, 8, 10] == 80.0
    # The sheared affine places slice 3's row 8 where the scanner put it.
    assert np.allclose(native.affine @ [10, 8, 3, 1], [-10 + 9.0, -10 + 3 * 1.8 + 8 * 0.9, 15.0, 1])
    fixed = load_series(paths, correct_tilt=True)
    assert fixed.tilt_corrected
    assert np.allclose(fixed.affine[:3, 2], [0, 0, 5.0])
    # On the orthogonal grid the block of slice k sits k*2 rows lower, at the same patient position.
    assert fixed.hu[3, 8 + 6, 11] == pytest.approx(80.0)
    assert fixed.hu[3, 8, 11] < 80.0


def test_mask_round_trip_and_grid_mismatch(tmp_path):
    hu, labels = head_phantom(nz=6, ny=32, nx=40)
    vol = load_series(write_ct_series(tmp_path / "s", hu, spacing=(4.0, 0.8, 0.7)))
    path = write_mask(tmp_path / "m.nii.gz", labels, vol.affine)
    back, aff = read_mask(path)
    assert np.array_equal(back, labels) and np.allclose(aff, vol.affine)
    assert np.array_equal(read_mask_for(path, vol), labels)
    # NIfTI axes are x, y, z with an RAS affine, as nibabel and viewers expect.
    import nibabel as nib

    img = nib.load(path)
    assert img.shape == (40, 32, 6)
    assert np.allclose(img.affine[:3, 0], [-0.7, 0, 0])

    bad = write_mask(tmp_path / "bad.nii.gz", labels[:, :, ::-1][:5], vol.affine @ np.diag([1, 1, 1.0, 1]))
    with pytest.raises(GridMismatchError, match=r"shape \(z,y,x\) \(5, 32, 40\) != series \(6, 32, 40\)"):
        read_mask_for(bad, vol)
    shifted = vol.affine.copy()
    shifted[2, 3] += 2.0
    moved = write_mask(tmp_path / "moved.nii.gz", labels, shifted)
    with pytest.raises(GridMismatchError, match="origin"):
        read_mask_for(moved, vol)
