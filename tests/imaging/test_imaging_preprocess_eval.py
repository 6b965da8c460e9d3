from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from imaging_dicom_factory import head_phantom

from imaging.abc2 import abc2_ml, largest_lesion
from imaging.evaluation import dice, series_metrics, summary_by_split, summary_by_volume_group, volume_group
from imaging.preprocess import Preprocessing


def test_preprocessing_serializes_and_refuses_other_versions():
    pre = Preprocessing(window_min=-10, window_max=90, size=128, context_slices=2)
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    assert pre.in_channels == 5
    with pytest.raises(ValueError, match="version '0'.*retrain"):
        Preprocessing.from_dict({**pre.to_dict(), "version": "0"})


def test_window_resize_keep_aspect_and_inverse_recovers_labels():
    hu, labels = head_phantom(nz=6, ny=80, nx=120)  # non-square: the box is padded, not stretched
    hu[0] = -1000.0  # a slice outside the head
    labels[0] = 0
    pre = Preprocessing(size=64)
    box = pre.head_box(hu)
    assert not box.in_head[0] and box.in_head[1:].all()
    img = pre.windowed(hu, box)
    assert img.shape == (6, 64, 64) and img.min() >= 0 and img.max() <= 1
    net_labels = pre.labels(labels, box)
    # The lesion keeps its shape: width/height ratio on the network grid ~ on the native grid.
    ys, xs = np.nonzero(labels[3] > 0)
    ny_, nx_ = np.nonzero(net_labels[3] > 0)
    assert (np.ptp(nx_) + 1) / (np.ptp(ny_) + 1) == pytest.approx((np.ptp(xs) + 1) / (np.ptp(ys) + 1), rel=0.2)
    # Perfect network scores map back to the native labels.
    scores = F.one_hot(torch.from_numpy(net_labels).long(), 5).permute(0, 3, 1, 2).float()
    out = np.zeros(hu.shape, np.uint8)
    idx = np.arange(1, 6)
    pre.to_native(scores[idx], box, idx, out)
    assert out[0].sum() == 0
    for k in (1, 3):  # IPH and edema of the crude head
        assert dice(out == k, labels == k) > 0.85
    # 2.5D: neighbours as channels, edges repeated.
    pre3 = Preprocessing(size=64, context_slices=1)
    ch = pre3.channels(img, np.array([0, 5]))
    assert ch.shape == (2, 3, 64, 64)
    assert np.array_equal(ch[0, 0], img[0]) and np.array_equal(ch[1, 2], img[5])


def test_dice_convention_no_epsilon_empty_empty_is_nan():
    a = np.zeros((2, 4, 4), bool)
    assert math.isnan(dice(a, a))
    b = a.copy()
    b[0, 0, 0] = True
    assert dice(b, a) == 0.0
    c = b.copy()
    c[0, 0, 1] = True
    assert dice(b, c) == pytest.approx(2 * 1 / 3)


def test_abc2_of_an_ellipsoid_is_close_to_its_volume():
    z, y, x = np.mgrid[0:40, 0:100, 0:100]
    dz, dy, dx = 1.0, 0.5, 0.5
    ell = ((z - 20) * dz / 12) ** 2 + ((y - 50) * dy / 15) ** 2 + ((x - 50) * dx / 9) ** 2 <= 1
    true_ml = ell.sum() * dz * dy * dx / 1000
    # A x B x C / 2 ~ (4/3) pi abc for an ellipsoid when C is the full extent ...
    assert abc2_ml(ell, (dz, dy, dx), kothari_weights=False) == pytest.approx(true_ml, rel=0.1)
    # ... and Kothari's slice weighting (75 % / 25 % of the largest area) counts fewer slices.
    assert 0.5 * true_ml < abc2_ml(ell, (dz, dy, dx)) < 0.85 * true_ml
    two = ell.copy()
    two[:3, :3, :3] = True  # a small separate lesion is not the largest
    assert np.array_equal(largest_lesion(two), ell)


def test_series_metrics_and_summaries():
    hu, truth = head_phantom(nz=8, ny=48, nx=48)
    pred = truth.copy()
    pred[pred == 3] = 0  # edema missed entirely
    rows = {r["class"]: r for r in series_metrics(pred, truth, (5.0, 1.0, 1.0))}
    assert list(rows) == ["iph", "eah", "edema", "ivh", "hemorrhage"]
    h, e = rows["iph"], rows["edema"]
    assert h["dice"] == 1.0 and h["abs_volume_error_ml"] == 0.0
    assert e["dice"] == 0.0 and e["recall"] == 0.0 and math.isnan(e["precision"])
    assert rows["eah"]["empty_empty"] and math.isnan(rows["eah"]["dice"])
    assert h["abc2_largest_ml"] > 0 and h["volume_group"] == volume_group(h["true_ml"])
    df = pd.DataFrame([{"series_instance_uid": "1", "split": "test", **r} for r in rows.values()])
    s = summary_by_split(df)
    assert set(s["class"]) == {"iph", "eah", "edema", "ivh", "hemorrhage"}
    g = summary_by_volume_group(df)
    assert list(g["volume_group"]) == ["<5 mL", "5-25 mL", ">25 mL"]
    assert g.loc[g["series"] == 1, "segmentation_better"].item()  # exact volume beats ABC/2


def test_metrics_per_class_and_any_hemorrhage_merges_blood_labels():
    """A contusion at the skull called extra-axial is wrong for IPH and EAH but right as hemorrhage."""
    truth = np.zeros((4, 20, 20), np.uint8)
    truth[1:3, 2:6, 2:6] = 1  # IPH, 32 voxels
    truth[1:3, 10:14, 10:14] = 4  # IVH, 32 voxels
    truth[1:3, 2:6, 6:8] = 3  # edema
    pred = truth.copy()
    pred[pred == 1] = 2  # every IPH voxel called EAH
    pred[1, 10:14, 10:12] = 0  # half a slice of IVH missed (8 voxels)
    rows = {r["class"]: r for r in series_metrics(pred, truth, (1.0, 1.0, 1.0))}
    assert rows["iph"]["dice"] == 0.0 and rows["eah"]["dice"] == 0.0 and rows["eah"]["precision"] == 0.0
    assert rows["edema"]["dice"] == 1.0
    assert rows["ivh"]["dice"] == pytest.approx(2 * 24 / (24 + 32))
    assert rows["ivh"]["abs_volume_error_ml"] == pytest.approx(8 / 1000)
    assert rows["hemorrhage"]["dice"] == pytest.approx(2 * 56 / (56 + 64))
    assert rows["hemorrhage"]["true_ml"] == pytest.approx(64 / 1000)
    assert rows["iph"]["volume_group"] == "<5 mL" and "volume_group" not in rows["eah"]


    assert volume_group(4.9) == "<5 mL" and volume_group(25.0) == "5-25 mL" and volume_group(25.1) == ">25 mL"
