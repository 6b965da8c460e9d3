"""`ctstudy registry ...`: ingest DICOM and clinical data, QC, progress and export."""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from registry.cli_support import login_name, open_registry
from registry.clinical_import import CSVValidationError, import_table
from registry.db import session_scope
from registry.home import Home
from registry.ingest import RejectedItem, ingest_directory
from registry.progress import collection_progress, missing_items, missing_summary, patient_table, write_patient_table
from registry.store import record_qc_decision

app = typer.Typer(help="The study registry: ingest, QC, collection progress, export.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"



ACTOR = typer.Option(None, "--actor", help="Who does this (recorded in the audit log); default the login name.")


def _explain(exc: Exception) -> None:
    if isinstance(exc, CSVValidationError):
        _print_errors(exc)


def _engine(ctx: typer.Context) -> AbstractContextManager[tuple[Home, Engine]]:
    """`open_registry` that also lists every invalid CSV row before the one-line error."""
    return open_registry(ctx, explain=_explain)


@app.command()
def ingest(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Folder of DICOM files: DIR/<CENTER>/... unless --center."),
    center: str | None = typer.Option(None, "--center", help="Center code of every file (else the first folder)."),
    in_place: bool = typer.Option(False, "--in-place", help="Index the files where they are; do not copy."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes reading headers (large folders only)."),
    actor: str | None = ACTOR,
) -> None:
    """Index (and by default archive) every DICOM file under DIR, with automatic QC."""
    with _engine(ctx) as (home, engine):
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            tasks: dict[str, int] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    label = "Reading headers" if phase == "files" else "Storing series"
                    tasks[phase] = bar.add_task(label, total=total)
                bar.update(tasks[phase], completed=done)

            report = ingest_directory(engine, home, directory, center=center, in_place=in_place,
                                      actor=actor or login_name(), progress=progress, workers=workers)
        summary = Table(title=f"Ingest run {report.run_id}: {directory}")
        summary.add_column("what")
        summary.add_column("count", justify="right")
        for label, value in [("files seen", report.files_seen), ("new instances", report.new_instances),
                             ("already present", report.already_present), ("conflicts", len(report.conflicts)),
                             ("new series", report.series_new), ("extended series", report.series_updated),
                             ("new patients", report.patients_new)]:
            summary.add_row(label, str(value))
        for status, n in sorted(report.qc.items()):
            summary.add_row(f"series QC {status}", str(n))
        for reason, n in report.rejected_by_reason.items():
            summary.add_row(f"rejected: {reason}", str(n))
        console.print(summary)
        if report.nothing_new:
            console.print("Nothing new: every readable file was already in the registry.")
        groups = group_by_folder([*report.conflicts, *report.rejected])
        for (reason, folder), items in list(groups.items())[:50]:
            where = f"{items[0].path}" if len(items) == 1 else f"{folder}/ ({len(items)} files, first shown)"
            console.print(f"[yellow]{reason}[/yellow] {where}: {items[0].detail}", soft_wrap=True)
        if len(groups) > 50:
            console.print(f"... and {len(groups) - 50} more folders (table `rejection`, ingest run {report.run_id}).")


def group_by_folder(items: list[RejectedItem]) -> dict[tuple[str, str], list[RejectedItem]]:
    """Rejections grouped by (reason, folder), so a rejected 30-file MR series reads as one line, not thirty."""
    groups: dict[tuple[str, str], list] = {}
    for item in items:
        groups.setdefault((item.reason, str(Path(item.path).parent)), []).append(item)
    return groups


@app.command()
def qc(
    ctx: typer.Context,
    series_uid: str = typer.Argument(..., help="SeriesInstanceUID"),
    passed: bool | None = typer.Option(None, "--pass/--fail", help="The verdict."),
    reason: str | None = typer.Option(None, "--reason", help="Why (required with --fail)."),
    actor: str | None = ACTOR,
) -> None:
    """Record a coordinator's QC decision on one series."""
    if passed is None:
        err.print("[red]error:[/red] give --pass or --fail")
        raise typer.Exit(2)
    with _engine(ctx) as (_home, engine), session_scope(engine) as session:
        decision = record_qc_decision(session, series_uid, "passed" if passed else "failed", reason,
                                      actor or login_name())
        console.print(f"Series {series_uid}: QC {decision.status} by {decision.actor}.")


def _import(ctx: typer.Context, path: Path, kind: str, skip_invalid: bool, actor: str | None) -> None:
    with _engine(ctx) as (home, engine):
        report = import_table(engine, home, path, kind, actor=actor or login_name(), skip_invalid=skip_invalid)
        console.print(f"{path}: {report.rows} rows; {report.created} created, {report.updated} updated, "
                      f"{report.unchanged} unchanged, {report.patients_new} new patients (import run {report.run_id}).")
        if report.rejects_path:
            console.print(f"[yellow]{report.invalid_rows} invalid rows skipped[/yellow], written with their errors "
                          f"to {report.rejects_path}")


SKIP_INVALID = typer.Option(False, "--skip-invalid",
                            help="Import the valid rows; write the invalid ones to <file>.rejects.csv.")


@app.command("import-clinical")
def import_clinical(
    ctx: typer.Context, file: Path = typer.Argument(..., exists=True, dir_okay=False),
    skip_invalid: bool = SKIP_INVALID, actor: str | None = ACTOR,
) -> None:
    """Import clinical.csv (docs/data-formats.md); every error is reported at once."""
    _import(ctx, file, "clinical", skip_invalid, actor)


@app.command("import-outcomes")
def import_outcomes(
    ctx: typer.Context, file: Path = typer.Argument(..., exists=True, dir_okay=False),
    skip_invalid: bool = SKIP_INVALID, actor: str | None = ACTOR,
) -> None:
    """Import outcomes.csv (docs/data-formats.md); every error is reported at once."""
    _import(ctx, file, "outcomes", skip_invalid, actor)


@app.command()
def progress(
    ctx: typer.Context,
    as_of: dt.datetime | None = typer.Option(None, "--as-of", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
                                             help="Count only what had arrived by this date (inclusive)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
) -> None:
    """Per-center collection progress: patients, series by QC status, clinical data, outcomes, follow-ups."""
    as_of_value: dt.date | dt.datetime | None = as_of
    if as_of is not None and as_of.time() == dt.time():
        as_of_value = as_of.date()
    with _engine(ctx) as (_home, engine), session_scope(engine) as session:
        table = collection_progress(session, as_of_value)
    title = "Collection progress" + (f" as of {as_of_value}" if as_of_value else "")
    _emit(table, fmt, title)


@app.command()
def missing(
    ctx: typer.Context,
    center: str | None = typer.Option(None, "--center", help="Only this center."),
    detail: bool = typer.Option(False, "--detail", help="List every owed item, not only counts."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
) -> None:
    """What each center still owes: CT, clinical data, outcome, a QC-passed admission scan, pending reviews."""
    with _engine(ctx) as (_home, engine), session_scope(engine) as session:
        items = missing_items(session, center)
    _emit(items if detail else missing_summary(items), fmt, "Missing items" + (f" ({center})" if center else ""))


@app.command()
def export(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Output file: .csv or .parquet"),
) -> None:
    """Write the analysis-ready patient table (pseudonyms, clinical, outcome, series counts, scan days)."""
    with _engine(ctx) as (_home, engine):
        with session_scope(engine) as session:
            table = patient_table(session)
        write_patient_table(table, str(file))
    console.print(f"{len(table)} patients written to {file}")


def _emit(table: pd.DataFrame, fmt: OutputFormat, title: str) -> None:
    if fmt is OutputFormat.csv:
        table.to_csv(sys.stdout, index=False)
    elif fmt is OutputFormat.json:
        sys.stdout.write(table.to_json(orient="records", date_format="iso") + "\n")
    else:
        out = Table(title=title, box=None, pad_edge=False, padding=(0, 1, 0, 0))
        for column in table.columns:
            # One word per line in headers, so that the 11 progress columns fit an 80-column terminal.
            numeric = pd.api.types.is_numeric_dtype(table[column])
            words = str(column).split("_")
            out.add_column("\n".join(words), justify="right" if numeric else "left",
                           min_width=max(len(w) for w in words))
        for row in table.itertuples(index=False):
            out.add_row(*("" if pd.isna(v) else str(v) for v in row))
        console.print(out)


def _print_errors(exc: CSVValidationError) -> None:
    out = Table(title=f"{exc.path}: {len(exc.errors)} error(s), nothing imported")
    for column in ("row", "column", "value", "rule"):
        out.add_column(column)
    for e in exc.errors.itertuples(index=False):
        out.add_row(str(e.row), str(e.column), str(e.value), str(e.rule))
    err.print(out)


@app.command("import-annotations")
def import_annotations_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder of <SeriesInstanceUID>.nii.gz"),
    annotator: str | None = typer.Option(None, "--annotator", help="Who drew the masks (recorded with them)."),
    label_scheme: str = typer.Option(
        "four-class", "--label-scheme",
        help="Label map of masks without ctstudy's header marker: four-class (0 background, 1 IPH, 2 extra-axial, "
             "3 edema, 4 IVH) or two-class (1 hematoma, 2 edema: converted to 1 IPH, 3 edema)."),
    actor: str | None = ACTOR,
) -> None:
    """Import manual lesion NIfTI masks (four-class label map); each grid is checked against its series."""
    from registry.annotations import import_annotations

    with _engine(ctx) as (home, engine):
        with session_scope(engine) as session:
            report = import_annotations(session, directory, home.masks_dir, actor or login_name(), annotator,
                                        label_scheme)
        console.print(f"{directory}: {len(report.imported)} imported, {len(report.unchanged)} unchanged, "
                      f"{len(report.rejected)} rejected.")
        for path, reason, detail in report.rejected:
            err.print(f"[red]rejected[/red] {path}: {reason}: {detail}")
        for path, warning in report.warnings:
            err.print(f"[yellow]check[/yellow] {path}: {warning}")
        if report.rejected:
            raise typer.Exit(1)
