"""Dashboard log-in on SQLite and PostgreSQL: lockout per user, limit per address, every failure audited,
sessions ended by deactivation, lock, password change, idleness and age."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import registry.access.users
from registry.access.users import (
    FAILURE_WINDOW,
    LOCKOUT,
    MAX_ADDRESS_FAILURES,
    MAX_USER_FAILURES,
    SESSION_IDLE,
    SESSION_MAX,
    add_user,
    deactivate_user,
    log_in,
    session_identity,
    set_password,
    unlock_user,
)
from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, LoginAttempt, User, utcnow
from registry.home import Home

PASSWORD = "correct-horse"


@pytest.fixture()
def engine(any_home: Home):  # noqa: ANN201
    eng = make_engine(any_home.db_url)
    with session_scope(eng) as s:
        add_user(s, "stat", "statistician", PASSWORD)
        add_user(s, "inv", "investigator", PASSWORD)
    yield eng
    eng.dispose()


def _try(engine, name: str, password: str, address: str = "10.0.0.1", now: dt.datetime | None = None):  # noqa: ANN001, ANN202
    with session_scope(engine) as s:
        return log_in(s, name, password, address=address, now=now)


def test_a_user_is_locked_after_repeated_failures_even_with_the_right_password(engine) -> None:
    t0 = utcnow()
    for i in range(MAX_USER_FAILURES):
        result = _try(engine, "stat", f"guess-{i}", now=t0 + dt.timedelta(seconds=i))
        assert result.identity is None
    assert "locked" in result.message
    locked = _try(engine, "stat", PASSWORD, now=t0 + dt.timedelta(seconds=30))
    assert locked.identity is None and "locked" in locked.message and "users unlock" in locked.message
    # Another user is not affected; the lock ends by itself.
    assert _try(engine, "inv", PASSWORD, now=t0 + dt.timedelta(seconds=31)).identity is not None
    later = _try(engine, "stat", PASSWORD, now=t0 + LOCKOUT + dt.timedelta(seconds=10))
    assert later.identity is not None and later.identity.role == "statistician"

    with session_scope(engine) as s:
        failed = s.scalars(select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
        assert len(failed) == MAX_USER_FAILURES + 1
        assert {e.after["reason"] for e in failed} == {"wrong_password", "locked"}
        assert all(e.after["address"] == "10.0.0.1" for e in failed)
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.action == "user_locked")) == "user_locked"
        attempts = s.execute(select(LoginAttempt.username, LoginAttempt.succeeded)).all()
        assert attempts.count(("stat", False)) == MAX_USER_FAILURES + 1 and ("stat", True) in attempts


def test_failures_spread_beyond_the_window_do_not_lock(engine) -> None:
    t0 = utcnow()
    for i in range(2 * MAX_USER_FAILURES):
        _try(engine, "stat", "wrong", now=t0 + i * FAILURE_WINDOW / (MAX_USER_FAILURES - 1))
    assert _try(engine, "stat", PASSWORD, now=t0 + 2 * MAX_USER_FAILURES * FAILURE_WINDOW).identity is not None


def test_an_admin_unlock_ends_the_lock_at_once(engine) -> None:
    t0 = utcnow()
    for i in range(MAX_USER_FAILURES):
        _try(engine, "stat", "wrong", now=t0 + dt.timedelta(seconds=i))
    with session_scope(engine) as s:
        unlock_user(s, "stat", actor="admin")
    assert _try(engine, "stat", PASSWORD).identity is not None


def test_an_address_guessing_many_user_names_is_refused(engine) -> None:
    t0 = utcnow()
    for i in range(MAX_ADDRESS_FAILURES):
        _try(engine, f"user{i}", "wrong", address="10.9.9.9", now=t0 + dt.timedelta(seconds=i))
    refused = _try(engine, "inv", PASSWORD, address="10.9.9.9", now=t0 + dt.timedelta(seconds=60))
    assert refused.identity is None and "this address" in refused.message
    assert _try(engine, "inv", PASSWORD, address="10.1.1.1", now=t0 + dt.timedelta(seconds=61)).identity is not None
    later = _try(engine, "inv", PASSWORD, address="10.9.9.9", now=t0 + FAILURE_WINDOW + dt.timedelta(minutes=2))
    assert later.identity is not None


def test_open_sessions_end_on_deactivation_password_change_idleness_and_age(engine) -> None:
    t0 = utcnow()
    ident = _try(engine, "stat", PASSWORD, now=t0).identity

    def check(now: dt.datetime, last_seen: dt.datetime | None = None):  # noqa: ANN202
        with session_scope(engine) as s:
            return session_identity(s, ident, t0, last_seen or now, now)

    assert check(t0 + dt.timedelta(minutes=5)).identity == ident
    assert "without activity" in check(t0 + SESSION_IDLE * 2, last_seen=t0).message
    assert "hours after log-in" in check(t0 + SESSION_MAX + dt.timedelta(minutes=1)).message
    with session_scope(engine) as s:
        set_password(s, "stat", "another-password")
    assert "log in again" in check(utcnow() + dt.timedelta(seconds=1)).message
    with session_scope(engine) as s:
        deactivate_user(s, "stat")
        assert s.scalar(select(User.sessions_valid_after).where(User.username == "stat")) is not None
    assert "deactivated" in check(utcnow()).message
    assert _try(engine, "stat", "another-password").identity is None  # and no new log-in


def test_users_cli_lists_locks_and_failed_logins(engine, any_home: Home) -> None:
    from ctstudy.cli import app

    for _ in range(MAX_USER_FAILURES):
        _try(engine, "stat", "wrong")
    base = ["--home", str(any_home.root), "--db-url", any_home.db_url, "users"]
    runner = CliRunner()
    listed = runner.invoke(app, [*base, "list"], terminal_width=200)
    assert listed.exit_code == 0 and "locked until" in listed.output.lower()
    stat_line = next(line for line in listed.output.splitlines() if "stat" in line)
    assert utcnow().strftime("%Y-%m-%d") in stat_line.split("statistician")[1]
    logins = runner.invoke(app, [*base, "logins", "--failed"], terminal_width=200)
    assert logins.exit_code == 0 and logins.output.count("failed: wrong_password") == MAX_USER_FAILURES
    assert runner.invoke(app, [*base, "unlock", "stat"]).exit_code == 0
    assert _try(engine, "stat", PASSWORD).identity is not None


BURST = 30


def test_a_burst_of_concurrent_log_ins_verifies_at_most_the_allowed_wrong_passwords(
        engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 threads at once (as Streamlit runs browser sessions), 29 wrong passwords and the right one: at most
    MAX_USER_FAILURES wrong ones reach the hash check, and the right one gets in only ahead of the lock."""
    verified: list[str] = []
    guard = threading.Lock()
    real_matches = registry.access.users.password_matches

    def counting_matches(stored_hash: str, password: str) -> bool:
        with guard:
            verified.append(password)
        return real_matches(stored_hash, password)

    monkeypatch.setattr(registry.access.users, "password_matches", counting_matches)
    passwords = [f"guess-{i:02d}" for i in range(BURST - 1)]
    passwords.insert(BURST // 3, PASSWORD)
    barrier = threading.Barrier(BURST)
    results: dict[str, object] = {}

    def attempt(i: int, password: str) -> None:
        barrier.wait(timeout=60)
        results[password] = _try(engine, "stat", password, address=f"10.0.1.{i}")

    threads = [threading.Thread(target=attempt, args=(i, p)) for i, p in enumerate(passwords)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == BURST
    wrong_verified = [p for p in verified if p != PASSWORD]
    assert len(wrong_verified) == MAX_USER_FAILURES
    right = results[PASSWORD]
    if PASSWORD in verified:  # it got a slot before the fifth wrong one locked the account
        assert right.identity is not None and verified.index(PASSWORD) < MAX_USER_FAILURES
    else:
        assert right.identity is None and "locked" in right.message
    refused = [r for p, r in results.items() if p != PASSWORD and p not in wrong_verified]
    assert len(refused) == BURST - 1 - MAX_USER_FAILURES and all("locked" in r.message for r in refused)
    # Once locked, the right password is refused without being verified.
    verified.clear()
    after = _try(engine, "stat", PASSWORD)
    assert after.identity is None and "locked" in after.message and verified == []
    with session_scope(engine) as s:
        locks = s.scalars(select(AuditEvent).where(AuditEvent.action == "user_locked")).all()
        assert len(locks) == 1 and locks[0].after["failures"] == MAX_USER_FAILURES


def test_a_success_does_not_clear_the_wrong_passwords_before_it(engine) -> None:
    t0 = utcnow()
    for i in range(MAX_USER_FAILURES - 1):
        _try(engine, "stat", f"guess-{i}", now=t0 + dt.timedelta(seconds=i))
    assert _try(engine, "stat", PASSWORD, now=t0 + dt.timedelta(seconds=10)).identity is not None
    last = _try(engine, "stat", "guess-last", now=t0 + dt.timedelta(seconds=11))
    assert last.identity is None and "locked" in last.message
    assert _try(engine, "stat", PASSWORD, now=t0 + dt.timedelta(seconds=12)).identity is None
