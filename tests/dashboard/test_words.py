"""Audit events and empty cells as people read them on the dashboard."""

from __future__ import annotations

import pandas as pd

from dashboard import words


def test_audit_states_and_actions_read_as_words() -> None:
    assert words.change_text({"qc_status": "auto_failed", "qc_reasons": ["too_few_slices"], "target": 10}) == (
        "QC status: Failed automatic checks; QC reasons: Too few slices; Target: 10")
    events = pd.DataFrame({"at": [pd.Timestamp("2024-01-01")], "actor": ["admin"], "action": ["qc_decision"],
                           "entity_type": ["series"], "entity_id": ["1.2.826.0.1.3680043.10.999.1"],
                           "before": [{"qc_status": "pending"}], "after": [None]})
    row = words.audit_table(events).iloc[0].to_dict()
    assert row["Action"] == "QC decision" and row["On"] == "Series" and row["Which"] == "…10.999.1"
    assert row["Before"] == "QC status: Waiting for review" and row["After"] == ""


def test_blank_missing_leaves_no_cell_to_show_as_none() -> None:
    frame = words.blank_missing(pd.DataFrame({"AUC": [0.71, None], "Fit": ["#1", None]}))
    assert frame["AUC"].tolist() == [0.71, ""] and frame["Fit"].tolist() == ["#1", ""]
