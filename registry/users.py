"""Dashboard users: roles, center scope and argon2-hashed passwords.

Roles (registry.models.ROLES):
- coordinator: sees and QCs only the series of their own center (a center is required);
- statistician: all centers, pseudonymized data, read-only for QC;
- investigator: all centers, read-only;
- admin: all centers, manages users and may also record QC decisions.

Every change is written to the audit trail (AuditEvent, entity_type "user"); the hash itself never is.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import ROLES, AuditEvent, Center, User

MIN_PASSWORD_LENGTH = 8
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
    user = _user(session, username)
    user.password_hash = password_hash(password)
    session.add(AuditEvent(actor=actor, action="password_changed", entity_type="user", entity_id=username))


def deactivate_user(session: Session, username: str, actor: str = "cli") -> None:
    """Mark a user inactive (kept for the audit trail, never deleted); they can no longer log in."""
    user = _user(session, username)
    if not user.active:
        return
    user.active = False
    session.add(AuditEvent(actor=actor, action="user_deactivated", entity_type="user", entity_id=username,
                           before={"active": True}, after={"active": False}))


def users_table(session: Session) -> pd.DataFrame:
    """All users, without their hashes: username, role, center, active, created_at."""
    rows = session.execute(
        select(User.username, User.role, Center.code.label("center"), User.active, User.created_at)
        .outerjoin(Center, User.center_id == Center.id)
        .order_by(User.username)
    ).all()
    return pd.DataFrame(rows, columns=["username", "role", "center", "active", "created_at"])


def authenticated_identity(session: Session, username: str, password: str) -> Identity | None:
    """The Identity of an active user whose password matches, else None (same answer for unknown users)."""
    row = session.execute(
        select(User, Center.code)
        .outerjoin(Center, User.center_id == Center.id)
        .where(User.username == username.strip())
    ).first()
    if row is None:
        # Hash anyway so that response time does not reveal which user names exist.
        password_matches(_DUMMY_HASH, password)
        return None
    user, center_code = row
    if not password_matches(user.password_hash, password) or not user.active:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return Identity(username=user.username, role=user.role, center_code=center_code)


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"No user {username!r}.")
    return user


_DUMMY_HASH = _HASHER.hash("not-a-real-password")
