"""`ctstudy biomarkers ...`: extract imaging biomarkers and export the feature tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from biomarkers import store
from biomarkers.extract import extract_features
from biomarkers.series import DEFINITIONS_VERSION
from cluster.executor import SCHEDULER_HELP, open_executor
from registry.cli_support import login_name, open_registry
from registry.csv_export import write_csv
from registry.db.engine import session_scope

app = typer.Typer(help="Imaging biomarkers: extract and export.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)





@app.command()
def extract(
    ctx: typer.Context,
    directory: Path | None = typer.Argument(None, help="With --source truth-dir: the study folder (or --truth-dir)."),
    source: str = typer.Option("auto", "--source",
                               help="auto (segmentations, else manual annotations), manual, or truth-dir."),
    truth_dir: Path | None = typer.Option(None, "--truth-dir", help="Study folder whose truth/masks/ to use."),
    force: bool = typer.Option(False, "--force", help="Recompute even features that are current."),
    scheduler: str = typer.Option("in-process", "--scheduler", help=SCHEDULER_HELP),
) -> None:
    """Compute per-series biomarkers from masks and store them with provenance; skips what is current."""
    folder = truth_dir or directory
    if source == "truth-dir" or (source == "auto" and truth_dir is not None):
        if folder is None:
            err.print("[red]error:[/red] --source truth-dir needs the study folder: ... extract --source truth-dir DIR")
            raise typer.Exit(2)
        kind = store.SOURCE_TRUTH
    elif directory is not None:
        err.print("[red]error:[/red] a folder argument is only for --source truth-dir")
        raise typer.Exit(2)
    else:
        kind = source
    with open_registry(ctx) as (_home, engine), open_executor(scheduler) as executor:
        with session_scope(engine) as session:
            jobs = store.mask_jobs(session, kind, folder)
        if not jobs:
            console.print("No masks to extract from (no segmentation runs, annotations or truth masks of registered "
                          "series).")
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
        if executor.distributed:
            console.print(f"{len(jobs)} mask(s) on {executor.describe()}")
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("Extracting biomarkers", total=len(jobs))
            report = extract_features(engine, jobs, actor=login_name(), force=force,
                                      progress=lambda done, total, uid: bar.update(task, completed=done),
                                      executor=executor)
        console.print(f"Biomarkers (definitions {DEFINITIONS_VERSION}) from {len(jobs)} mask(s): "
                      f"{len(report.computed)} computed, {len(report.skipped)} already current, "
                      f"{len(report.failed)} failed, in {report.seconds:.1f} s.")
        for uid, reason in report.failed:
            err.print(f"[red]failed[/red] {uid}: {reason}", soft_wrap=True)
        if report.failed:
            raise typer.Exit(1)


@app.command()
def export(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Output .csv or .parquet."),
    per_patient: bool = typer.Option(False, "--per-patient", help="One row per patient (admission, peak, last)."),
    source: str = typer.Option("auto", "--source",
                               help="auto (per series: segmentation, else manual, else truth), or one of them."),
) -> None:
    """Write the wide feature table: one row per series, or per patient with --per-patient.

    Numbers are rounded to 6 significant digits; column mask_model (per series) or mask_models (per patient)
    names the model that made each mask, and the command says when the table mixes models. Beside the file,
    FILE's name with `.dictionary.csv`: every column's label, unit and definition.
    """
    from biomarkers.export_table import patient_mask_models, rounded_table
    from biomarkers.provenance import mask_models_of_series, mixed_models_notice, with_mask_model
    from vocabulary.dictionary import columns_dictionary

    suffix = "".join(file.suffixes[-1:]).lower()
    if suffix not in (".csv", ".parquet"):
        err.print(f"[red]error:[/red] {file}: the file name must end in .csv or .parquet")
        raise typer.Exit(2)
    with open_registry(ctx) as (_home, engine):
        with session_scope(engine) as session:
            series = store.series_feature_table(session, source)
            if not series.empty:
                series = with_mask_model(series, mask_models_of_series(session, series["segmentation_run_id"]))
            table = store.patient_feature_table(session, source) if per_patient else series
        if table.empty:
            err.print("[red]error:[/red] no stored features: run `ctstudy biomarkers extract` first")
            raise typer.Exit(1)
        if per_patient:
            table = table.merge(patient_mask_models(series), on=["center", "patient_id"], how="left")
        table = rounded_table(table)
        file.parent.mkdir(parents=True, exist_ok=True)
        _write(table, file, suffix)
        codebook = file.with_name(file.name.rsplit(".", 1)[0] + ".dictionary.csv")
        write_csv(columns_dictionary(table.columns), codebook)
        what = "patients" if per_patient else "series"
        console.print(f"Wrote {len(table)} {what} x {table.shape[1]} columns to {file}; column labels, units and "
                      f"definitions in {codebook}")
        notice = mixed_models_notice(series)
        if notice:
            err.print(f"[yellow]mixed models:[/yellow] {notice}", soft_wrap=True, highlight=False)


def _write(table: pd.DataFrame, file: Path, suffix: str) -> None:
    # Write beside and rename: an interrupted export must not leave a truncated table under the real name.
    tmp = file.with_name(file.name + ".part")
    if suffix == ".csv":
        write_csv(table, tmp)  # formula-looking cells neutralized (registry.csv_export)
    else:
        table.to_parquet(tmp, index=False)
    tmp.replace(file)
