"""A partial annotation (255 where not annotated) is compared with the model's mask over its annotated voxels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imaging.agreement import class_agreement, restrict_to_annotated
from imaging.correction import correction_changes, summarize_corrections
from vocabulary.labels import IPH, UNANNOTATED


def _model_and_partial_correction() -> tuple[np.ndarray, np.ndarray]:
    model = np.zeros((4, 10, 10), np.uint8)
    model[0, :5, :5] = IPH  # slice 0: the annotator agrees
    model[3, :, :] = IPH  # slice 3: a large false positive the annotator did not look at
    corrected = model.copy()
    corrected[2:] = UNANNOTATED  # the annotator annotated slices 0 and 1 only
    return model, corrected


def test_correction_changes_count_only_the_annotated_voxels_and_say_how_much_that_is() -> None:
    model, corrected = _model_and_partial_correction()
    iph = {r["class"]: r for r in correction_changes(model, corrected, 0.001)}["iph"]
    assert iph["dice"] == pytest.approx(1.0)  # the unannotated slice 3 counts neither for nor against the model
    assert iph["model_ml"] == pytest.approx(25 * 0.001) and iph["corrected_ml"] == pytest.approx(25 * 0.001)
    assert iph["annotated_fraction"] == pytest.approx(0.5)


def test_a_whole_correction_is_compared_everywhere() -> None:
    model, _ = _model_and_partial_correction()
    corrected = np.zeros_like(model)
    corrected[0, :5, :5] = IPH
    iph = {r["class"]: r for r in correction_changes(model, corrected, 0.001)}["iph"]
    assert iph["dice"] == pytest.approx(2 * 25 / (125 + 25)) and iph["annotated_fraction"] == 1.0


def test_class_agreement_never_counts_unannotated_as_a_class() -> None:
    model, corrected = _model_and_partial_correction()
    rows = {r["class"]: r for r in class_agreement(model, corrected, 1.0)}
    assert all(r["ref_voxels"] == r["pred_voxels"] for r in rows.values())
    assert rows["iph"]["pred_voxels"] == 25
    assert np.array_equal(restrict_to_annotated(model, corrected)[2:], corrected[2:])
    with pytest.raises(ValueError, match="different grids"):
        restrict_to_annotated(model, corrected[:2])


def test_the_summary_says_how_many_corrections_were_partial_and_how_much_they_covered() -> None:
    model, corrected = _model_and_partial_correction()
    rows = pd.DataFrame([{"center": "A", **r} for r in correction_changes(model, corrected, 0.001)]
                        + [{"center": "A", **r} for r in correction_changes(model, model, 0.001)])
    out = summarize_corrections(rows).set_index("class").loc["iph"]
    assert out["corrections"] == 2 and out["partial_corrections"] == 1
    assert out["annotated_fraction_mean"] == pytest.approx(0.75)
    assert out["dice_pooled"] == pytest.approx(1.0)
