"""`ctstudy biomarkers ...`: extract imaging biomarkers and export the feature tables."""

from __future__ import annotations

import typer

app = typer.Typer(help="Imaging biomarkers: extract and export.", no_args_is_help=True)
