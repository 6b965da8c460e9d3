"""Adapting on real CT (the CT-ICH subdural hematoma of patient 81): annotations must raise the Dice on slices
the adaptation never saw.

Patient 81's 15 slices are cut into three blocks of five contiguous slices, each a scan of its own "patient"
key: the first two are the annotated training scans (one of them the validation split), the last is held out.
This holds out slices, not patients: on the five CT-ICH patients, each with another kind of hemorrhage,
leaving whole patients out gives no gain (docs/benchmarks.md, `bench/adapt_curve_bench.py`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from realct_support import patient_81_block_scans

from imaging.adapt import AdaptOptions, adapt
from imaging.inference import UNetSegmenter
from imaging.model import load_model

HELD_OUT = frozenset({"81-c"})
MARGIN = 0.05


def _segmenter(model):  # noqa: ANN001, ANN202
    unet = UNetSegmenter(model, torch.device("cpu"))
    return lambda volume: unet.segment(volume)[0]


def _adapt(tmp: Path, lr: float):  # noqa: ANN202
    options = AdaptOptions(seed=1, held_out=HELD_OUT)
    options.training = dataclasses.replace(options.training, epochs=4, steps_per_epoch=15, lr=lr)
    return adapt(load_model(), patient_81_block_scans(tmp), _segmenter, options, "cpu")


def test_adapting_raises_dice_on_real_ct_slices_it_never_saw(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    result = _adapt(tmp_path, lr=1e-3)
    assert result.card["data"]["held_out_series"] == {"CTICH": 1}
    assert result.score_after > result.score_before + MARGIN, (result.score_before, result.score_after)
    assert result.improved
