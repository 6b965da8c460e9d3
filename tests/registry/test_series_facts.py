"""`registry.ingest.series_facts`: the Series columns a series' files decide."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from registry_dicom_factory import write_series

from registry.dicom_headers import read_instance_header
from registry.ingest.series_facts import series_facts
from registry.qc.series_qc import summarize_series


def test_facts_come_from_the_first_file_the_summary_and_the_earliest_acquisition(tmp_path: Path) -> None:
    headers = [read_instance_header(p) for p in write_series(tmp_path / "s", "s", n_slices=4)]
    summary = summarize_series(headers)
    early = dt.datetime(2024, 3, 6, 8, 0)
    headers[2] = replace(headers[2], acquisition_datetime=early)
    facts = series_facts(headers[0], headers, summary, tmp_path / "archive" / "s")
    assert facts["acquisition_datetime"] == early  # the earliest of the files, not the first file's
    assert facts["instance_count"] == summary.instance_count == 4
    assert (facts["rows"], facts["columns"], facts["slice_spacing"]) == (summary.rows, summary.columns,
                                                                        summary.slice_spacing)
    assert facts["series_number"] == headers[0].series_number
    assert facts["archive_path"] == str(tmp_path / "archive" / "s")


def test_a_series_without_acquisition_times_takes_its_study_time(tmp_path: Path) -> None:
    headers = [replace(read_instance_header(p), acquisition_datetime=None)
               for p in write_series(tmp_path / "s", "s", n_slices=3)]
    facts = series_facts(headers[0], headers, summarize_series(headers), tmp_path)
    assert headers[0].study_datetime is not None
    assert facts["acquisition_datetime"] == headers[0].study_datetime
