"""A command that lists its failures and exits 1 ends with its own words, not a bare "error: 1"."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from registry.cli_support import open_registry
from registry.home import Home


def test_deliberate_exit_is_not_reported_as_an_error(home: Home) -> None:
    app = typer.Typer()

    @app.command()
    def work(ctx: typer.Context) -> None:
        with open_registry(ctx):
            typer.echo("failed 1.2.3: mask grid differs from the series")
            raise typer.Exit(1)

    @app.command()
    def broken(ctx: typer.Context) -> None:
        with open_registry(ctx):
            raise LookupError("no series with SeriesInstanceUID 9.9 in the registry")

    result = CliRunner().invoke(app, ["work"], obj=home)
    assert result.exit_code == 1 and "failed 1.2.3" in result.output and "error: 1" not in result.output
    result = CliRunner().invoke(app, ["broken"], obj=home)
    assert result.exit_code == 1 and "error: no series with SeriesInstanceUID 9.9" in result.output
