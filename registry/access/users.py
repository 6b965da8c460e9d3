"""Dashboard users: roles, center scope and argon2-hashed passwords.

Roles (registry.db.models.ROLES):
- coordinator: sees and QCs only the series of their own center (a center is required);
- statistician: all centers, pseudonymized data, read-only for QC;
- investigator: all centers, read-only;
- admin: all centers, manages users and may also record QC decisions.

Every change is written to the audit trail (AuditEvent, entity_type "user"); the hash itself never is.

Log-in hardening (`log_in`): every attempt is recorded in LoginAttempt and every failure audited;
after MAX_USER_FAILURES wrong passwords within FAILURE_WINDOW a user is locked for LOCKOUT (an
admin may `ctstudy users unlock` sooner), and no race of concurrent log-ins gets more wrong passwords
verified than that; an address with MAX_ADDRESS_FAILURES failures within the
window is refused until they age out (one address guessing many user names). A dashboard session
is re-checked on every request (`session_identity`): it ends when the account is deactivated or
locked, its password or role changed after the log-in, after SESSION_IDLE without a request, or
SESSION_MAX after the log-in.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, case, func, null, or_, select, update
from sqlalchemy.orm import Session

from registry.db.models import ROLES, AuditEvent, Center, LoginAttempt, User, utcnow
from registry.db.rows import Rows

if TYPE_CHECKING:
    import pandas as pd

MIN_PASSWORD_LENGTH = 8
# OWASP's authentication guidance: lock an account after a handful of failures for minutes, not forever
# (a permanent lock lets anyone lock out a colleague), and limit per address as well as per account.
MAX_USER_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
FAILURE_WINDOW = dt.timedelta(minutes=15)
LOCKOUT = dt.timedelta(minutes=15)
SESSION_IDLE = dt.timedelta(minutes=30)
SESSION_MAX = dt.timedelta(hours=12)
LOCAL_ADDRESS = "local"
# argon2-cffi's defaults follow RFC 9106's second recommended profile; kept, not tuned by hand.
_HASHER = PasswordHasher()
QC_ROLES = frozenset({"coordinator", "admin"})
ALL_CENTER_ROLES = frozenset({"statistician", "investigator", "admin"})


class UserError(ValueError):
    """A user could not be added, found or changed; the message says why."""


@dataclass(frozen=True)
class Identity:
    """Who is logged in: what the dashboard needs to scope queries and allow actions."""

    username: str
    role: str
    center_code: str | None

    @property
    def can_qc(self) -> bool:
        return self.role in QC_ROLES

    @property
    def sees_all_centers(self) -> bool:
        return self.role in ALL_CENTER_ROLES

    @property
    def center_scope(self) -> str | None:
        """The one center this user may see, or None for all centers."""
        return None if self.sees_all_centers else self.center_code


def password_hash(password: str) -> str:
    """The argon2id hash (with its salt and parameters) to store for `password`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"Password too short: at least {MIN_PASSWORD_LENGTH} characters are required.")
    return _HASHER.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    """True when `password` matches the stored argon2 hash; False for a wrong password or a corrupt hash."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def add_user(
    session: Session, username: str, role: str, password: str, center_code: str | None = None, actor: str = "cli"
) -> User:
    """Create an active user; a coordinator must belong to an existing center."""
    username = username.strip()
    if not username:
        raise UserError("A user name is required.")
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"User {username!r} already exists.")
    center = None
    if center_code:
        center = session.scalar(select(Center).where(Center.code == center_code))
        if center is None:
            known = ", ".join(session.scalars(select(Center.code).order_by(Center.code))) or "none yet"
            raise UserError(f"Unknown center {center_code!r} (known centers: {known}).")
    if role == "coordinator" and center is None:
        raise UserError("A coordinator needs --center CODE: coordinators see and QC only their own center.")
    user = User(username=username, password_hash=password_hash(password), role=role, center=center, active=True)
    session.add(user)
    session.flush()
    session.add(AuditEvent(actor=actor, action="user_added", entity_type="user", entity_id=username,
                           after={"role": role, "center": center_code}))
    return user


def set_password(session: Session, username: str, password: str, actor: str = "cli") -> None:
    """A new password; the user's open dashboard sessions end (whoever knew the old one is out)."""
    user = _user(session, username)
    user.password_hash = password_hash(password)
    user.sessions_valid_after = utcnow()
    session.add(AuditEvent(actor=actor, action="password_changed", entity_type="user", entity_id=username))


def unlock_user(session: Session, username: str, actor: str = "cli") -> None:
    """Lift a lockout now and forget the failures that led to it."""
    user = _user(session, username)
    before = {"locked_until": user.locked_until.isoformat() if user.locked_until else None}
    user.locked_until = None
    user.failures_reset_at = utcnow()
    user.failed_logins = 0
    session.add(AuditEvent(actor=actor, action="user_unlocked", entity_type="user", entity_id=username,
                           before=before, after={"locked_until": None}))


def deactivate_user(session: Session, username: str, actor: str = "cli") -> None:
    """Mark a user inactive (kept for the audit trail, never deleted); they can no longer log in."""
    user = _user(session, username)
    if not user.active:
        return
    user.active = False
    user.sessions_valid_after = utcnow()  # open dashboard sessions end at their next request
    session.add(AuditEvent(actor=actor, action="user_deactivated", entity_type="user", entity_id=username,
                           before={"active": True}, after={"active": False}))


def reactivate_user(session: Session, username: str, actor: str = "cli") -> None:
    """Let a deactivated user log in again (with the password they had; an admin may also set a new one)."""
    user = _user(session, username)
    if user.active:
        return
    user.active = True
    session.add(AuditEvent(actor=actor, action="user_reactivated", entity_type="user", entity_id=username,
                           before={"active": False}, after={"active": True}))


def user_rows(session: Session) -> Rows:
    """All users, without their hashes: username, role, center, active, created_at, locked_until (None unless
    a lockout is running now)."""
    rows = session.execute(
        select(User.username, User.role, Center.code.label("center"), User.active, User.created_at,
               User.locked_until)
        .outerjoin(Center, User.center_id == Center.id)
        .order_by(User.username)
    ).all()
    now = utcnow()
    return Rows(("username", "role", "center", "active", "created_at", "locked_until"),
                [(*row[:5], row[5] if row[5] is not None and row[5] > now else None) for row in rows])


def users_table(session: Session) -> pd.DataFrame:
    """`user_rows` as a DataFrame (the dashboard's)."""
    return user_rows(session).to_frame()


def authenticated_identity(session: Session, username: str, password: str) -> Identity | None:
    """The Identity of an active user whose password matches, else None (same answer for unknown users).

    No lockout, no record: a check for scripts and tests; the dashboard logs in through `log_in`."""
    row = session.execute(
        select(User, Center.code)
        .outerjoin(Center, User.center_id == Center.id)
        .where(User.username == username.strip())
    ).first()
    if row is None:
        # Hash anyway so that response time does not reveal which user names exist.
        password_matches(_dummy_hash(), password)
        return None
    user, center_code = row
    if not password_matches(user.password_hash, password) or not user.active:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return Identity(username=user.username, role=user.role, center_code=center_code)


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one log-in attempt: the Identity, or why not (a message safe to show)."""

    identity: Identity | None
    message: str = ""
    at: dt.datetime | None = None


WRONG_CREDENTIALS = "Unknown user, wrong password or deactivated account."


def log_in(session: Session, username: str, password: str, address: str | None = None,
           now: dt.datetime | None = None) -> LoginResult:
    """Check a dashboard log-in under the per-user lockout and the per-address limit; record and audit it.

    The lockout holds in any interleaving of concurrent log-ins (Streamlit runs each browser session in
    a thread; several dashboard processes may share one database): before a password is verified, one
    conditional UPDATE (`_reserve_slot`) takes a slot in the user's counter of wrong passwords, and only
    while fewer than MAX_USER_FAILURES are taken in the current window and no lock runs. Check and count
    are then one statement, atomic on SQLite (one writer at a time) and PostgreSQL (the row is locked and
    the WHERE clause re-read once a concurrent update commits), with no SELECT ... FOR UPDATE, which SQLite
    lacks. The row (PostgreSQL) or the database's write lock (SQLite) stays taken until the caller commits,
    so one account's log-ins are verified one after another, each seeing the outcome of those before it.
    A right password gives its slot back; a wrong one keeps it and the fifth locks the account.
    So at most MAX_USER_FAILURES wrong passwords are ever verified per account between the
    start of a window and its lock's end, and a right password sent after them is refused. A success
    does not clear the wrong passwords before it: a guesser racing the owner's log-in gets no fresh tries.
    """
    now = now or utcnow()
    address = (address or LOCAL_ADDRESS)[:64]
    name = username.strip()[:64]
    since = now - FAILURE_WINDOW
    address_failures = session.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.address == address, LoginAttempt.succeeded.is_(False), LoginAttempt.at > since)) or 0
    if address_failures >= MAX_ADDRESS_FAILURES:
        _record_attempt(session, name, address, now, "address_limited")
        return LoginResult(None, f"Too many failed log-ins from this address: try again in "
                                 f"{_minutes(FAILURE_WINDOW)} minutes.")
    user_id = session.scalar(select(User.id).where(User.username == name))
    if user_id is None:
        # Hash anyway so that response time does not reveal which user names exist.
        password_matches(_dummy_hash(), password)
        _record_attempt(session, name, address, now, "wrong_password")
        return LoginResult(None, WRONG_CREDENTIALS)
    slot = _reserve_slot(session, user_id, now)
    user, center_code = session.execute(
        select(User, Center.code).outerjoin(Center, User.center_id == Center.id).where(User.id == user_id)
        .execution_options(populate_existing=True)).one()
    if slot is None:
        _record_attempt(session, name, address, now, "locked")
        until = f"until {user.locked_until:%H:%M} UTC" if user.locked_until else "for now"
        return LoginResult(None, f"This account is locked after {MAX_USER_FAILURES} failed log-ins {until}; "
                                 "try again then, or ask an administrator (`ctstudy users unlock NAME`).")
    if password_matches(user.password_hash, password):
        session.execute(update(User).where(User.id == user_id)
                        .values(failed_logins=User.failed_logins - 1)
                        .execution_options(synchronize_session=False))
        if not user.active:
            _record_attempt(session, name, address, now, "inactive")
            return LoginResult(None, WRONG_CREDENTIALS)
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        session.add(LoginAttempt(at=now, username=name, address=address, succeeded=True))
        return LoginResult(Identity(username=user.username, role=user.role, center_code=center_code), at=now)
    _record_attempt(session, name, address, now, "wrong_password")
    if slot < MAX_USER_FAILURES:
        return LoginResult(None, WRONG_CREDENTIALS)
    locked_until = now + LOCKOUT
    session.execute(update(User).where(User.id == user_id).values(locked_until=locked_until)
                    .execution_options(synchronize_session=False))
    session.add(AuditEvent(actor="dashboard", action="user_locked", entity_type="user", entity_id=name,
                           after={"locked_until": locked_until.isoformat(), "failures": slot, "address": address}))
    return LoginResult(None, f"Too many failed log-ins: this account is locked for {_minutes(LOCKOUT)} minutes.")


def _reserve_slot(session: Session, user_id: int, now: dt.datetime) -> int | None:
    """Take one slot in the user's failure counter: its number (1 to MAX_USER_FAILURES), or None when the
    account is locked or every slot of the current window is taken.

    One UPDATE ... WHERE ... RETURNING, so that no two log-ins can both see a free slot. A window starts at
    the first attempt after the last one aged out (FAILURE_WINDOW) or after a lock ended; the SET
    expressions all read the row as it was before this statement.
    """
    fresh = or_(User.failures_reset_at.is_(None), User.failures_reset_at <= now - FAILURE_WINDOW,
                and_(User.locked_until.is_not(None), User.locked_until <= now))
    statement = (
        update(User)
        .where(User.id == user_id, or_(User.locked_until.is_(None), User.locked_until <= now),
               or_(fresh, User.failed_logins < MAX_USER_FAILURES))
        .values(failed_logins=case((fresh, 1), else_=User.failed_logins + 1),
                failures_reset_at=case((fresh, now), else_=User.failures_reset_at),
                locked_until=case((fresh, null()), else_=User.locked_until))
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).scalar_one_or_none()


def session_identity(session: Session, ident: Identity, logged_in_at: dt.datetime, last_seen: dt.datetime,
                     now: dt.datetime | None = None) -> LoginResult:
    """Re-check an open dashboard session on a request: the current Identity, or why the session ended.

    The role and center come fresh from the registry, so a change applies at the next request.
    """
    now = now or utcnow()
    if now - last_seen > SESSION_IDLE:
        return LoginResult(None, f"Your session ended after {_minutes(SESSION_IDLE)} minutes without activity: "
                                 "log in again.")
    if now - logged_in_at > SESSION_MAX:
        return LoginResult(None, f"Your session ended {SESSION_MAX.total_seconds() / 3600:g} hours after log-in: "
                                 "log in again.")
    row = session.execute(select(User, Center.code).outerjoin(Center, User.center_id == Center.id)
                          .where(User.username == ident.username)).first()
    if row is None or not row[0].active:
        return LoginResult(None, "Your session ended: this account has been deactivated.")
    user, center_code = row
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(None, "Your session ended: this account is locked.")
    if user.sessions_valid_after is not None and user.sessions_valid_after > logged_in_at:
        return LoginResult(None, "Your session ended: the account was changed (password or role); log in again.")
    return LoginResult(Identity(username=user.username, role=user.role, center_code=center_code), at=logged_in_at)


def login_attempt_rows(session: Session, since: dt.datetime | None = None) -> Rows:
    """Log-in attempts, newest first: at, username, address, succeeded, reason."""
    query = select(LoginAttempt.at, LoginAttempt.username, LoginAttempt.address, LoginAttempt.succeeded,
                   LoginAttempt.reason).order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
    if since is not None:
        query = query.where(LoginAttempt.at >= since)
    return Rows(("at", "username", "address", "succeeded", "reason"), [tuple(r) for r in session.execute(query).all()])


def _record_attempt(session: Session, name: str, address: str, now: dt.datetime, reason: str) -> None:
    session.add(LoginAttempt(at=now, username=name, address=address, succeeded=False, reason=reason))
    session.add(AuditEvent(at=now, actor="dashboard", action="login_failed", entity_type="user", entity_id=name,
                           after={"address": address, "reason": reason}))


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"No user {username!r}.")
    return user


@functools.cache
def _dummy_hash() -> str:
    """Hashed at the first unknown-user log-in, not at import: an argon2 hash costs 0.15 s of every command's
    start-up (`users list` imports this module). Only that first unknown-name attempt of a dashboard process
    takes one hash longer than a known name's; every later one takes the same time."""
    return _HASHER.hash("not-a-real-password")
