"""Quality control page: a review queue that opens on what needs a decision, the viewer, verdicts, next series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dashboard_apptest import COORD1, STAT, page
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dashboard import imageview, qc_view, queries, review
from registry.db.engine import make_engine
from registry.db.models import AuditEvent, QCDecision, Series
from vocabulary.dictionary import short_uid
from vocabulary.labels import BY_VALUE, IPH


def _queue_refs(at) -> list[str]:  # noqa: ANN001
    return at.dataframe[0].value["Reference"].tolist()


def test_queue_filters_order_and_next() -> None:
    queue = pd.DataFrame({"center": ["A", "A", "B"], "qc_status": ["pending", "auto_failed", "pending"],
                          "qc_reasons": ["", "too_few_slices", ""], "phi_flag": [True, False, False]})
    assert len(review.filtered_queue(queue, ["A", "B"], ["pending"], "", "any")) == 2
    assert review.filtered_queue(queue, ["A", "B"], ["pending"], "", "flagged")["center"].tolist() == ["A"]
    order = qc_view.review_order(pd.DataFrame({
        "series_uid": ["done", "new", "old"], "qc_status": ["passed", "pending", "auto_failed"],
        "ingested_at": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01"])}))
    assert order["series_uid"].tolist() == ["old", "new", "done"]  # needs a decision first, oldest first
    assert qc_view.next_series(["a", "b", "c"], "b") == "c" and qc_view.next_series(["a", "b", "c"], "c") == "a"
    assert qc_view.next_series(["a"], "a") is None
    found = qc_view.search_queue(pd.DataFrame({
        "series_uid": ["1.2.3.862409942541", "1.2.3.5"], "pseudo_id": ["p1", "p2"], "description": ["Head", "Topo"],
        "qc_reasons": ["", "localizer"]}), "…09942541")
    assert found["pseudo_id"].tolist() == ["p1"]
    assert qc_view.reason_words("localizer, too_few_slices") == ["Localizer (scout) image", "Too few slices"]


def test_topogram_is_windowed_to_its_own_range_and_classes_have_their_colours() -> None:
    topogram = np.full((64, 64), -950.0)
    topogram[10:54, 20:44] = -640.0  # a lateral projection: averages along the beam, mostly air
    assert imageview.windowed_uint8(topogram, *imageview.WINDOW_PRESETS["brain"]).max() == 0  # black, the bug
    shown = imageview.windowed_uint8(topogram, *qc_view.auto_window(topogram))
    assert shown.min() == 0 and shown.max() == 255  # the head is visible against the air
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = IPH
    rgb = qc_view.class_overlay(np.zeros((4, 4), np.uint8), labels, alpha=1.0)
    assert "#" + "".join(f"{v:02x}" for v in rgb[0, 0]) == BY_VALUE[IPH].colour and rgb[1, 1].tolist() == [0, 0, 0]


def test_opens_on_what_needs_a_decision_oldest_first_with_reasons_in_words(small) -> None:
    _, uids = small
    at = page("2_Quality_control.py", STAT)
    assert not at.exception
    assert _queue_refs(at) == [short_uid(uids[k]) for k in ("S3", "S4", "S7", "S2")]
    assert at.selectbox(key="qc_series").value == uids["S3"]  # the oldest series that needs a decision
    assert any("4 series need a decision" in m.value for m in at.markdown)
    warning = " ".join(w.value for w in at.warning)
    assert "Too few slices" in warning and "too_few_slices" not in warning
    assert any("can review but not record" in c.value for c in at.caption)
    assert not [r.key for r in at.radio if r.key.startswith("qc_decision")]


def test_phi_filter_and_search(small) -> None:
    _, uids = small
    at = page("2_Quality_control.py", STAT)
    at.radio(key="qc_phi").set_value("flagged").run()
    assert _queue_refs(at) == [short_uid(uids["S4"])]
    assert any("PatientName" in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}["Day from injury"] == "unknown"
    at.radio(key="qc_phi").set_value("any")
    at.text_input(key="qc_search").set_value(short_uid(uids["S7"])).run()
    assert _queue_refs(at) == [short_uid(uids["S7"])]


def test_viewer_browses_slices_with_windows_and_the_mask_overlay(small) -> None:
    _, uids = small
    at = page("2_Quality_control.py", STAT)
    at.multiselect(key="qc_statuses").set_value(["passed"]).run()
    at.selectbox(key="qc_series").set_value(uids["S1"]).run()
    assert not at.exception
    assert at.radio(key=f"qc_window_{uids['S1']}").options == ["image range", "brain 40/80", "subdural 75/215",
                                                                "bone 600/2800"]
    assert at.radio(key=f"qc_window_{uids['S1']}").value == "brain"
    assert at.radio(key=f"qc_mask_{uids['S1']}").options == ["automatic", "manual", "none"]
    slider = at.slider(key=f"qc_slice_{uids['S1']}_automatic")
    assert (slider.min, slider.max) == (1, 8)
    assert any("Intraparenchymal" in m.value for m in at.markdown)  # the colour key of the overlay
    slider.set_value(2).run()
    at.radio(key=f"qc_window_{uids['S1']}").set_value("bone").run()
    assert not at.exception
    assert at.get("image")[0].proto.imgs[0].caption == "slice 2/8"


def test_decision_has_no_default_needs_a_reason_to_fail_moves_on_and_is_never_duplicated(small) -> None:
    home, uids = small
    at = page("2_Quality_control.py", COORD1)
    assert _queue_refs(at) == [short_uid(uids[k]) for k in ("S3", "S4", "S2")]  # never IT02's S7
    assert at.selectbox(key="qc_series").value == uids["S3"]
    assert at.radio(key="qc_decision_" + uids["S3"]).value is None  # no default verdict, even when auto-failed
    at.button(key="FormSubmitter:qc_decision_form_" + uids["S3"] + "-Record decision").click().run()
    assert any("Choose a verdict" in e.value for e in at.error)
    at.radio(key="qc_decision_" + uids["S3"]).set_value("failed")
    at.button(key="FormSubmitter:qc_decision_form_" + uids["S3"] + "-Record decision").click().run()
    assert any("choose a reason from the list or write one" in e.value for e in at.error)
    assert at.radio(key="qc_decision_" + uids["S3"]).value == "failed"  # the chosen verdict stays selected
    assert at.multiselect(key="qc_reasons_pick_" + uids["S3"]).options[0] == "Too few slices"  # automatic first
    at.multiselect(key="qc_reasons_pick_" + uids["S3"]).set_value(["Too few slices"])
    at.text_input(key="qc_note_" + uids["S3"]).set_value("repeat scan available")
    at.button(key="FormSubmitter:qc_decision_form_" + uids["S3"] + "-Record decision").click().run()
    assert not at.exception
    assert any("marked failed by coord1" in s.value for s in at.success)
    assert at.selectbox(key="qc_series").value == uids["S4"]  # the next series, without a click
    assert at.radio(key="qc_decision_" + uids["S4"]).value is None  # and nothing carried over from the last one
    assert at.text_input(key="qc_note_" + uids["S4"]).value == ""
    engine = make_engine(home.db_url)
    with Session(engine) as s:
        series = s.scalar(select(Series).where(Series.series_instance_uid == uids["S3"]))
        assert series.qc_status == "failed" and series.qc_reasons == ["Too few slices; repeat scan available"]
        decision = s.scalars(select(QCDecision).where(QCDecision.series_id == series.id)).one()
        assert decision.actor == "coord1" and not decision.automatic
        event = s.scalars(select(AuditEvent).where(AuditEvent.entity_id == uids["S3"])).one()
        assert event.actor == "coord1" and event.before["qc_status"] == "auto_failed"
    # the same decision again (a double click, another tab): nothing new is written
    repeated = queries.record_qc(home.db_url, uids["S3"], "failed", "Too few slices; repeat scan available",
                                 "coord1", "IT01")
    assert repeated is not None and repeated.actor == "coord1"
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(QCDecision).where(QCDecision.series_id == series.id)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.entity_id == uids["S3"])) == 1
    engine.dispose()


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
