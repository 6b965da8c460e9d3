"""Users (administrators only): who may log in, with which role and center; add, deactivate (after a confirmation),
reactivate and unlock accounts, reset a password; every action is in the audit trail shown below."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from dashboard import auth, queries, words
from registry.access.users import MIN_PASSWORD_LENGTH, UserError
from registry.db.models import ROLES
from vocabulary.dictionary import display_columns, label

ident = auth.require_identity()
home = queries.current_home()

st.title("Users")
if ident.role != "admin":
    st.error("Only administrators manage users.")
    st.stop()

flash = st.session_state.pop("users_flash", None)
if flash:
    st.success(flash)
table = queries.users(home.db_url)
shown = table.assign(center=table["center"].fillna("all centers"),
                     active=table["active"].map({True: "yes", False: "no"}),
                     locked_until=table["locked_until"].map(lambda t: "" if pd.isna(t) else f"{t:%Y-%m-%d %H:%M}"))
st.dataframe(display_columns(shown, "user"), hide_index=True)

others = [u for u in table["username"] if u != ident.username]  # an admin never locks themselves out here
active = [u for u in table.loc[table["active"].astype(bool), "username"] if u != ident.username]
inactive = table.loc[~table["active"].astype(bool), "username"].tolist()
locked = table.loc[table["locked_until"].notna(), "username"].tolist()


def act(action: Callable[[], None], done: str) -> None:
    """Run an account action; its UserError is shown as is, success is flashed after a rerun."""
    try:
        action()
    except UserError as exc:
        st.error(str(exc))
    else:
        st.session_state["users_flash"] = done
        st.rerun()


left, right = st.columns(2)
with left, st.form("add_user", clear_on_submit=True):
    st.markdown("**Add a user**")
    username = st.text_input("User name", key="u_name")
    role = st.selectbox("Role", ROLES, key="u_role")
    center = st.selectbox("Center (coordinators)", ["", *queries.center_codes(home.db_url)], key="u_center")
    password = st.text_input(f"Initial password (at least {MIN_PASSWORD_LENGTH} characters)", type="password",
                             key="u_password")
    if st.form_submit_button("Add user"):
        act(lambda: queries.add_dashboard_user(home.db_url, username, role, password, center, ident.username),
            f"User {username} added as {role}.")
with right, st.form("deactivate_user"):
    st.markdown("**Deactivate a user**")
    who = st.selectbox("User", active, key="u_deactivate")
    sure = st.checkbox("Yes, stop this user from logging in (their open sessions end)", key="u_deactivate_sure")
    if st.form_submit_button("Deactivate", disabled=not active) and who:
        if not sure:
            st.error(f"Tick the confirmation to deactivate {who}.")
        else:
            act(lambda: queries.deactivate_dashboard_user(home.db_url, who, ident.username),
                f"User {who} deactivated: they can no longer log in.")

left, middle, right = st.columns(3)
with left, st.form("reactivate_user"):
    st.markdown("**Reactivate a user**")
    back = st.selectbox("User", inactive, key="u_reactivate", placeholder="no deactivated user")
    if st.form_submit_button("Reactivate", disabled=not inactive) and back:
        act(lambda: queries.reactivate_dashboard_user(home.db_url, back, ident.username),
            f"User {back} reactivated: they can log in again.")
with middle, st.form("unlock_user"):
    st.markdown("**Unlock a user**")
    st.caption("Locked after repeated wrong passwords; the lock otherwise lifts by itself.")
    freed = st.selectbox("User", locked, key="u_unlock", placeholder="no locked user")
    if st.form_submit_button("Unlock", disabled=not locked) and freed:
        act(lambda: queries.unlock_dashboard_user(home.db_url, freed, ident.username),
            f"User {freed} unlocked: they can log in now.")
with right, st.form("reset_password", clear_on_submit=True):
    st.markdown("**Reset a password**")
    whose = st.selectbox("User", others, key="u_reset")
    new = st.text_input(f"New password (at least {MIN_PASSWORD_LENGTH} characters)", type="password",
                        key="u_reset_password")
    again = st.text_input("The new password again", type="password", key="u_reset_again")
    if st.form_submit_button("Set password", disabled=not others) and whose:
        if new != again:
            st.error("The two passwords differ: type the same new password twice.")
        else:
            act(lambda: queries.reset_dashboard_password(home.db_url, whose, new, ident.username),
                f"Password of {whose} reset: their open sessions end; give them the new password.")

st.subheader("Changes to user accounts")
changes = queries.user_audit(home.db_url)
if changes.empty:
    st.caption("No change yet.")
else:
    changes = changes.assign(when=pd.to_datetime(changes["when"]),
                             action=changes["action"].map(lambda a: label(a, "audit")),
                             before=changes["before"].map(words.change_text),
                             after=changes["after"].map(words.change_text))
    st.dataframe(changes, hide_index=True,
                 column_config={"when": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm"),
                                "who": "Who", "action": "Action", "user": "User", "before": "Before",
                                "after": "After"})
