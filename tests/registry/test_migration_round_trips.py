"""Every migration, with data, on SQLite and PostgreSQL: a downgrade loses only what its revision added.

Generic over the revision chain, so migrations added later are covered without a new test: at each
revision every table gets a row (values made from the column types, foreign keys pointing at the
parents' rows); then one step down and up again, and every row and value of the tables and columns
that existed before that revision must still be there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    insert,
    select,
)

from registry.db.engine import alembic_config, downgrade, make_engine, upgrade
from registry.home import Home


def _revisions(url: str) -> list[str]:
    """All revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def _value(column: Any, table: str) -> Any:
    kind = column.type
    if column.foreign_keys:
        return 1  # every table's first row has id 1, and parents are filled first
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, Integer):
        return 7
    if isinstance(kind, Float | Numeric):
        return 1.5
    if isinstance(kind, DateTime):
        return dt.datetime(2024, 3, 5, 14, 30)
    if isinstance(kind, Date):
        return dt.date(2024, 3, 5)
    if isinstance(kind, JSON):
        return {"k": [1, "v"]}
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 40
        return f"{table[:4]}-{column.name}"[:length]
    raise AssertionError(f"add a value for column type {kind!r} ({table}.{column.name}) to this test")


def _fill(engine: Engine) -> None:
    """One row in every empty table, parents before children."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version" or conn.scalar(select(table).limit(1)) is not None:
                continue
            row = {c.name: 1 if c.primary_key and isinstance(c.type, Integer) else _value(c, table.name)
                   for c in table.columns}
            conn.execute(insert(table), [row])


def _snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {t.name: [dict(r._mapping) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                for t in meta.sorted_tables if t.name != "alembic_version"}


def _scrubbed_columns(url: str, revision: str) -> dict[str, tuple[str, ...]]:
    """Columns whose existing values a migration rewrites on purpose (its SCRUBBED_COLUMNS, e.g. 0006's PHI scrub)."""
    module = ScriptDirectory.from_config(alembic_config(url)).get_revision(revision).module
    return getattr(module, "SCRUBBED_COLUMNS", {})


def _projected(snapshot: dict[str, list[dict[str, Any]]], like: dict[str, list[dict[str, Any]]],
               drop: dict[str, tuple[str, ...]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """`snapshot` restricted to the tables and columns of `like` (less the `drop` columns)."""
    out = {}
    for table, rows in like.items():
        columns = [c for c in rows[0] if c not in (drop or {}).get(table, ())]
        out[table] = [{c: r[c] for c in columns} for r in snapshot[table]]
    return out


def test_every_revision_round_trips_with_data(any_home: Home) -> None:
    url = any_home.db_url
    revisions = _revisions(url)
    assert revisions[0] == "0001"
    downgrade(url, "base")
    engine = make_engine(url)
    try:
        for i, revision in enumerate(revisions):
            before = _snapshot(engine) if i else {}  # the previous revision's schema, every table filled
            upgrade(url, revision)
            engine.dispose()
            if i:
                # The upgrade keeps every existing row and value, except the columns it declares it scrubs.
                scrubbed = _scrubbed_columns(url, revision)
                assert _projected(_snapshot(engine), before, scrubbed) == _projected(before, before, scrubbed), \
                    f"upgrade to {revision} changed existing data beyond its SCRUBBED_COLUMNS"
            upgraded = _snapshot(engine)
            _fill(engine)  # rows in the tables this revision added too
            if i == 0:
                continue
            downgrade(url, revisions[i - 1])
            engine.dispose()
            assert _snapshot(engine) == _projected(upgraded, before), \
                f"downgrade of {revision} changed data that existed before it"
            upgrade(url, revision)
            engine.dispose()
            after_up = _snapshot(engine)
            assert _projected(after_up, before) == _projected(upgraded, before), \
                f"upgrade to {revision} after a downgrade changed existing data"
            _fill(engine)
        assert all(_snapshot(engine).values()), "every table of head holds its row"
    finally:
        engine.dispose()
