"""`ctstudy synth`: write a synthetic multi-center study (DICOM, clinical and outcome CSVs, truth)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from synthetic.study import generate_study

console = Console()


def synth(
    out: Path = typer.Option(..., "--out", help="New (or empty) folder to write the study into."),
    centers: int = typer.Option(5, "--centers", min=1, help="Number of centers (largest CREACTIVE-like first)."),
    patients: int = typer.Option(60, "--patients", min=1, help="Number of patients over all centers."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    matrix: int = typer.Option(256, "--matrix", help="In-plane matrix: 256 or 512 (128 for quick tests)."),
    defects: bool = typer.Option(False, "--defects", help="Add what QC must catch; listed in truth/defects.csv."),
    tabular_only: bool = typer.Option(False, "--tabular-only",
                                      help="No images: clinical, outcomes and true features only (fast)."),
    tabular_patients: int = typer.Option(0, "--tabular-patients", min=0,
                                         help="As many more patients without images (clinical data and outcomes "
                                              "only, IDs <CENTER>-T...): clinical_tabular.csv, outcomes_tabular.csv."),
) -> None:
    """Write a synthetic multi-center TBI head-CT study with known truth."""
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("rendering series", total=None)

            def report(done: int, total: int, what: str) -> None:
                bar.update(task, completed=done, total=total, description=f"rendering {what}")

            summary = generate_study(out, centers=centers, patients=patients, seed=seed, matrix=matrix,
                                     defects=defects, tabular_only=tabular_only, progress=report,
                                     tabular_patients=tabular_patients)
    except (FileExistsError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    rates = summary.tabular.outcomes
    console.print(f"Wrote [bold]{summary.out}[/bold] in {summary.seconds:.1f} s: {summary.files} files, "
                  f"{summary.bytes / 1e6:.1f} MB")
    console.print(f"  {summary.patients} patients in {summary.centers} centers, {summary.series} CT series"
                  + (" (tabular only: no images)" if tabular_only else ""))
    console.print(f"  died {int(rates['died'].sum())} ({rates['died'].mean():.0%}), "
                  f"GOS 1-3 {int((rates['gos_6m'] <= 3).sum())} of {int(rates['gos_6m'].notna().sum())} known")
    if summary.unscanned is not None:
        more = summary.unscanned.outcomes
        console.print(f"  {len(more)} more patients without images (clinical_tabular.csv, outcomes_tabular.csv): "
                      f"died {int(more['died'].sum())} ({more['died'].mean():.0%}), "
                      f"GOS 1-3 {int((more['gos_6m'] <= 3).sum())} of {int(more['gos_6m'].notna().sum())} known")
    if defects:
        console.print(f"  {summary.defects} defects listed in {summary.truth_dir / 'defects.csv'}")
    console.print(f"  truth in {summary.truth_dir} (series.csv, masks/, patient_features.csv, outcome_model.json)")
