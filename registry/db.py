"""Engine, sessions and schema upgrades (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
T = TypeVar("T")


def make_engine(db_url: str) -> Engine:
    """An engine with SQLite made safe for our use: foreign keys on, WAL for concurrent readers."""
    if db_url.startswith("sqlite"):
        engine = create_engine(db_url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(db_url, pool_pre_ping=True)


def alembic_config(db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for configparser (PostgreSQL URLs may carry %-encoded passwords).
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(db_url), revision)


def downgrade(db_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(db_url), revision)


class SchemaNotCurrent(RuntimeError):
    """The database is missing, unreachable, or not at the schema this code expects."""


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent, saying what to run, unless the database is at the latest migration.

    Without this a command on a home that was never initialised (or on an older database after an
    upgrade of ctstudy) fails deep inside a query with "no such table".
    """
    url = engine.url.render_as_string(hide_password=True)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise SchemaNotCurrent(f"cannot open the database {url} ({exc.orig}): check --home / --db-url, "
                               "or run `ctstudy init` to create it") from None
    if current is None:
        raise SchemaNotCurrent(f"the database {url} has no ctstudy schema: run `ctstudy init` first")
    if current != head:
        raise SchemaNotCurrent(f"the database {url} is at schema revision {current}, this ctstudy needs {head}: "
                               "run `ctstudy init` to upgrade it")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def bulk_read() -> Iterator[None]:
    """Python's cyclic garbage collector paused while tens of thousands of rows are read and decoded.

    Rows, decoded JSON and the frames built from them hold no reference cycles, yet every few hundred new
    containers start a collector pass over them: at 100,000 series those passes cost a quarter to a third of
    reading the registry. Reference counting still frees everything; the collector resumes on leaving.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with session_factory(engine)() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def run_in_transaction(engine: Engine, work: Callable[[Session], T], *, attempts: int = 6) -> T:
    """`work(session)` in one transaction, retried from scratch when a concurrent writer got in the way.

    Two runs writing the same rows at once (two ingests of one folder, two segmentations of one
    series) collide in ways that are not errors of either: a unique constraint the other run has
    just satisfied (IntegrityError), SQLite's single writer lock ("database is locked"), or a
    PostgreSQL deadlock / serialization failure. The whole transaction is rolled back and `work`
    runs again on a fresh session, where it sees the other run's committed rows. So `work` must
    not keep side effects from a failed attempt (count into a fresh report, merge after).
    """
    for attempt in range(1, attempts + 1):
        try:
            with session_scope(engine) as session:
                return work(session)
        except DBAPIError as exc:
            if attempt == attempts or not _is_concurrency_conflict(exc):
                raise
            time.sleep(random.uniform(0.02, 0.1) * 2**attempt)  # jittered backoff: the runs must not re-collide
    raise AssertionError("unreachable")


def _is_concurrency_conflict(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01"):  # serialization_failure, deadlock_detected
        return True
    return isinstance(exc, OperationalError) and ("database is locked" in str(exc.orig)
                                                  or "database table is locked" in str(exc.orig))
