"""The `ctstudy` command line: global options, `init`, and each package's command group.

Each package keeps its own thin `cli.py`; this module only mounts them and resolves the data
home, which sub-commands receive as `ctx.obj` (a `registry.home.Home`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from biomarkers import cli as biomarkers_cli
from imaging import cli as imaging_cli
from prognosis import cli as prognosis_cli
from registry import cli as registry_cli
from registry import db_cli, users_cli
from registry.db import upgrade
from registry.home import DB_URL_ENV, HOME_ENV, Home

app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(registry_cli.app, name="registry")
app.add_typer(users_cli.app, name="users")
app.add_typer(db_cli.app, name="db")
app.add_typer(imaging_cli.app, name="imaging")
app.add_typer(biomarkers_cli.app, name="biomarkers")
app.add_typer(prognosis_cli.app, name="prognosis")
# Root-level commands of other packages (`ctstudy synth`, `ctstudy dashboard`) and the demo are
# registered at the bottom of this module with app.command(...).
console = Console()


@app.callback()
def _global(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", envvar=HOME_ENV, help="Data home (default ./ctstudy-data)."),
    db_url: str | None = typer.Option(None, "--db-url", envvar=DB_URL_ENV,
                                      help="Database URL (default SQLite in the home)."),
) -> None:
    """ctstudy: multi-center TBI head-CT studies."""
    ctx.obj = Home.resolve(home, db_url)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the data home and its pseudonymization key, and upgrade the database to the latest schema."""
    home: Home = ctx.obj
    home.ensure()
    upgrade(home.db_url)
    console.print(f"Data home [bold]{home.root}[/bold], database {_safe_url(home.db_url)} at the latest schema.")


def _safe_url(url: str) -> str:
    """The URL with any password masked, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()


from synthetic.cli import synth  # noqa: E402 - root commands of other packages are registered after the app

app.command("synth")(synth)

from dashboard.cli import serve  # noqa: E402 - root commands of other packages are registered after the app

app.command("dashboard")(serve)

from ctstudy.demo import demo  # noqa: E402 - the demo runs the commands above in-process

app.command("demo")(demo)
