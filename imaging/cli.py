"""`ctstudy imaging ...`: train, segment, export DICOM SEG, evaluate."""

from __future__ import annotations

import typer

app = typer.Typer(help="Hematoma/edema segmentation: train, segment, export, evaluate.", no_args_is_help=True)
