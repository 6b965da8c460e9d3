"""Received slices <-> regular grids (imaging.regrid), irregular series (--resample), the CT-ICH converter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from imaging_dicom_factory import write_ct_series

from ctstudy import ct_ich
from imaging.regrid import labels_to_slices, received_planes, regular_grid, resample_to_grid
from imaging.segment import segment_volume_as_received
from imaging.volume import SeriesGeometryError, Volume, load_series


def _ramp_volume(nz: int = 6, ny: int = 20, nx: int = 24, dz: float = 5.0) -> np.ndarray:
    z, y, x = np.mgrid[:nz, :ny, :nx].astype(np.float32)
    return 10.0 * z * dz / 5.0 + 2.0 * y + x  # integers (DICOM stores them exactly), linear: trilinear reproduces it


def test_regular_series_resamples_like_simpleitk(tmp_path: Path) -> None:
    """Our 1 mm grid and values are SimpleITK's (the reference tool's resampler) for a regular series."""
    import SimpleITK as sitk

    hu = _ramp_volume()
    vol = load_series(write_ct_series(tmp_path, hu, spacing=(5.0, 0.9, 0.9)))
    grid = regular_grid(vol, (1.0, 1.0, 1.0))
    ours = resample_to_grid(vol, grid)
    image = sitk.GetImageFromArray(vol.hu)
    image.SetSpacing((0.9, 0.9, 5.0))
    image.SetOrigin(tuple(vol.positions[0]))
    size = [int(round((n - 1) * s / 1.0 + 1)) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    ref_grid = sitk.Image(size, image.GetPixelID())
    ref_grid.SetOrigin(image.GetOrigin())
    ref_grid.SetSpacing((1.0, 1.0, 1.0))
    ref = sitk.GetArrayFromImage(sitk.Resample(image, ref_grid, sitk.Transform(), sitk.sitkLinear, -1024.0))
    assert ours.shape == ref.shape == tuple(size[::-1])
    np.testing.assert_allclose(ours[:, :-1, :-1], ref[:, :-1, :-1], atol=1e-3)  # last row/column: edge handling


def test_irregular_series_is_rejected_unless_resampling_is_asked(tmp_path: Path) -> None:
    hu = _ramp_volume(nz=5)
    steps = [0.0, 1.1, 6.1, 9.0, 16.0]  # 1.1 to 7 mm steps, like the GE head CT
    files = write_ct_series(tmp_path, hu, positions=[(-10.0, -10.0, z) for z in steps])
    with pytest.raises(SeriesGeometryError, match="--resample"):
        load_series(files)
    vol = load_series(files, allow_irregular=True)
    assert vol.irregular_spacing and vol.shape == hu.shape
    assert any("irregular slice spacing 1.10-7.00 mm" in n for n in vol.notes)
    grid = regular_grid(vol, (1.0, 1.0, 1.0))
    assert grid.shape[0] == 17
    np.testing.assert_array_equal(received_planes(grid, vol), [0, 1, 6, 9, 16])
    resampled = resample_to_grid(vol, grid)
    # The ramp is linear in the slice index and in pixels (0.9 mm): grid plane w mm between received
    # slices k0, k1 holds their linear blend, at the pixel position of y = x = 3 mm.
    in_plane = 2.0 * 3 / 0.9 + 3 / 0.9
    for w, (k0, k1) in ((0, (0, 0)), (3, (1, 2)), (9, (3, 3)), (12, (3, 4))):
        t = 0.0 if k0 == k1 else (w - steps[k0]) / (steps[k1] - steps[k0])
        np.testing.assert_allclose(resampled[w, 3, 3], 10.0 * ((1 - t) * k0 + t * k1) + in_plane, atol=1e-3)
    labels = np.zeros(grid.shape, np.uint8)
    labels[9, 5:8, 5:8] = 2
    back = labels_to_slices(labels, grid, vol)
    assert back.shape == vol.shape
    assert back[3].max() == 2 and back[[0, 1, 2, 4]].max() == 0  # onto the received instance at 9 mm only


class _Thresholder:
    """A stand-in model that segments slice by slice: label 1 where HU > 60; it records what it was given."""

    name, version, members, device = "threshold", "t" * 64, ["t"], torch.device("cpu")

    def segment(self, volume: Volume) -> tuple[np.ndarray, dict[str, float]]:
        self.seen = volume
        return (volume.hu > 60).astype(np.uint8), {}


def test_segment_as_received_resamples_for_models_that_need_a_regular_grid(tmp_path: Path) -> None:
    hu = np.full((4, 16, 16), 30.0, np.float32)
    hu[2, 4:9, 4:9] = 80.0
    files = write_ct_series(tmp_path, hu, positions=[(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 10.0)])
    vol = load_series(files, allow_irregular=True)
    model = _Thresholder()
    labels, _, notes = segment_volume_as_received(model, vol)
    assert model.seen.shape[0] == 6  # a regular 2 mm grid from 0 to 10 mm
    assert labels.shape == vol.shape and labels[2].sum() == 25 and labels[[0, 1, 3]].sum() == 0
    assert any("labels mapped back onto the 4 received instances" in n for n in notes)


def test_ct_ich_slices_become_an_honest_dicom_series(tmp_path: Path) -> None:
    slices = ct_ich.patient_slices(81, range(13, 28))
    files = ct_ich.write_series(slices, tmp_path)
    vol = load_series(files)
    assert vol.shape == (15, 650, 650) and vol.spacing == pytest.approx((5.0, 0.36, 0.36))
    assert vol.hu.min() >= -20.0 - 1e-3 and vol.hu.max() <= 100.0 + 1e-3
    ds = pydicom.dcmread(files[0])
    assert ds.ImageType[0] == "DERIVED" and "assumed" in ds.DerivationDescription
    assert ds.PatientID == "CTICH-081" and ds.SeriesInstanceUID == ct_ich.series_uid(slices)
    truth = ct_ich.truth_masks(slices)
    assert truth.shape == vol.shape and 1_000 < truth.sum() < 0.05 * truth.size
    with pytest.raises(LookupError, match="no CT-ICH slices of patient 5"):
        ct_ich.patient_slices(5)
