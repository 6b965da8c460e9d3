"""Log-in for the dashboard: the logged-in `Identity` lives in Streamlit's session state.

Passwords are checked against the argon2 hashes in the registry (`registry.access.users.log_in`, which
applies the per-user lockout and per-address limit, and records and audits every attempt). Every
script run, i.e. every request that reads or writes, re-checks the account
(`registry.access.users.session_identity`): a deactivated, locked or changed account, or an idle or
too-old session, is logged out before the page runs. Nothing but the Identity (user name, role,
center) and the session's log-in and last-request times are kept in the session.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy.orm import Session

from dashboard.queries import current_home, engine_for
from registry.access.users import Identity, log_in, session_identity
from registry.db.models import utcnow

SESSION_KEY = "identity"
LOGGED_IN_AT_KEY = "logged_in_at"
LAST_SEEN_KEY = "last_seen"
ENDED_KEY = "session_ended"
ROLE_HELP = {
    "coordinator": "your center only; you can record QC decisions",
    "statistician": "all centers, pseudonymized; read-only",
    "investigator": "all centers, pseudonymized; read-only",
    "admin": "all centers; manages users and may record QC decisions",
}


def identity() -> Identity | None:
    """Who is logged in in this browser session, re-checked against the registry now; or None."""
    ident = st.session_state.get(SESSION_KEY)
    if ident is None:
        return None
    now = utcnow()
    logged_in_at = st.session_state.get(LOGGED_IN_AT_KEY) or now
    last_seen = st.session_state.get(LAST_SEEN_KEY) or now
    with Session(engine_for(current_home().db_url)) as session:
        checked = session_identity(session, ident, logged_in_at, last_seen, now)
    if checked.identity is None:
        _end_session(checked.message)
        return None
    st.session_state[SESSION_KEY] = checked.identity
    st.session_state[LOGGED_IN_AT_KEY] = logged_in_at
    st.session_state[LAST_SEEN_KEY] = now
    return checked.identity


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
    ended = st.session_state.pop(ENDED_KEY, None)
    if ended:
        st.warning(ended)
    with st.form("login"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        with Session(engine_for(current_home().db_url)) as session, session.begin():
            result = log_in(session, username, password, address=_client_address())
        if result.identity is None:
            st.error(result.message)
        else:
            st.session_state[SESSION_KEY] = result.identity
            st.session_state[LOGGED_IN_AT_KEY] = result.at
            st.session_state[LAST_SEEN_KEY] = result.at
            st.rerun()


def sidebar(ident: Identity) -> None:
    """Who is logged in, what they may see, and the log-out button."""
    with st.sidebar:
        scope = f"center {ident.center_code}" if ident.center_scope else "all centers"
        st.markdown(f"**{ident.username}** · {ident.role} · {scope}")
        st.caption(ROLE_HELP.get(ident.role, ""))
        if st.button("Log out"):
            _end_session(None)
            st.rerun()


def _end_session(message: str | None) -> None:
    for key in (SESSION_KEY, LOGGED_IN_AT_KEY, LAST_SEEN_KEY):
        st.session_state.pop(key, None)
    if message:
        st.session_state[ENDED_KEY] = message


def _client_address() -> str | None:
    # Streamlit gives the client's address (None behind some proxies or on localhost); the per-address
    # limit then applies to "local", i.e. to every client without one.
    try:
        address = st.context.ip_address
    except AttributeError:  # an older Streamlit without st.context.ip_address
        return None
    return address if isinstance(address, str) and address else None

