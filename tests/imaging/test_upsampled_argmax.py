"""Class labels of low-resolution scores resized to the native grid: computed only near class boundaries."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imaging.preprocess import MIXED_FRACTION_FOR_FULL, _neighbourhood, upsampled_argmax


def _blob_scores(seed: int, n: int = 4, size: int = 128) -> torch.Tensor:
    """Smooth scores of 5 classes, background with lesion-like blobs (as a trained U-Net gives)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 5, 6, 6, generator=g)
    scores = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False) * 3.0
    scores[:, 0] += 3.0
    return scores


def _reference(scores: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(scores, size=(side, side), mode="bilinear", align_corners=False).argmax(dim=1)


@pytest.mark.parametrize("side", [128, 129, 200, 287, 512, 90])
def test_labels_equal_resizing_every_class_then_argmax(side: int) -> None:
    scores = _blob_scores(side)
    low = scores.argmax(dim=1).to(torch.uint8)
    boundary = (_neighbourhood(low, torch.maximum) != _neighbourhood(low, torch.minimum)).float().mean()
    assert 0.02 < float(boundary) < MIXED_FRACTION_FOR_FULL  # the boundary path is the one tested
    ref = _reference(scores, side)
    got = upsampled_argmax(scores, side)
    assert got.dtype == torch.uint8 and got.shape == ref.shape
    assert 0.05 < float((ref > 0).float().mean()) < 0.6  # boundaries between classes are there to get right
    # Float rounding may differ from PyTorch's kernel at an exact tie: at most a pixel in 100,000.
    assert int((got.long() != ref).sum()) <= ref.numel() // 100_000


def test_noisy_scores_take_the_full_resize() -> None:
    """Salt-and-pepper classes (an untrained network): every pixel is a boundary, the whole resize is done."""
    scores = torch.randn(2, 5, 32, 32, generator=torch.Generator().manual_seed(3))
    low = scores.argmax(dim=1).to(torch.uint8)
    mixed = (_neighbourhood(low, torch.maximum) != _neighbourhood(low, torch.minimum)).float().mean()
    assert float(mixed) > MIXED_FRACTION_FOR_FULL
    assert torch.equal(upsampled_argmax(scores, 77).long(), _reference(scores, 77))


def test_neighbourhood_is_the_3x3_maximum_and_minimum() -> None:
    a = torch.randint(0, 5, (3, 17, 23), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    high = F.max_pool2d(a[:, None].float(), 3, 1, 1)[:, 0]
    low = -F.max_pool2d(-a[:, None].float(), 3, 1, 1)[:, 0]
    assert torch.equal(_neighbourhood(a, torch.maximum).float(), high)
    assert torch.equal(_neighbourhood(a, torch.minimum).float(), low)
