"""Quality control page: queue filters, thumbnails, a decision that persists, center scoping."""

from __future__ import annotations

import pandas as pd
import pytest
from dashboard_apptest import COORD1, STAT, page
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard import queries, review
from registry.db import make_engine
from registry.models import AuditEvent, QCDecision, Series


def _queue_uids(at) -> set[str]:
    return set(at.dataframe[0].value["series_uid"])


def test_queue_filters() -> None:
    queue = pd.DataFrame({"center": ["A", "A", "B"], "qc_status": ["pending", "auto_failed", "pending"],
                          "qc_reasons": ["", "too_few_slices", ""], "phi_flag": [True, False, False]})
    assert len(review.filtered_queue(queue, ["A", "B"], ["pending"], "", "any")) == 2
    assert len(review.filtered_queue(queue, ["A"], ["pending", "auto_failed"], "FEW", "any")) == 1
    assert review.filtered_queue(queue, ["A", "B"], ["pending"], "", "flagged")["center"].tolist() == ["A"]
    assert review.filtered_queue(queue, ["A", "B"], ["pending"], "", "clean")["center"].tolist() == ["B"]


def test_statistician_sees_every_center_and_cannot_decide(small) -> None:
    _, uids = small
    at = page("2_Quality_control.py", STAT)
    assert not at.exception
    assert _queue_uids(at) == {uids[k] for k in ("S2", "S3", "S4", "S7")}  # pending + auto-failed by default
    assert any("can review but not record" in c.value for c in at.caption)
    assert "qc_decision" not in [r.key for r in at.radio]


def test_phi_filter_and_thumbnails(small) -> None:
    _, uids = small
    at = page("2_Quality_control.py", STAT)
    at.radio(key="qc_phi").set_value("flagged").run()
    assert _queue_uids(at) == {uids["S4"]}
    assert any("PatientName" in e.value for e in at.error)
    assert at.selectbox(key="qc_series").options[0].startswith("IT01 · pC1ccccccccccccc · day unknown")
    assert {m.label: m.value for m in at.metric}["Day from injury"] == "unknown"
    at.radio(key="qc_phi").set_value("any")
    at.multiselect(key="qc_statuses").set_value(["passed"]).run()
    at.selectbox(key="qc_series").set_value(uids["S1"]).run()
    assert not at.exception
    images = at.get("image")
    assert len(images) == 1 and len(images[0].proto.imgs) == 8  # 8 slices, all shown as thumbnails


def test_coordinator_decision_persists_with_actor_and_audit(small) -> None:
    home, uids = small
    at = page("2_Quality_control.py", COORD1)
    assert _queue_uids(at) == {uids[k] for k in ("S2", "S3", "S4")}  # never IT02's S7
    assert at.dataframe[-1].value.empty  # the user_added events in the registry are not a coordinator's business
    at.selectbox(key="qc_series").set_value(uids["S2"]).run()
    # failing without a reason is refused and nothing is written
    at.radio(key="qc_decision").set_value("failed")
    at.button[0].click().run()
    assert any("needs a reason" in e.value for e in at.error)
    at.radio(key="qc_decision").set_value("failed")
    at.selectbox(key="qc_fail_reason").set_value("motion artefact")
    at.text_input(key="qc_note").set_value("repeat scan available")
    at.button[0].click().run()
    assert not at.exception
    assert any("marked failed by coord1" in s.value for s in at.success)
    engine = make_engine(home.db_url)
    with Session(engine) as s:
        series = s.scalar(select(Series).where(Series.series_instance_uid == uids["S2"]))
        assert series.qc_status == "failed" and series.qc_reasons == ["motion artefact; repeat scan available"]
        decision = s.scalars(select(QCDecision).where(QCDecision.series_id == series.id)).one()
        assert decision.actor == "coord1" and not decision.automatic
        event = s.scalars(select(AuditEvent).where(AuditEvent.entity_id == uids["S2"])).one()
        assert event.actor == "coord1" and event.before["qc_status"] == "pending"
    engine.dispose()
    # the audit trail on the page shows it after the rerun
    assert uids["S2"] in set(at.dataframe[-1].value["entity_id"])


def test_coordinator_cannot_decide_on_another_centers_series(small) -> None:
    home, uids = small
    with pytest.raises(PermissionError, match="belongs to center IT02"):
        queries.record_qc(home.db_url, uids["S7"], "passed", "", "coord1", "IT01")
    assert queries.qc_queue(home.db_url, None).set_index("series_uid").loc[uids["S7"], "qc_status"] == "pending"


def test_series_with_a_missing_slice_is_still_shown_file_by_file(small) -> None:
    home, uids = small
    engine = make_engine(home.db_url)
    with Session(engine) as s, s.begin():
        series = s.scalar(select(Series).where(Series.series_instance_uid == uids["S1"]))
        s.delete(series.instances[3])  # a gap in the slice positions: not one regular volume any more
    engine.dispose()
    at = page("2_Quality_control.py", STAT)
    at.multiselect(key="qc_statuses").set_value(["passed"]).run()
    at.selectbox(key="qc_series").set_value(uids["S1"]).run()
    assert not at.exception
    assert any(c.value.startswith("Shown file by file") for c in at.caption)
    captions = [img.caption for img in at.get("image")[0].proto.imgs]
    assert captions == [f"file {k}/7" for k in range(1, 8)]
