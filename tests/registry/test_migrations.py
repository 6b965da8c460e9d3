"""Every migration upgrades and downgrades cleanly on SQLite and PostgreSQL, and head matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from registry.db import downgrade, make_engine, upgrade
from registry.home import Home
from registry.models import Base


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
