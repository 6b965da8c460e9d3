"""Running one dashboard page under Streamlit's AppTest as a given user."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from registry.access.users import Identity, add_user
from registry.db.engine import make_engine, session_scope
from registry.db.models import Center, User
from registry.home import Home

# Not `dashboard.__file__`: with tests/dashboard on sys.path, `dashboard` imports as a namespace package.
PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "pages"
STAT = Identity("stat", "statistician", None)
INV = Identity("inv", "investigator", None)
ADMIN = Identity("admin", "admin", None)
COORD1 = Identity("coord1", "coordinator", "IT01")
COORD2 = Identity("coord2", "coordinator", "IT02")


def page(name: str, ident: Identity | None) -> AppTest:
    """The page `pages/<name>` after its first run, with `ident` logged in (None: nobody)."""
    at = AppTest.from_file(str(PAGES / name), default_timeout=30)
    if ident is not None:
        _ensure_account(ident)
        at.session_state["identity"] = ident
    return at.run()


def _ensure_account(ident: Identity) -> None:
    """An active account for `ident` in the app's registry: every request re-checks it (dashboard.auth)."""
    engine = make_engine(Home.resolve(os.environ.get("CTSTUDY_HOME"), os.environ.get("CTSTUDY_DB_URL")).db_url)
    with session_scope(engine) as s:
        if s.scalar(select(User.id).where(User.username == ident.username)) is None:
            if ident.center_code and s.scalar(select(Center.id).where(Center.code == ident.center_code)) is None:
                s.add(Center(code=ident.center_code))
                s.flush()
            add_user(s, ident.username, ident.role, "test-password", center_code=ident.center_code)
    engine.dispose()
