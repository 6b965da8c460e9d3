"""Collection page and its pure computations, on the small registry."""

from __future__ import annotations

import pandas as pd
import pytest
from dashboard_apptest import COORD1, STAT, page
from dashboard_registry_factory import EXPECTED, INJURY

from dashboard import collection, queries
from vocabulary.dictionary import heading


def test_center_counts_match_the_registry(small) -> None:
    home, _ = small
    counts = queries.center_counts(home.db_url, None).set_index("center")
    for center, expected in EXPECTED.items():
        assert counts.loc[center, list(expected)].to_dict() == expected
    only_it01 = queries.center_counts(home.db_url, "IT01")
    assert only_it01["center"].tolist() == ["IT01"]


def test_arrivals_dated_by_scan_or_by_receipt(small) -> None:
    """Scan dates give the enrolment curve (first scan per patient); receipt dates when data came in."""
    home, _ = small
    scanned = queries.arrival_events(home.db_url, None, "scanned")
    per_kind = scanned.groupby(["center", "kind"]).size().to_dict()
    assert per_kind == {("IT01", "patients"): 3, ("IT01", "series"): 4, ("IT02", "patients"): 2,
                        ("IT02", "series"): 3}
    it01_patients = scanned[(scanned.center == "IT01") & (scanned.kind == "patients")]["at"]
    assert sorted(pd.to_datetime(it01_patients).dt.round("min")) == [
        pd.Timestamp(INJURY + pd.Timedelta(days=d)).round("min") for d in (0.1, 0.2, 0.3)]
    received = queries.arrival_events(home.db_url, "IT02", "received")
    assert set(received["center"]) == {"IT02"} and len(received) == 2 + 3
    with pytest.raises(ValueError, match="basis"):
        queries.arrival_events(home.db_url, None, "uploaded")


def test_progress_against_targets_is_derived_from_counts() -> None:
    counts = pd.DataFrame([{"center": "A", **EXPECTED["IT01"]}, {"center": "B", **EXPECTED["IT02"]}])
    progress = collection.progress_against_targets(collection.totals_row(counts),
                                                   {"series_qc_passed": 4, "series_annotated": 1})
    assert progress["done"].tolist() == [2, 1] and progress["fraction"].tolist() == [0.5, 1.0]


def test_cumulative_arrivals_count_up_per_center_and_kind() -> None:
    at = pd.to_datetime(["2024-01-01 10:00", "2024-01-01 12:00", "2024-01-03 09:00", "2024-01-02 09:00"])
    events = pd.DataFrame({"center": ["A", "A", "A", "B"], "kind": ["series"] * 4, "at": at})
    cum = collection.cumulative_by_center(events)
    assert cum[cum.center == "A"]["cumulative"].tolist() == [2, 3]
    assert cum[cum.center == "B"]["cumulative"].tolist() == [1]


def test_targets_file_in_the_home_overrides_defaults_and_bad_values_are_named(tmp_path) -> None:
    toml = "[study]\nseries_qc_passed = 10\n[center.IT01]\npatients = 5\n"
    (tmp_path / collection.HOME_TARGETS_FILE).write_text(toml)
    targets = collection.load_targets(tmp_path)
    assert targets["study"]["series_qc_passed"] == 10 and targets["study"]["series_annotated"] == 550
    assert targets["center"]["IT01"] == {"patients": 5}
    (tmp_path / collection.HOME_TARGETS_FILE).write_text("[study]\nseries_done = 10\n")
    with pytest.raises(ValueError, match="unknown target 'series_done'"):
        collection.load_targets(tmp_path)


def test_collection_page_shows_all_centers_to_a_statistician(small) -> None:
    at = page("1_Collection.py", STAT)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Patients"] == "5" and metrics["Series"] == "7" and metrics["QC passed"] == "2"
    assert metrics["QC pending"] == "3" and metrics[heading("series_annotated")] == "1"
    per_center = at.dataframe[0].value
    total = per_center.set_index("Center").loc["Total"]
    for name, value in metrics.items():  # every headline count is the table's total under the same heading
        assert str(total[name]) == value.replace(",", ""), name
    assert metrics["QC failed"] == "1" and metrics["Auto-failed"] == "1"  # one by a reviewer, one automatic
    assert per_center["Center"].tolist() == ["IT01", "IT02", "Total"]  # headings from the data dictionary
    assert per_center.set_index("Center").loc["Total", "Patients"] == 5
    assert any("Series passed QC: 2 of 2,000" in p.proto.text for p in at.get("progress"))
    owed = at.dataframe[1].value.set_index("Center")  # registry.collection.progress.missing_summary, in words
    assert owed.loc["IT01", "No clinical data"] == 1 and owed.loc["IT01", "No 6-month outcome"] == 2
    assert owed.loc["IT02", "Series waiting for QC review"] == 1
    assert owed.loc["TOTAL", "Series waiting for QC review"] == 3
    assert not any("_" in str(c) for frame in at.dataframe for c in frame.value.columns)  # no snake_case on screen


def test_coordinator_sees_only_their_center(small) -> None:
    at = page("1_Collection.py", COORD1)
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Patients"] == "3"
    frames = [f.value for f in at.dataframe if "Center" in f.value.columns]  # all but the data dictionary
    assert len(frames) == len(at.dataframe) - 1
    for frame in frames:
        assert set(frame["Center"]) == {"IT01"}


def test_empty_registry_says_what_to_do(home, monkeypatch) -> None:
    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    at = page("1_Collection.py", STAT)
    assert not at.exception and "ctstudy registry ingest" in at.info[0].value
