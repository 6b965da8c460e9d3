"""The `ctstudy` command line: global options, `init`, and each package's command group.

Each package keeps its own thin `cli.py`; this module only mounts them and resolves the data
home, which sub-commands receive as `ctx.obj` (a `registry.home.Home`). The packages' command
groups are imported only when one of their commands runs (`ctstudy.lazy`), so that `ctstudy --help`
and registry commands do not wait for torch, MONAI or statsmodels to load.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from ctstudy.errors import DEBUG_ENV, debug_enabled, failure_line
from ctstudy.lazy import LAZY_COMMANDS, LazyCommand, LazyGroup
from registry.home import DB_URL_ENV, HOME_ENV, Home

app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True, pretty_exceptions_show_locals=False,
                  cls=LazyGroup)
# The packages' command groups and root commands, imported when used; the help line is the one their
# module gives (tests/ctstudy checks that they agree).
LAZY_COMMANDS.update({
    "registry": LazyCommand("registry.cli:app", "The study registry: ingest, QC, collection progress, export."),
    "users": LazyCommand("registry.access.cli:app", "Dashboard users: add, list, deactivate, reactivate, unlock."),
    "db": LazyCommand("registry.db.cli:app", "The registry database: schema upgrade and downgrade, backups."),
    "imaging": LazyCommand("imaging.cli:app",
                          "Lesion segmentation (IPH, extra-axial, edema, IVH): train, segment, export, evaluate."),
    "biomarkers": LazyCommand("biomarkers.cli:app", "Imaging biomarkers: extract and export."),
    "prognosis": LazyCommand("prognosis.cli:app", "Outcome models: fit, compare, report."),
    "synth": LazyCommand("synthetic.cli:synth", "Write a synthetic multi-center TBI head-CT study with known truth."),
    "dashboard": LazyCommand("dashboard.cli:serve",
                             "Serve the dashboard (log in with an account from `ctstudy users add`)."),
    "demo": LazyCommand("ctstudy.demo:demo", "Generate a synthetic study into the home and run the whole pipeline "
                        "on it, then serve the dashboard."),
})
console = Console()


@app.callback()
def _global(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", envvar=HOME_ENV, help="Data home (default ./ctstudy-data)."),
    db_url: str | None = typer.Option(None, "--db-url", envvar=DB_URL_ENV,
                                      help="Database URL (default SQLite in the home)."),
    debug: bool = typer.Option(False, "--debug", help=f"Show the traceback of an unexpected error ({DEBUG_ENV}=1)."),
) -> None:
    """ctstudy: multi-center TBI head-CT studies."""
    if debug:
        os.environ[DEBUG_ENV] = "1"
    ctx.obj = Home.resolve(home, db_url)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the data home and its pseudonymization key, and upgrade the database to the latest schema."""
    from registry.db.engine import upgrade

    home: Home = ctx.obj
    home.ensure()
    upgrade(home.db_url)
    console.print(f"Data home [bold]{home.root}[/bold], database {_safe_url(home.db_url)} at the latest schema.")


@app.command()
def dictionary(
    group: str | None = typer.Option(None, "--group", help="Only this group (e.g. biomarker_patient, qc_reason)."),
    fmt: str = typer.Option("table", "--format", help="table, csv or markdown."),
) -> None:
    """The data dictionary: every variable, biomarker and code with its label, unit and definition."""
    from registry.cli_tables import print_table
    from registry.db.rows import Rows
    from vocabulary.dictionary import DICTIONARY_COLUMNS, GROUPS, dictionary_records, dictionary_table

    if group is not None and group not in GROUPS:
        console.print(f"[red]error:[/red] unknown group {group!r}; groups: {', '.join(GROUPS)}")
        raise typer.Exit(2)
    groups = [group] if group else None
    if fmt == "csv":
        dictionary_table(groups).to_csv(sys.stdout, index=False)
    elif fmt == "markdown":
        sys.stdout.write(dictionary_table(groups).to_markdown(index=False) + "\n")
    else:  # without pandas: the table starts in well under a second
        print_table(console, Rows.from_records(DICTIONARY_COLUMNS, dictionary_records(groups)), title="Data dictionary")


def _safe_url(url: str) -> str:
    """The URL with any password masked, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(*, ends_process: bool = True) -> None:
    """`ctstudy`: the app, with one clear line (never a bare library message) for what no command handled.

    `ends_process` (the console script's case): the process ends with the command, so everything it holds is
    frozen out of the cyclic garbage collector first (`gc.freeze`). The interpreter's collections at exit passed
    over every object of SQLAlchemy, typer and the models: about 0.15 s of a 0.6 s registry command
    (bench/startup_bench.py). Callers that go on running (tests) pass False: a freeze would keep whatever
    cyclic garbage they hold alive.
    """
    try:
        app(standalone_mode=True)
    except Exception as exc:  # noqa: BLE001 - the last resort: every unexpected failure gets words
        if debug_enabled():
            raise
        Console(stderr=True).print(failure_line(sys.argv[1:], exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        if ends_process:
            gc.freeze()
