"""The app's entry: log-in against the registry's argon2 hashes, role-dependent pages, the admin's Users page."""

from __future__ import annotations

from pathlib import Path

from dashboard_apptest import ADMIN, COORD1, page
from dashboard_registry_factory import PASSWORD
from sqlalchemy import select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from registry.access.users import authenticated_identity
from registry.db.engine import make_engine
from registry.db.models import AuditEvent, User

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def _log_in(username: str, password: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.text_input[0].set_value(username)
    at.text_input[1].set_value(password)
    at.button[0].click()
    return at.run()


def test_wrong_password_is_refused_and_nothing_is_shown(small) -> None:
    at = _log_in("coord1", "not-the-password")
    assert not at.exception
    assert "wrong password" in at.error[0].value and "identity" not in at.session_state
    assert not at.metric  # no Collection figures before log-in


def test_log_in_opens_collection_scoped_to_the_users_center(small) -> None:
    at = _log_in("coord1", PASSWORD)
    assert not at.exception
    assert at.session_state["identity"] == COORD1
    assert at.title[0].value == "Collection" and {m.label: m.value for m in at.metric}["Patients"] == "3"
    assert any("coord1" in m.value and "center IT01" in m.value for m in at.sidebar.markdown)


def test_a_page_opened_without_log_in_shows_the_form(small) -> None:
    at = page("2_Quality_control.py", None)
    assert not at.exception and at.button[0].label == "Log in" and not at.dataframe


def test_users_page_is_for_admins_and_adds_and_deactivates(small) -> None:
    home, _ = small
    assert "Only administrators" in page("7_Users.py", COORD1).error[0].value
    at = page("7_Users.py", ADMIN)
    assert set(at.dataframe[0].value["User name"]) == {"coord1", "coord2", "stat", "inv", "admin"}
    at.text_input(key="u_name").set_value("coord3")
    at.selectbox(key="u_role").set_value("coordinator")
    at.text_input(key="u_password").set_value("long-password")
    at.button[0].click().run()
    assert "needs --center" in at.error[0].value  # the registry's rule, shown as is
    at.text_input(key="u_name").set_value("coord3")
    at.selectbox(key="u_role").set_value("coordinator")
    at.selectbox(key="u_center").set_value("IT02")
    at.text_input(key="u_password").set_value("long-password")
    at.button[0].click().run()
    assert not at.exception and "coord3" in set(at.dataframe[0].value["User name"])
    at.selectbox(key="u_deactivate").set_value("inv")
    at.button(key="FormSubmitter:deactivate_user-Deactivate").click().run()
    assert "Tick the confirmation to deactivate inv" in at.error[0].value  # nothing done without it
    at.checkbox(key="u_deactivate_sure").check()
    at.button(key="FormSubmitter:deactivate_user-Deactivate").click().run()
    engine = make_engine(home.db_url)
    with Session(engine) as s:
        assert authenticated_identity(s, "coord3", "long-password").center_code == "IT02"
        assert s.scalar(select(User.active).where(User.username == "inv")) is False
        events = s.execute(select(AuditEvent.entity_id, AuditEvent.action).where(AuditEvent.actor == "admin")).all()
        assert sorted(events) == [("coord3", "user_added"), ("inv", "user_deactivated")]
    engine.dispose()
