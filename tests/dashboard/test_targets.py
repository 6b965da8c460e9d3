"""Per-center collection targets: stored in the registry by an admin (audited), shown to each center as bars."""

from __future__ import annotations

import pandas as pd
import pytest
from dashboard_apptest import ADMIN, COORD1, COORD2, STAT, page
from dashboard_registry_factory import build
from sqlalchemy import func, select

from dashboard import collection
from registry.collection.targets import effective_targets, set_target, set_targets, stored_targets
from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent
from registry.home import Home


def test_targets_store_audits_every_change_and_nothing_else(any_home: Home) -> None:
    build(any_home)  # centers IT01, IT02
    engine = make_engine(any_home.db_url)
    with session_scope(engine) as s:
        assert set_targets(s, "IT01", {"patients": 40, "series_qc_passed": 120}, "admin") == ["patients",
                                                                                               "series_qc_passed"]
        assert set_target(s, None, "series_qc_passed", 1500, "admin")
        assert not set_target(s, "IT01", "patients", 40, "admin")  # the same value again: no row, no audit
    with session_scope(engine) as s:
        assert set_target(s, "IT01", "patients", 45, "admin2")
        assert set_target(s, "IT01", "series_qc_passed", None, "admin2")  # removed
        with pytest.raises(ValueError, match="positive whole number"):
            set_target(s, "IT01", "patients", 0, "admin")
        with pytest.raises(ValueError, match="unknown target"):
            set_target(s, "IT01", "series_done", 3, "admin")
        with pytest.raises(LookupError, match="no center 'XX99'"):
            set_target(s, "XX99", "patients", 3, "admin")
    with session_scope(engine) as s:
        stored = stored_targets(s)
        events = s.scalars(select(AuditEvent).where(AuditEvent.entity_type == "center_target")
                           .order_by(AuditEvent.id)).all()
    engine.dispose()
    assert effective_targets(stored, {"series_qc_passed": 2000, "series_annotated": 550}, None) == {
        "series_qc_passed": 1500, "series_annotated": 550}
    assert effective_targets(stored, {"series_qc_passed": 2000}, "IT01") == {"patients": 45}
    assert effective_targets(stored, {"series_qc_passed": 2000}, "IT02") == {}
    assert [(e.entity_id, e.actor, e.before["target"], e.after["target"]) for e in events] == [
        ("IT01:patients", "admin", None, 40), ("IT01:series_qc_passed", "admin", None, 120),
        ("study:series_qc_passed", "admin", None, 1500), ("IT01:patients", "admin2", 40, 45),
        ("IT01:series_qc_passed", "admin2", 120, None)]


def test_coordinator_without_targets_is_told_who_sets_them_never_a_path(small) -> None:
    home, _ = small
    at = page("1_Collection.py", COORD1)
    assert not at.exception
    texts = " ".join(x.value for x in [*at.info, *at.caption])
    assert "No targets set for center IT01 yet: your study administrator sets them" in texts
    assert str(home.root) not in texts and ".toml" not in texts
    assert not [e for e in at.expander if "Set targets" in e.label]  # only admins edit


def _admin_sets(at, which: str, values: dict[str, int]):  # noqa: ANN001, ANN202
    at.selectbox(key="targets_of").set_value(which).run()
    for metric, value in values.items():
        at.number_input(key=f"target_{which}_{metric}").set_value(value)
    return [b for b in at.button if b.label == "Save targets"][0].click().run()


def test_admin_sets_a_centers_targets_and_that_center_sees_its_bars(small) -> None:
    home, _ = small
    at = page("1_Collection.py", ADMIN)
    assert not at.exception
    at = _admin_sets(at, "IT01", {"patients": 6, "series_qc_passed": 4})
    assert not at.exception
    assert any("Targets of center IT01 saved by admin: Patients enrolled, Series passed QC" in s.value
               for s in at.success)
    # the same values again: nothing is written
    at = _admin_sets(at, "IT01", {"patients": 6, "series_qc_passed": 4})
    assert any("unchanged" in s.value for s in at.success)
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.entity_type == "center_target")) == 2
    engine.dispose()

    mine = page("1_Collection.py", COORD1)
    bars = [p.proto.text for p in mine.get("progress")]
    assert bars == ["Patients enrolled: 3 of 6 (50%)", "Series passed QC: 1 of 4 (25%)"]
    other = page("1_Collection.py", COORD2)
    assert not other.get("progress") and any("No targets set for center IT02" in i.value for i in other.info)
    stat = page("1_Collection.py", STAT)
    per_center = [f.value for f in stat.dataframe if "reached" in f.value.columns][0]
    assert per_center[["center", "done", "target"]].values.tolist() == [["IT01", 3, 6], ["IT01", 1, 4]]


def test_targets_still_in_a_homes_file_count_until_stored() -> None:
    stored = pd.DataFrame([["IT01", "patients", 9, None, "admin"]],
                          columns=["center", "metric", "target", "updated_at", "updated_by"])
    merged = collection.with_file_targets(stored, {"IT01": {"patients": 5, "series_annotated": 3}})
    assert effective_targets(merged, {}, "IT01") == {"patients": 9, "series_annotated": 3}
