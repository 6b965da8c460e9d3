"""`ctstudy users ...`: dashboard users and their roles."""

from __future__ import annotations

import typer

app = typer.Typer(help="Dashboard users: add, list, deactivate.", no_args_is_help=True)
