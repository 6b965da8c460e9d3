"""`ctstudy registry ...`: ingest DICOM and clinical data, QC, progress and export."""

from __future__ import annotations

import typer

app = typer.Typer(help="The study registry: ingest, QC, collection progress, export.", no_args_is_help=True)
