"""`ctstudy prognosis ...`: fit outcome models and write reports."""

from __future__ import annotations

import typer

app = typer.Typer(help="Outcome models: fit, compare, report.", no_args_is_help=True)
