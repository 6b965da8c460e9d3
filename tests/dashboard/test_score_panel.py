"""The case viewer's CT-classification panel: scores with ranges and components with their sources."""

from __future__ import annotations

from biomarkers.ct_scores import MEASURED, REVIEWER, UNKNOWN, Component, ct_score_features
from dashboard import score_panel


def _values(**over) -> dict:
    comps = {"basal_cisterns": Component("present", MEASURED), "midline_shift_over_5mm": Component(False, MEASURED),
             "mass_lesion_over_25ml": Component(False, MEASURED), "evacuated": Component(False, "not_recorded"),
             "tsah": Component(None, UNKNOWN), "ivh": Component(False, MEASURED), "edh": Component(True, MEASURED),
             "sdh": Component(False, MEASURED), "ich": Component(False, MEASURED),
             "visible_pathology": Component(True, MEASURED), **over}
    return ct_score_features(comps)


def test_scores_show_a_range_naming_the_unknown_component() -> None:
    rows = score_panel.score_rows(_values()).set_index("Score")["Value"]
    assert rows["Marshall CT class"] == "2"  # visible pathology: tSAH cannot change it
    assert rows["Rotterdam CT score"] == "1–2 (tsah unknown)"
    assert rows["Helsinki CT score"] == "-3"


def test_components_say_where_each_value_came_from() -> None:
    table = score_panel.component_rows(_values(tsah=Component(True, REVIEWER))).set_index("Component")
    assert table.loc["Traumatic subarachnoid hemorrhage", "Source"] == "reviewer-entered"
    assert table.loc["Traumatic subarachnoid hemorrhage", "Value"] == "yes"
    assert table.loc["Epidural hematoma", "Source"] == "measured"
    assert table.loc["Evacuated mass lesion", "Source"] == "not recorded (taken as no)"
    assert table.loc["Basal cisterns used in the scores", "Value"] == "present"


def test_outcome_rate_per_class_leaves_out_ranges_and_missing_outcomes() -> None:
    import pandas as pd

    data = pd.DataFrame({"marshall_ct_class": [2.0, 2.0, 6.0, None, 6.0],
                         "died": [True, False, True, True, None]})
    table = score_panel.outcome_by_class(data, "marshall_ct_class", "died").set_index("class")
    assert table.loc[2, "series"] == 2 and table.loc[2, "rate"] == 0.5
    assert table.loc[6, "series"] == 1 and table.loc[6, "rate"] == 1.0
    fig = score_panel.outcome_by_class_figure(table.reset_index(), "Marshall CT class", "mortality")
    assert list(fig.data[0].x) == ["2", "6"]
