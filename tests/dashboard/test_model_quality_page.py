"""Model quality page: how much annotators changed the model's masks, per center and class, in the user's scope."""

from __future__ import annotations

import re

from dashboard_apptest import COORD1, COORD2, STAT, page
from sqlalchemy import select

from imaging.correction import correction_changes
from imaging.store import record_correction
from imaging.volume import read_mask
from registry.db.engine import make_engine, session_scope
from registry.db.models import ManualAnnotation, SegmentationRun
from vocabulary.labels import UNANNOTATED


def _import_the_factory_correction(home) -> list[dict]:  # noqa: ANN001
    """Store the comparison of the small registry's model mask (S1) with its manual annotation (edema removed)."""
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        run = s.scalars(select(SegmentationRun)).one()
        ann = s.scalars(select(ManualAnnotation)).one()
        model, affine = read_mask(run.mask_path)
        corrected, _ = read_mask(ann.mask_path)
        changes = correction_changes(model, corrected, abs(float(affine[0, 0] * affine[1, 1] * affine[2, 2])) / 1000)
        record_correction(s, ann, run, changes)
    engine.dispose()
    return changes


def test_page_shows_each_class_in_words_with_the_stored_dice(small) -> None:
    home, _ = small
    changes = {c["class"]: c for c in _import_the_factory_correction(home)}
    assert changes["edema"]["corrected_ml"] == 0 and changes["edema"]["model_ml"] > 0
    at = page("9_Model_quality.py", STAT)
    assert not at.exception
    summary = at.dataframe[0].value
    by_class = summary.set_index("Lesion class")
    assert by_class.loc["Intraparenchymal hematoma / contusion", "Mean Dice, model vs correction"] == 1.0
    assert by_class.loc["Perilesional edema", "Pooled Dice, model vs correction"] == 0.0
    change = by_class.loc["Perilesional edema", "Mean volume change (mL)"]
    assert change == round(-changes["edema"]["model_ml"], 3)  # the annotator removed all the edema
    headings = list(summary.columns) + list(at.dataframe[1].value.columns)
    assert not [h for h in headings if re.search(r"[a-z]+_[a-z]", h)], headings


def test_coordinators_see_their_own_center_only(small) -> None:
    home, _ = small
    _import_the_factory_correction(home)
    own = page("9_Model_quality.py", COORD1)
    assert not own.exception and set(own.dataframe[0].value["Center"]) == {"IT01"}
    other = page("9_Model_quality.py", COORD2)
    assert not other.exception and not other.dataframe
    assert "No corrections imported yet" in other.info[0].value


def test_a_partial_correction_shows_the_share_of_the_scan_it_annotated(small) -> None:
    """The annotator left half the slices at 255: its Dice covers the other half, and the page says how much."""
    home, _ = small
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        run = s.scalars(select(SegmentationRun)).one()
        ann = s.scalars(select(ManualAnnotation)).one()
        model, _ = read_mask(run.mask_path)
        corrected, _ = read_mask(ann.mask_path)
        corrected[: corrected.shape[0] // 2] = UNANNOTATED
        record_correction(s, ann, run, correction_changes(model, corrected, 0.001))
    engine.dispose()
    at = page("9_Model_quality.py", STAT)
    assert not at.exception
    summary = at.dataframe[0].value.set_index("Lesion class")
    iph = summary.loc["Intraparenchymal hematoma / contusion"]
    assert iph["Partial corrections"] == 1
    assert 0.45 < iph["Mean share of the scan annotated (fraction)"] < 0.55
    detail = at.dataframe[1].value
    assert (detail["Share of the scan annotated (fraction)"] < 1).all()
