"""Running one dashboard page under Streamlit's AppTest as a given user."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from registry.users import Identity

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
        at.session_state["identity"] = ident
    return at.run()
