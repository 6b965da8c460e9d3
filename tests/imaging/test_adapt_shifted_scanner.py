"""Adapting to a center whose scanner differs from the starting model's: held-out patients gain.

Phantoms of the shifted scanner of `bench/adapt_curve_bench.py` (thin noisy slices, basal cisterns that the
phantom U-Net reads as edema), one series per patient: five annotated patients (one of them the validation
split), four held out, a short fine-tuning.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from imaging.adapt import AdaptOptions, adapt
from imaging.inference import UNetSegmenter
from imaging.model import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from adapt_curve_bench import phantom_scans  # noqa: E402

MARGIN = 0.05


def _segmenter(model):  # noqa: ANN001, ANN202
    unet = UNetSegmenter(model, torch.device("cpu"))
    return lambda volume: unet.segment(volume)[0]


def _adapt(lr: float):  # noqa: ANN202
    scans = phantom_scans(9, seed=3, matrix=64)
    options = AdaptOptions(seed=1, held_out=frozenset(s.patient_key for s in scans[5:]))
    options.training = dataclasses.replace(options.training, epochs=4, steps_per_epoch=15, lr=lr)
    return adapt(load_model(), scans, _segmenter, options, "cpu")


def test_adapting_to_a_shifted_scanner_raises_dice_on_held_out_patients(one_thread) -> None:  # noqa: ANN001
    result = _adapt(1e-3)
    assert result.card["data"]["held_out_patients"] == 4
    assert result.score_after > result.score_before + MARGIN, (result.score_before, result.score_after)
    assert result.improved
