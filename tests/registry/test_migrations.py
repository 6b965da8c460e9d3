"""Every migration upgrades and downgrades cleanly on SQLite and PostgreSQL, and head matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from registry.db.engine import downgrade, make_engine, upgrade
from registry.db.models import Base
from registry.home import Home


def test_upgrade_downgrade_upgrade(any_home: Home) -> None:
    engine = make_engine(any_home.db_url)
    tables = set(Base.metadata.tables)
    assert tables <= set(inspect(engine).get_table_names())

    downgrade(any_home.db_url, "base")
    engine.dispose()
    assert not (tables & set(inspect(engine).get_table_names()))

    upgrade(any_home.db_url)
    engine.dispose()
    assert tables <= set(inspect(engine).get_table_names())
    # The migrated schema is the one the models describe: no model change without a migration.
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    engine.dispose()


def test_commands_on_an_uninitialised_or_outdated_database_say_to_run_init(tmp_path, any_home: Home) -> None:
    """No traceback from deep inside a query: every command names the database and `ctstudy init`."""
    from typer.testing import CliRunner

    from ctstudy.cli import app

    runner = CliRunner()
    never_initialised = tmp_path / "never"
    never_initialised.mkdir()
    for args in (["registry", "progress"], ["users", "list"], ["imaging", "segment", "--all"], ["dashboard"]):
        result = runner.invoke(app, ["--home", str(never_initialised), *args])
        assert result.exit_code == 1, (args, result.output)
        assert "no ctstudy schema" in result.output and "ctstudy init" in result.output, (args, result.output)

    downgrade(any_home.db_url, "base")  # an empty database on either engine, as after a failed set-up
    result = runner.invoke(app, ["--home", str(any_home.root), "--db-url", any_home.db_url, "registry", "progress"])
    assert result.exit_code == 1 and "ctstudy init" in result.output
    upgrade(any_home.db_url)
    result = runner.invoke(app, ["--home", str(any_home.root), "--db-url", any_home.db_url, "registry", "progress"])
    assert result.exit_code == 0, result.output
