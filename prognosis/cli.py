"""`ctstudy prognosis ...`: fit outcome models and write reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from registry.cli_support import login_name, open_registry
from registry.db.engine import session_scope
from vocabulary.dictionary import entry, label

app = typer.Typer(help="Outcome models: fit, compare, report.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


class OutcomeName(StrEnum):
    mortality = "mortality"
    unfavourable = "unfavourable"
    gos = "gos"
    survival = "survival"


class FeatureSet(StrEnum):
    clinical = "clinical"
    imaging = "imaging"
    clinical_imaging = "clinical+imaging"


class CV(StrEnum):
    kfold = "kfold"
    center = "center"
    none = "none"


class Imputation(StrEnum):
    mice = "mice"
    complete_case = "complete-case"


class ModelKind(StrEnum):
    auto = "auto"
    logistic = "logistic"
    penalized = "penalized"
    boosting = "boosting"


@contextmanager
def explained(what: str) -> Iterator[None]:
    """Re-raise a failure inside as a ValueError that says what was being done and what to do, so
    that no command ends on a bare library message such as "Singular matrix"."""
    try:
        yield
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"{what}: the data cannot estimate this model ({exc}: a variable without variation "
                         "or variables that are exact combinations of others). Try fewer terms "
                         "(--features clinical), --model penalized, or add patients.") from exc
    except (ValueError, RuntimeError, LookupError) as exc:
        raise ValueError(f"{what}: {exc}") from exc


def _print_summary(summary: pd.DataFrame | None, metrics: dict, title: str) -> None:
    """The coefficient table (terms in words) and the fit's scalar metrics, one labelled line each."""
    from prognosis.labels import term_label

    if summary is not None:
        ratio = next((c for c in ("odds_ratio", "hazard_ratio") if c in summary), None)
        table = Table(title=title)
        for col in ("Term", "Coefficient", ratio and ratio.replace("_", " ").capitalize(), "95% CI", "p"):
            if col:
                table.add_column(col, justify="left" if col == "Term" else "right")
        for term, r in summary.iterrows():
            cells = [term_label(str(term)), f"{r['coef']:.3f}"]
            if ratio:
                cells += [f"{r[ratio]:.2f}", f"{r[f'{ratio}_lower']:.2f}-{r[f'{ratio}_upper']:.2f}"]
            cells.append(f"{r['p']:.3g}")
            table.add_row(*cells)
        console.print(table)
    if metrics.get("cutpoint_table"):
        cuts = Table(title="Cutpoints of P(GOS <= k) = expit(cutpoint + LP), pooled")
        for col in ("cutpoint", "estimate", "SE", "95% CI"):
            cuts.add_column(col, justify="left" if col == "cutpoint" else "right")
        for c in metrics["cutpoint_table"]:
            cuts.add_row(c["cutpoint"], f"{c['estimate']:.3f}", f"{c['se']:.3f}", f"{c['lower']:.2f}-{c['upper']:.2f}")
        console.print(cuts)
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    performance = Table(title="Performance", show_header=False)
    performance.add_column("What")
    performance.add_column("Value", justify="right")
    for key, value in shown.items():
        performance.add_row(label(key, "model_metric") if entry(key, "model_metric") else label(key),
                            f"{value:.3f}" if isinstance(value, float) else f"{value:,}")
    console.print(performance)


@app.command()
def fit(
    ctx: typer.Context,
    outcome: OutcomeName = typer.Option(..., "--outcome", help="mortality | unfavourable | gos | survival"),
    features: FeatureSet = typer.Option(FeatureSet.clinical_imaging, "--features",
                                        help="clinical | imaging | clinical+imaging"),
    cv: CV = typer.Option(CV.kfold, "--cv", help="kfold (repeated stratified) | center (leave one out) | none"),
    imputation: Imputation = typer.Option(Imputation.mice, "--imputation", help="mice | complete-case"),
    m: int = typer.Option(5, "--m", min=1, help="Number of imputations (MICE)."),
    model: ModelKind = typer.Option(ModelKind.auto, "--model",
                                    help="Binary outcomes: logistic (default), penalized (L2) or boosting."),
    age_spline: int | None = typer.Option(None, "--age-spline", help="Restricted cubic spline of age with 3-5 knots."),
    penalty: str = typer.Option("auto", "--penalty",
                                help="Logistic models: auto (ridge with a cross-validated penalty when the sample "
                                     "falls short of Riley's criteria or 10 events per parameter) | none | ridge."),
    n_boot: int = typer.Option(200, "--n-boot", min=10, help="Bootstrap repetitions."),
    seed: int = typer.Option(0, "--seed"),
    feature_source: str = typer.Option("auto", "--feature-source", help="Imaging features: auto | truth | "
                                       "manual | segmentation (biomarkers' source)."),
    refit: bool = typer.Option(False, "--refit", help="Fit again even if the same fit of this data is stored."),
) -> None:
    """Fit an outcome model on the registry's analysis table, record it as a ModelFit and print its summary.

    A fit of the same data snapshot with the same settings is not repeated: the stored one is
    reported unchanged (use --refit to fit and record it again)."""
    from prognosis.analysis_table import analysis_table_hash
    from prognosis.fitting import PENALTIES, fit_outcome_model, fit_settings
    from prognosis.store import analysis_table_from_registry, find_same_fit, record_model_fit

    if penalty not in PENALTIES:
        console.print(f"[red]error:[/red] --penalty must be one of {', '.join(PENALTIES)}, got {penalty!r}")
        raise typer.Exit(2)
    kind = None if model == ModelKind.auto else model.value
    cv_name = None if cv == CV.none else cv.value
    with open_registry(ctx) as (_, engine):
        with session_scope(engine) as session:
            table = analysis_table_from_registry(session, feature_source)
            data_hash = analysis_table_hash(table)
            settings = fit_settings(outcome.value, features.value, kind, cv_name, imputation.value, m, 5, 2, n_boot,
                                    seed, age_spline, penalty)
            same = None if refit else find_same_fit(session, data_hash, settings)
            if same is not None:
                console.print(f"unchanged: ModelFit #{same.id} already fits {outcome.value} on {features.value} with "
                              f"these settings on this data snapshot ({data_hash[:12]}); --refit to fit it again.")
                return
        what = f"fitting the {outcome.value} model on {features.value} ({len(table)} patients, {imputation.value})"
        with console.status(f"{what[0].upper()}{what[1:]}..."), explained(what):
            result = fit_outcome_model(
                table, outcome.value, features.value, kind, cv=cv_name, imputation=imputation.value, m=m,
                n_boot=n_boot, seed=seed, age_spline_knots=age_spline, penalty=penalty)
        with session_scope(engine) as session:
            row = record_model_fit(session, result, login_name())
            fit_id = row.id
        _print_summary(result.summary, result.metrics,
                       f"{outcome.value} ~ {features.value} ({result.model_kind}; {result.n_patients:,} patients, "
                       f"{result.n_events:,} events)")
        if result.spec.get("rows"):
            console.print(f"fitted on: {result.spec['rows']}")
        choice = result.metrics.get("estimation_choice")
        if choice:
            console.print(f"estimation: {choice['reason']}")
        for key in ("caution", "estimation_note", "calibration_caution", "ph_caution", "brant_note"):
            if key in result.extra:
                console.print(f"[yellow]caution:[/yellow] {result.extra[key]}")
        refits = result.metrics.get("cv_refits_penalized", 0) + result.metrics.get("cv_folds_not_estimable", 0)
        if refits:
            console.print(f"[yellow]note:[/yellow] {refits} cross-validation refit(s) could not be estimated by "
                          "maximum likelihood (a category absent from the fold, or separation); they were "
                          "refitted with Firth's penalized likelihood (separation), a weak ridge penalty (an "
                          "absent category) or left out, as listed in the fit's metrics "
                          "(cv_refit_notes).")
        console.print(f"Recorded ModelFit #{fit_id} (data snapshot {result.data_hash[:12]}).")


@app.command()
def report(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Folder to write the report into."),
    m: int = typer.Option(5, "--m", min=1, help="Imputations for the comparison."),
    n_boot: int = typer.Option(200, "--n-boot", min=10),
    seed: int = typer.Option(0, "--seed"),
    feature_source: str = typer.Option("auto", "--feature-source"),
    pdf: bool = typer.Option(False, "--pdf", help="Also print it to prognosis_report.pdf (needs Chromium installed; "
                                                  "without it the HTML is written and the command says so)."),
) -> None:
    """Write one self-contained HTML report: latest fits, clinical vs clinical+imaging, IMPACT, Kaplan-Meier."""
    from prognosis.analysis_table import analysis_table_hash, missingness_report
    from prognosis.fitting import compare_feature_sets, impact_scoring_tables
    from prognosis.impact import impact_validation_table
    from prognosis.kaplan_meier import kaplan_meier_by_strata, quantile_strata
    from prognosis.report import report_html
    from prognosis.staleness import refit_command, stale_fits, stale_notice
    from prognosis.store import analysis_table_from_registry, latest_model_fits, model_fit_dict

    with open_registry(ctx) as (_, engine):
        with session_scope(engine) as session:
            table = analysis_table_from_registry(session, feature_source)
            fits = [model_fit_dict(r) for r in latest_model_fits(session)]
        comparison, curves = None, {}
        if table["adm_hematoma_ml"].notna().any():
            what = f"comparing clinical with clinical+imaging models ({len(table)} patients, m={m}, seed {seed})"
            with console.status("Comparing clinical with clinical+imaging models..."), explained(what):
                comparison, curves = compare_feature_sets(table, m=m, n_boot=n_boot, seed=seed)
        else:
            err.print("No imaging features in the registry yet: the report has no clinical vs imaging comparison.")
        known = table.dropna(subset=["adm_hematoma_ml", "days_to_death_or_censor", "died"])
        km = (kaplan_meier_by_strata(known, quantile_strata(known["adm_hematoma_ml"], 3, "hematoma mL"))
              if len(known) else None)
        with explained(f"scoring the IMPACT models on the imputed rows ({len(table)} patients, m={m})"):
            imputed = impact_scoring_tables(table, m, seed)
            impact = impact_validation_table(table, imputed)
        current = analysis_table_hash(table)
        html_text = report_html(fits, comparison, curves, impact, km, missingness_report(table), table=table,
                                current_hash=current)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "prognosis_report.html"
        path.write_text(html_text, encoding="utf-8")
        console.print(f"Wrote {path} ({len(fits)} fits, {path.stat().st_size / 1e6:.1f} MB).")
        if pdf:
            from prognosis.report_pdf import PdfUnavailable, html_to_pdf

            try:
                printed = html_to_pdf(path, path.with_suffix(".pdf"))
            except PdfUnavailable as exc:
                err.print(f"[yellow]{exc}[/yellow]", soft_wrap=True)
            else:
                console.print(f"Wrote {printed} ({printed.stat().st_size / 1e6:.1f} MB).")
        stale = stale_fits(fits, current)
        if stale:
            err.print(f"[yellow]out of date:[/yellow] {stale_notice(stale, current)}")
            for f in stale:
                err.print(f"  {refit_command(f)}", soft_wrap=True, highlight=False)


@app.command("export-r")
def export_r_command(
    ctx: typer.Context,
    fit_id: int = typer.Argument(..., metavar="FIT", help="ModelFit id (as `prognosis fit` printed it)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the tables and refit.R into."),
    feature_source: str = typer.Option("auto", "--feature-source", help="Imaging features: the fit's source."),
) -> None:
    """Write a fit's analysis tables (its m imputed data sets) and an R script that refits and pools the same model,
    so that a statistician can reproduce its coefficients, and any figure built on them, in R."""
    from prognosis.analysis_table import analysis_table_hash
    from prognosis.export_r import export_r
    from prognosis.store import analysis_table_from_registry, model_fit_dict
    from registry.db.models import ModelFit

    with open_registry(ctx) as (_, engine), session_scope(engine) as session:
        row = session.get(ModelFit, fit_id)
        if row is None:
            raise typer.BadParameter(f"no ModelFit #{fit_id} in the registry (`ctstudy prognosis fit` prints the id "
                                     "of the fit it records)")
        fit = model_fit_dict(row)
        table = analysis_table_from_registry(session, feature_source)
    if analysis_table_hash(table) != fit["data_hash"]:
        raise typer.BadParameter(
            f"the registry's analysis table (snapshot {analysis_table_hash(table)[:12]}) is not the one ModelFit "
            f"#{fit_id} was fitted on ({fit['data_hash'][:12]}): data were added or changed since, or another "
            "--feature-source was used. Fit the model again on today's data (`ctstudy prognosis fit ... --refit`) "
            "and export that fit.")
    with explained(f"exporting ModelFit #{fit_id} for R"):
        paths = export_r(table, fit, out)
    console.print(f"Wrote {len(paths)} files to {out}: run `Rscript refit.R` there (R with rms, survival, ordinal, "
                  "mice) to refit and pool the model and print R's coefficients beside ctstudy's.")
