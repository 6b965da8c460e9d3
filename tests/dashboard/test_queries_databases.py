"""The dashboard's queries give the same answers on SQLite and PostgreSQL (JSON columns, grouping, scoping)."""

from __future__ import annotations

import dashboard_registry_factory as factory
import pytest
import streamlit as st

from dashboard import queries


@pytest.mark.postgres
def test_queries_on_sqlite_and_postgresql(any_home) -> None:
    uids = factory.build(any_home)
    st.cache_data.clear()
    st.cache_resource.clear()
    url = any_home.db_url
    counts = queries.center_counts(url, None).set_index("center")
    for center, expected in factory.EXPECTED.items():
        assert counts.loc[center, list(expected)].to_dict() == expected
    queue = queries.qc_queue(url, "IT01")
    assert set(queue["center"]) == {"IT01"} and queue.set_index("series_uid").loc[uids["S4"], "phi_flag"]
    features = queries.series_features(url, None)
    assert len(features) == 4 and features["hematoma_ml"].sum() == 12.5 + 18.0 + 2.0 + 11.0
    assert queries.patient_series(url, "IT01", "pA1aaaaaaaaaaaaa")["auto_mask"].notna().sum() == 1
    assert queries.patient_clinical(url, "IT02", "pA1aaaaaaaaaaaaa") is None  # another center's patient
    queries.record_qc(url, uids["S7"], "failed", "motion artefact", "coord2", "IT02")
    assert queries.qc_queue(url, None).set_index("series_uid").loc[uids["S7"], "qc_status"] == "failed"
    assert queries.audit_trail(url, "IT02")["entity_id"].tolist() == [uids["S7"]]
    assert len(queries.model_fits(url)) == 2
    queries.engine_for(url).dispose()  # let the fixture drop the PostgreSQL database
