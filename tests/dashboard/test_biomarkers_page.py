"""Biomarkers page and its summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
from dashboard_apptest import COORD1, STAT, page

from dashboard import biomarker_stats


def test_summaries_and_abc2_agreement() -> None:
    df = pd.DataFrame({"pseudo_id": ["a", "a", "b", "c"], "source": ["segmentation"] * 4,
                       "days_from_injury": [2.0, 0.1, 0.3, 0.2], "center": ["X", "X", "X", "Y"],
                       "hematoma_ml": [10.0, 4.0, 6.0, 20.0], "abc2_ml": [12.0, 5.0, 6.0, 23.0],
                       "midline_normal_x": [1.0] * 4, "died": [True, True, False, None]})
    assert biomarker_stats.numeric_features(df) == ["hematoma_ml", "abc2_ml"]
    first = biomarker_stats.admission_rows(df)
    assert sorted(first["hematoma_ml"]) == [4.0, 6.0, 20.0]
    summary = biomarker_stats.summary_by_group(first, "hematoma_ml", "center").set_index("center")
    assert summary.loc["X", "n"] == 2 and summary.loc["X", "median"] == 5.0
    agreement = biomarker_stats.abc2_agreement(df)
    assert agreement["n"] == 4 and agreement["mean_difference_ml"] == 1.5
    assert np.isclose(agreement["pearson_r"], np.corrcoef(df["abc2_ml"], df["hematoma_ml"])[0, 1])
    assert biomarker_stats.outcome_labels(df, "mortality").tolist()[:3] == ["died", "died", "survived"]


def test_biomarkers_page_shows_distributions_and_abc2(small) -> None:
    at = page("4_Biomarkers.py", STAT)
    assert not at.exception
    assert at.radio(key="bio_source").value == "segmentation"
    assert at.selectbox(key="bio_feature").value == "hematoma_ml"  # the main biomarker first
    assert at.selectbox(key="bio_feature").options[0] == "Hematoma volume (mL)"
    by_center = at.dataframe[0].value.set_index("Center")
    # admission scans of the segmentation source: pA1 12.5 (IT01), pA2 2.0 (IT02)
    assert list(by_center.columns) == ["Series", "Lower quartile", "Median", "Upper quartile"]
    assert by_center["Series"].to_dict() == {"IT01": 1, "IT02": 1}
    assert by_center.loc["IT01", "Median"] == 12.5
    by_outcome = at.dataframe[1].value.set_index("Outcome")
    assert by_outcome.loc["died", "Median"] == 12.5 and by_outcome.loc["survived", "Median"] == 2.0
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Series"] == "2" and metrics["Mean ABC/2 − segmented"] == "-0.50 mL"  # (11-12.5 + 2.5-2) / 2
    at.radio(key="bio_scans").set_value("all").run()
    assert {m.label: m.value for m in at.metric}["Series"] == "3"


def test_coordinator_sees_only_own_center_features(small) -> None:
    at = page("4_Biomarkers.py", COORD1)
    assert not at.exception
    assert set(at.dataframe[0].value["Center"]) == {"IT01"}


def test_no_features_says_what_to_run(home, monkeypatch) -> None:
    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    at = page("4_Biomarkers.py", STAT)
    assert not at.exception and "ctstudy biomarkers extract" in at.info[0].value


def test_biomarkers_page_says_when_masks_come_from_different_models(small) -> None:
    at = page("4_Biomarkers.py", STAT)
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "2 different models" in warning and "not directly comparable" in warning
    # S1 was segmented by run unet2d v1; the factory's other segmentation features (S2, S5) name no run
    assert "segmentation (model unknown) (1 series), unet2d v1 (1 series)" in warning  # admission scans
    at.radio(key="bio_scans").set_value("all").run()
    assert "segmentation (model unknown) (2 series), unet2d v1 (1 series)" in " ".join(w.value for w in at.warning)
    at.radio(key="bio_source").set_value("manual").run()
    assert not any("different models" in w.value for w in at.warning)  # one source, one kind of mask
