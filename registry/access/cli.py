"""`ctstudy users ...`: dashboard users and their roles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from registry.access.users import (
    add_user,
    deactivate_user,
    login_attempt_rows,
    reactivate_user,
    set_password,
    unlock_user,
    user_rows,
)
from registry.cli_support import open_registry
from registry.cli_tables import print_table
from registry.db.engine import session_scope
from registry.db.models import ROLES, utcnow
from registry.db.rows import Rows

app = typer.Typer(help="Dashboard users: add, list, deactivate, reactivate, unlock.", no_args_is_help=True)
console = Console()


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Log-in name."),
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
    center: str | None = typer.Option(None, "--center", help="Center code (required for a coordinator)."),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True,
                                 help="Asked for when not given (at least 8 characters)."),
) -> None:
    """Add a dashboard user with a role (and, for a coordinator, a center)."""
    _run(ctx, lambda s: add_user(s, name, role, password, center_code=center))
    console.print(f"User [bold]{name}[/bold] added as {role}" + (f" of center {center}." if center else "."))


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Set a user's password."""
    _run(ctx, lambda s: set_password(s, name, password))
    console.print(f"Password of [bold]{name}[/bold] changed.")


@app.command("list")
def list_users(ctx: typer.Context) -> None:
    """List users with role, center and whether they can log in."""
    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        users = user_rows(session)
    if not len(users):
        console.print("No users yet: `ctstudy users add NAME --role ROLE`.")
        return
    shown = Rows(("User", "Role", "Center", "Active", "Created", "Locked until (UTC)"),
                 [(u["username"], u["role"], u["center"] or "-", "yes" if u["active"] else "no",
                   _minute(u["created_at"]), _minute(u["locked_until"]) or "-") for u in users.records()])
    print_table(console, shown, labels=False)


@app.command("deactivate")
def deactivate(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Stop a user from logging in and end their open dashboard sessions (the user is kept for the audit trail)."""
    _run(ctx, lambda s: deactivate_user(s, name))
    console.print(f"User [bold]{name}[/bold] deactivated; open dashboard sessions end at their next request.")


@app.command("reactivate")
def reactivate(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Let a deactivated user log in again."""
    _run(ctx, lambda s: reactivate_user(s, name))
    console.print(f"User [bold]{name}[/bold] reactivated: they can log in again.")


@app.command("unlock")
def unlock(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Lift a lockout after repeated failed log-ins before it expires."""
    _run(ctx, lambda s: unlock_user(s, name))
    console.print(f"User [bold]{name}[/bold] unlocked.")


@app.command("logins")
def logins(
    ctx: typer.Context,
    hours: float = typer.Option(24.0, "--hours", min=0, help="How far back."),
    failed_only: bool = typer.Option(False, "--failed", help="Only failed attempts."),
) -> None:
    """Recent dashboard log-in attempts: when, user name as typed, address, result."""
    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        attempts = login_attempt_rows(session, since=utcnow() - dt.timedelta(hours=hours)).records()
    if failed_only:
        attempts = [a for a in attempts if not a["succeeded"]]
    if not attempts:
        console.print(f"No log-in attempts in the last {hours:g} hours.")
        return
    shown = Rows(("At (UTC)", "User", "Address", "Result"),
                 [(a["at"].strftime("%Y-%m-%d %H:%M:%S"), a["username"], a["address"],
                   "ok" if a["succeeded"] else f"failed: {a['reason']}") for a in attempts])
    print_table(console, shown, labels=False)


def _minute(at: dt.datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M")


def _run(ctx: typer.Context, action: Callable[[Session], object]) -> None:
    """Run `action` in a transaction; a UserError (a ValueError) exits 1 with its message."""
    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        action(session)
