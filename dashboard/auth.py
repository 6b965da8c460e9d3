"""Log-in for the dashboard: the logged-in `Identity` lives in Streamlit's session state.

Passwords are checked against the argon2 hashes in the registry (`registry.users`); nothing
but the Identity (user name, role, center) is kept in the session.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy.orm import Session

from dashboard.queries import current_home, engine_for
from registry.users import Identity, authenticated_identity

SESSION_KEY = "identity"
ROLE_HELP = {
    "coordinator": "your center only; you can record QC decisions",
    "statistician": "all centers, pseudonymized; read-only",
    "investigator": "all centers, pseudonymized; read-only",
    "admin": "all centers; manages users and may record QC decisions",
}


def identity() -> Identity | None:
    """Who is logged in in this browser session, or None."""
    return st.session_state.get(SESSION_KEY)


def require_identity() -> Identity:
    """The logged-in Identity; otherwise the log-in form is shown and the page stops here."""
    ident = identity()
    if ident is None:
        login_form()
        st.stop()
    return ident


def login_form() -> None:
    st.title("ctstudy dashboard")
    st.caption("Multi-center TBI head-CT study. Log in with the account your study administrator created "
               "(`ctstudy users add NAME --role ROLE`).")
    with st.form("login"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        db_url = current_home().db_url
        with Session(engine_for(db_url)) as session, session.begin():
            ident = authenticated_identity(session, username, password)
        if ident is None:
            st.error("Unknown user, wrong password or deactivated account.")
        else:
            st.session_state[SESSION_KEY] = ident
            st.rerun()


def sidebar(ident: Identity) -> None:
    """Who is logged in, what they may see, and the log-out button."""
    with st.sidebar:
        scope = f"center {ident.center_code}" if ident.center_scope else "all centers"
        st.markdown(f"**{ident.username}** · {ident.role} · {scope}")
        st.caption(ROLE_HELP.get(ident.role, ""))
        if st.button("Log out"):
            del st.session_state[SESSION_KEY]
            st.rerun()
