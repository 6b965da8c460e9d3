"""`ctstudy users ...`: dashboard users and their roles."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import typer
from rich.console import Console
from sqlalchemy.orm import Session

from registry.cli_support import open_registry
from registry.cli_tables import print_table
from registry.db import session_scope
from registry.models import ROLES
from registry.users import add_user, deactivate_user, set_password, users_table

app = typer.Typer(help="Dashboard users: add, list, deactivate.", no_args_is_help=True)
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
        df = users_table(session)
    if not len(df):
        console.print("No users yet: `ctstudy users add NAME --role ROLE`.")
        return
    shown = pd.DataFrame({"User": df["username"], "Role": df["role"], "Center": df["center"].fillna("-"),
                          "Active": df["active"].map({True: "yes", False: "no"}),
                          "Created": pd.to_datetime(df["created_at"]).dt.strftime("%Y-%m-%d %H:%M")})
    print_table(console, shown, labels=False)


@app.command("deactivate")
def deactivate(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Stop a user from logging in (the user is kept for the audit trail)."""
    _run(ctx, lambda s: deactivate_user(s, name))
    console.print(f"User [bold]{name}[/bold] deactivated.")


def _run(ctx: typer.Context, action: Callable[[Session], object]) -> None:
    """Run `action` in a transaction; a UserError (a ValueError) exits 1 with its message."""
    with open_registry(ctx) as (_home, engine), session_scope(engine) as session:
        action(session)
