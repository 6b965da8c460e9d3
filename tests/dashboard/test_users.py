"""Users: argon2 hashes, role and center rules, log-in, deactivation, and the `ctstudy users` commands."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.access.users import UserError, add_user, authenticated_identity, deactivate_user, users_table
from registry.db.engine import session_scope
from registry.db.models import AuditEvent, Center, User


@pytest.fixture()
def centers(engine) -> None:
    with session_scope(engine) as s:
        s.add_all([Center(code="IT01", name="Milano"), Center(code="IT02", name="Bergamo")])


def test_password_is_stored_as_argon2_hash_and_login_checks_it(engine, centers) -> None:
    with session_scope(engine) as s:
        add_user(s, "anna", "coordinator", "s3cret-pass", center_code="IT01")
    with session_scope(engine) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "anna"))
        assert stored.startswith("$argon2id$") and "s3cret-pass" not in stored
        ident = authenticated_identity(s, "anna", "s3cret-pass")
        assert ident is not None and ident.role == "coordinator" and ident.center_code == "IT01"
        assert ident.center_scope == "IT01" and ident.can_qc
        assert authenticated_identity(s, "anna", "wrong-password") is None
        assert authenticated_identity(s, "nobody", "s3cret-pass") is None


def test_role_and_center_rules(engine, centers) -> None:
    with session_scope(engine) as s:
        with pytest.raises(UserError, match="needs --center"):
            add_user(s, "c", "coordinator", "longenough")
        with pytest.raises(UserError, match="Unknown center 'XX'.*IT01, IT02"):
            add_user(s, "c", "coordinator", "longenough", center_code="XX")
        with pytest.raises(UserError, match="Unknown role"):
            add_user(s, "c", "boss", "longenough")
        with pytest.raises(UserError, match="too short"):
            add_user(s, "c", "statistician", "short")
        stat = add_user(s, "stat", "statistician", "longenough")
        assert stat.center_id is None
        with pytest.raises(UserError, match="already exists"):
            add_user(s, "stat", "investigator", "longenough")
    with session_scope(engine) as s:
        ident = authenticated_identity(s, "stat", "longenough")
        assert ident.center_scope is None and not ident.can_qc


def test_deactivated_user_cannot_log_in_and_is_audited(engine, centers) -> None:
    with session_scope(engine) as s:
        add_user(s, "inv", "investigator", "longenough")
    with session_scope(engine) as s:
        deactivate_user(s, "inv", actor="admin1")
    with session_scope(engine) as s:
        assert authenticated_identity(s, "inv", "longenough") is None
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == "inv").order_by(AuditEvent.id))
        assert list(actions) == ["user_added", "user_deactivated"]
        df = users_table(s)
        assert "password_hash" not in df.columns and not df.loc[df.username == "inv", "active"].item()


def test_users_cli_add_list_deactivate(home, engine, centers) -> None:
    runner = CliRunner()
    base = ["--home", str(home.root), "--db-url", home.db_url, "users"]
    add = [*base, "add", "bea", "--role", "coordinator", "--center", "IT02", "--password", "pw-123456"]
    r = runner.invoke(app, add)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "add", "bad", "--role", "coordinator", "--password", "pw-123456"])
    assert r.exit_code == 1 and "needs --center" in r.output
    r = runner.invoke(app, [*base, "list"])
    assert r.exit_code == 0 and "bea" in r.output and "IT02" in r.output and "bad" not in r.output
    r = runner.invoke(app, [*base, "deactivate", "bea"])
    assert r.exit_code == 0
    with session_scope(engine) as s:
        assert s.scalar(select(User.active).where(User.username == "bea")) is False


def test_users_page_reactivates_unlocks_and_resets_a_password_each_audited(small) -> None:
    import datetime as dt

    from dashboard_apptest import ADMIN, page

    from registry.db.engine import make_engine
    from registry.db.models import utcnow

    home, _ = small
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        deactivate_user(s, "inv", actor="admin")
        s.scalar(select(User).where(User.username == "stat")).locked_until = utcnow() + dt.timedelta(minutes=10)
    at = page("7_Users.py", ADMIN)
    assert not at.exception
    assert at.selectbox(key="u_reactivate").options == ["inv"] and at.selectbox(key="u_unlock").options == ["stat"]
    at.button(key="FormSubmitter:reactivate_user-Reactivate").click().run()
    assert "User inv reactivated" in at.success[0].value
    at.button(key="FormSubmitter:unlock_user-Unlock").click().run()
    assert "User stat unlocked" in at.success[0].value
    at.selectbox(key="u_reset").set_value("coord1")
    at.text_input(key="u_reset_password").set_value("a-new-password")
    at.text_input(key="u_reset_again").set_value("another-password")
    at.button(key="FormSubmitter:reset_password-Set password").click().run()
    assert "The two passwords differ" in at.error[0].value
    at.selectbox(key="u_reset").set_value("coord1")
    at.text_input(key="u_reset_password").set_value("short")
    at.text_input(key="u_reset_again").set_value("short")
    at.button(key="FormSubmitter:reset_password-Set password").click().run()
    assert "too short" in at.error[0].value
    at.selectbox(key="u_reset").set_value("coord1")
    at.text_input(key="u_reset_password").set_value("a-new-password")
    at.text_input(key="u_reset_again").set_value("a-new-password")
    at.button(key="FormSubmitter:reset_password-Set password").click().run()
    assert "Password of coord1 reset" in at.success[0].value
    shown = at.dataframe[-1].value  # the page's own record of what was done to accounts
    assert {"User reactivated", "User unlocked", "Password changed"} <= set(shown["action"])  # in words
    with session_scope(engine) as s:
        assert authenticated_identity(s, "inv", "password-1") is not None  # back, with their own password
        assert authenticated_identity(s, "stat", "password-1") is not None  # no longer locked
        assert authenticated_identity(s, "coord1", "a-new-password") is not None
        assert authenticated_identity(s, "coord1", "password-1") is None
        events = s.execute(select(AuditEvent.entity_id, AuditEvent.action).where(
            AuditEvent.actor == "admin", AuditEvent.action != "user_deactivated")).all()
        assert sorted(events) == [("coord1", "password_changed"), ("inv", "user_reactivated"),
                                  ("stat", "user_unlocked")]
    engine.dispose()


def test_users_cli_reactivate(home, engine, centers) -> None:
    with session_scope(engine) as s:
        add_user(s, "inv", "investigator", "longenough")
        deactivate_user(s, "inv", actor="admin1")
    r = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "users", "reactivate", "inv"])
    assert r.exit_code == 0, r.output
    with session_scope(engine) as s:
        assert authenticated_identity(s, "inv", "longenough") is not None
        assert s.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "user_reactivated"
