"""`ctstudy registry ...`: ingest DICOM and clinical data, QC, progress and export."""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from cluster.executor import SCHEDULER_HELP, open_executor
from registry.cli_support import login_name, open_registry
from registry.cli_tables import print_table
from registry.collection.progress import missing_item_rows, missing_summary_rows, progress_rows
from registry.db.engine import session_scope
from registry.db.rows import Rows
from registry.db.store import record_qc_decision, repeated_qc_decision
from registry.home import Home
from vocabulary.dictionary import label

if TYPE_CHECKING:  # ingest and CSV import pull pydicom: imported by the commands that use them
    from registry.clinical.csv_import import CSVValidationError
    from registry.ingest.report import RejectedItem

app = typer.Typer(help="The study registry: ingest, QC, collection progress, export.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"



ACTOR = typer.Option(None, "--actor", help="Who does this (recorded in the audit log); default the login name.")


def _explain(exc: Exception) -> None:
    from registry.clinical.csv_import import CSVValidationError

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
    workers: int = typer.Option(2, "--workers", min=1, help="Processes reading headers and writing archive copies."),
    show_paths: bool = typer.Option(False, "--show-paths",
                                    help="Name rejected files by their full path (folder names may identify "
                                         "patients: by default they are shown as CENTER/file-<token>)."),
    actor: str | None = ACTOR,
    scheduler: str = typer.Option("in-process", "--scheduler",
                                  help=SCHEDULER_HELP + " Workers read and hash the headers; DIR must be on storage "
                                  "they share, at the same path."),
) -> None:
    """Index (and by default archive, de-identified) every DICOM file under DIR, with automatic QC.

    Archived copies follow the DICOM PS3.15 Annex E basic profile (dates kept, UIDs replaced by keyed
    ones, PatientID by the pseudonym). With --in-place the originals stay where they are, identifiable
    as they are; the data home links to them pseudonymously and the registry keeps only the links.
    Zip archives in DIR are read member by member (not with --in-place).
    """
    from registry.ingest.directory import ingest_directory
    from registry.ingest.report import stored_rejection_path

    with _engine(ctx) as (home, engine), open_executor(scheduler) as executor:
        if executor.distributed:
            err.print(f"Reading headers on {executor.describe()}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            tasks: dict[str, int] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    label = "Reading headers" if phase == "files" else "Storing series"
                    tasks[phase] = bar.add_task(label, total=total)
                bar.update(tasks[phase], completed=done, total=total)  # zip members add to the files

            report = ingest_directory(engine, home, directory, center=center, in_place=in_place,
                                      actor=actor or login_name(), progress=progress, workers=workers,
                                      executor=executor)
        rows = [("files seen", report.files_seen), ("new instances", report.new_instances),
                ("already present", report.already_present), ("conflicts", len(report.conflicts)),
                ("new series", report.series_new), ("extended series", report.series_updated),
                ("new patients", report.patients_new)]
        rows += [(f"series {label(status, 'qc_status').lower()}", n) for status, n in sorted(report.qc.items())]
        rows += [(f"rejected: {label(reason)}", n) for reason, n in report.rejected_by_reason.items()]
        if report.normalized:
            rows.append(("values normalized to their DICOM VR", len(report.normalized)))
        print_table(console, Rows(("What", "Count"), rows),
                    f"Ingest run {report.run_id}: {directory}", labels=False)
        if report.interrupted_runs:
            console.print(f"Earlier ingest run(s) {', '.join(map(str, report.interrupted_runs))} had stopped without "
                          "finishing (killed?): marked interrupted; ingesting their folders again completes them.")
        if report.debris_removed:
            console.print(f"{report.debris_removed} half-written archive file(s) left by a killed run removed.")
        if report.nothing_new:
            console.print("Nothing new: every readable file was already in the registry.")
        root = directory.resolve()
        key = home.secret()

        def shown(path: str) -> str:
            return path if show_paths else stored_rejection_path(key, root, path, report.centers_naming_patients,
                                                                 center)

        groups = group_by_folder([*report.conflicts, *report.rejected, *report.normalized])
        for (reason, _folder), items in list(groups.items())[:50]:
            where = shown(items[0].path) if len(items) == 1 else \
                f"{shown(items[0].path)} and {len(items) - 1} more file(s) of its folder"
            console.print(f"[yellow]{escape(label(reason))}[/yellow] ({reason}) {escape(where)}: "
                          f"{escape(items[0].detail)}", soft_wrap=True, highlight=False)
        if groups and not show_paths:
            console.print("(Files are named CENTER/file-<token>, as the registry keeps them; --show-paths names "
                          "them by path.)")
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
    reference: str = typer.Argument(..., metavar="SERIES",
                                    help="SeriesInstanceUID, or the short reference shown in lists (…16578426: "
                                         "the UID's last characters)."),
    passed: bool | None = typer.Option(None, "--pass/--fail", help="The verdict."),
    reason: str | None = typer.Option(None, "--reason", help="Why (required with --fail)."),
    actor: str | None = ACTOR,
) -> None:
    """Record a coordinator's QC decision on one series (`registry qc-queue` lists those awaiting one)."""
    from registry.qc.review_queue import SeriesReferenceError, resolve_series_uid

    if passed is None:
        err.print("[red]error:[/red] give --pass or --fail")
        raise typer.Exit(2)
    with _engine(ctx) as (_home, engine), session_scope(engine) as session:
        try:
            series_uid = resolve_series_uid(session, reference)
        except SeriesReferenceError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from exc
        status = "passed" if passed else "failed"
        repeated = repeated_qc_decision(session, series_uid, status, reason)
        if repeated is not None:
            console.print(f"Series {series_uid}: already {status} by {repeated.actor} on "
                          f"{repeated.decided_at:%Y-%m-%d %H:%M}; nothing recorded.")
            return
        decision = record_qc_decision(session, series_uid, status, reason, actor or login_name())
        console.print(f"Series {series_uid}: QC {decision.status} by {decision.actor}.")


@app.command("flag-burned-in")
def flag_burned_in(ctx: typer.Context, actor: str | None = ACTOR) -> None:
    """Read the stored files of every series again for BurnedInAnnotation=YES and flag the undecided ones.

    For series stored before ingest checked the attribute: each one found turns auto_failed
    (burned_in_annotation) until a coordinator passes it; a series already passed or failed keeps its
    decision and is listed for a second look.
    """
    from registry.qc.burned_in_recheck import flag_burned_in_series

    with _engine(ctx) as (_home, engine):
        report = flag_burned_in_series(engine, actor or login_name())
    console.print(f"{report.checked:,} series checked: {len(report.flagged):,} flagged burned_in_annotation "
                  f"(auto_failed until a coordinator passes them).")
    for uid in report.decided:
        console.print(f"[yellow]check[/yellow] {uid}: burned-in annotation, already decided by a coordinator "
                      "(decision kept)")
    for uid in report.unreadable:
        err.print(f"[red]unreadable[/red] {uid}: a stored file cannot be read; nothing changed for this series "
                  "(`ctstudy registry ingest` its original files again)")
    if report.unreadable:
        raise typer.Exit(1)


@app.command("qc-queue")
def qc_queue(
    ctx: typer.Context,
    center: str | None = typer.Option(None, "--center", help="Only this center."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format"),
) -> None:
    """The series awaiting a QC decision (waiting for review, or failed the automatic checks), oldest first.

    Decide one with `ctstudy registry qc REFERENCE --pass` (or `--fail --reason TEXT`).
    """
    from registry.qc.review_queue import qc_queue_rows

    with _engine(ctx) as (_home, engine), session_scope(engine) as session:
        queue = qc_queue_rows(session, center)
    if fmt is not OutputFormat.table:  # csv/json keep the codes and the full UIDs
        _emit(queue, fmt, "")
        return
    if not len(queue):
        console.print("No series awaits a QC decision" + (f" in center {center}." if center else "."))
        return
    columns = [c for c in queue.columns if c != "series_uid"]
    status_at, reasons_at = columns.index("qc_status"), columns.index("qc_reasons")
    shown = []
    for row in queue.select(columns).rows:
        row = list(row)
        row[status_at] = label(row[status_at], "qc_status")
        row[reasons_at] = "; ".join(label(code.strip(), "qc_reason") for code in row[reasons_at].split(",")
                                    if code.strip())
        shown.append(tuple(row))
    print_table(console, Rows(tuple(columns), shown),
                f"{len(shown):,} series awaiting a QC decision" + (f" ({center})" if center else "")
                + ": ctstudy registry qc REFERENCE --pass | --fail --reason TEXT")


def _import(ctx: typer.Context, path: Path, kind: str, skip_invalid: bool, actor: str | None,
            create: bool, blank_clears: bool) -> None:
    from registry.clinical.csv_import import import_table

    with _engine(ctx) as (home, engine):
        report = import_table(engine, home, path, kind, actor=actor or login_name(), skip_invalid=skip_invalid,
                              create=create, blank_clears=blank_clears)
        console.print(f"{path} ({report.read_as}): {report.rows} rows; {report.created} created, "
                      f"{report.updated} updated, {report.unchanged} unchanged, {report.patients_new} new patients, "
                      f"{report.centers_new} new centers (import run {report.run_id}).")
        if report.blanks_kept:
            console.print(f"{report.blanks_kept} empty cells kept the stored value (--blank-clears to erase them).")
        if report.rejects_path:
            console.print(f"[yellow]{report.invalid_rows} invalid rows skipped[/yellow], written with their errors "
                          f"to {report.rejects_path}")


SKIP_INVALID = typer.Option(False, "--skip-invalid",
                            help="Import the valid rows; write the invalid ones to <file>.rejects.csv.")
CREATE = typer.Option(False, "--create",
                      help="Add centers and patients the registry does not know (else they are errors: typos).")
BLANK_CLEARS = typer.Option(False, "--blank-clears",
                            help="An empty cell erases the stored value (default: empty cells keep it).")


@app.command("import-clinical")
def import_clinical(
    ctx: typer.Context, file: Path = typer.Argument(..., exists=True, dir_okay=False),
    skip_invalid: bool = SKIP_INVALID, create: bool = CREATE, blank_clears: bool = BLANK_CLEARS,
    actor: str | None = ACTOR,
) -> None:
    """Import clinical.csv or .xlsx (docs/data-formats.md); every error is reported at once."""
    _import(ctx, file, "clinical", skip_invalid, actor, create, blank_clears)


@app.command("import-outcomes")
def import_outcomes(
    ctx: typer.Context, file: Path = typer.Argument(..., exists=True, dir_okay=False),
    skip_invalid: bool = SKIP_INVALID, create: bool = CREATE, blank_clears: bool = BLANK_CLEARS,
    actor: str | None = ACTOR,
) -> None:
    """Import outcomes.csv or .xlsx (docs/data-formats.md); every error is reported at once."""
    _import(ctx, file, "outcomes", skip_invalid, actor, create, blank_clears)


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
        table = progress_rows(session, as_of_value)
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
        items = missing_item_rows(session, center)
    title = "Missing items" + (f" ({center})" if center else "")
    if not detail:
        _emit(missing_summary_rows(items), fmt, title)
    elif fmt is OutputFormat.table:  # words and short references on screen; csv/json keep codes and full UIDs
        _emit(items.select([c for c in items.columns if c not in ("item", "detail")]), fmt, title)
    else:
        _emit(items, fmt, title)


@app.command()
def export(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Output file: .csv or .parquet"),
) -> None:
    """Write the analysis-ready patient table (pseudonyms, clinical, outcome, series counts, scan days).

    Beside it, FILE's name with `.dictionary.csv`: every column's label, unit, definition and coding.
    """
    from registry.clinical.patient_table import patient_table, write_patient_table
    from vocabulary.dictionary import columns_dictionary

    with _engine(ctx) as (_home, engine):
        with session_scope(engine) as session:
            table = patient_table(session)
        write_patient_table(table, str(file))
        codebook = file.with_name(file.name.rsplit(".", 1)[0] + ".dictionary.csv")
        columns_dictionary(table.columns).to_csv(codebook, index=False)
    console.print(f"{len(table):,} patients written to {file}; column labels, units and definitions in {codebook}")


def _emit(table: Rows, fmt: OutputFormat, title: str) -> None:
    """CSV and JSON keep the machine names; the table reads in words (the data dictionary) and is never cut."""
    if fmt is OutputFormat.csv:
        from registry.csv_export import write_csv

        write_csv(table.to_frame(), sys.stdout)  # formula-looking cells neutralized (registry.csv_export)
    elif fmt is OutputFormat.json:
        sys.stdout.write(table.to_frame().to_json(orient="records", date_format="iso") + "\n")
    else:
        print_table(console, table, title)


def _print_errors(exc: CSVValidationError) -> None:
    errors = exc.errors[["row", "column", "value", "rule"]].rename(columns=str.capitalize)
    print_table(err, errors, f"{exc.path}: {len(exc.errors):,} error(s), nothing imported", labels=False)


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
                                        label_scheme, key=home.secret())
        console.print(f"{directory}: {len(report.imported)} imported, {len(report.unchanged)} unchanged, "
                      f"{len(report.rejected)} rejected.")
        for path, reason, detail in report.rejected:
            err.print(f"[red]rejected[/red] {path}: {reason}: {detail}")
        for path, warning in report.warnings:
            err.print(f"[yellow]check[/yellow] {path}: {warning}")
        for uid, share in report.partial.items():
            console.print(f"partial {uid}: {share:.0%} of the scan annotated (the rest 255, not annotated)")
        if report.rejected:
            raise typer.Exit(1)


def _add_network_commands() -> None:
    from registry.dicom.cli import register

    register(app)


_add_network_commands()
