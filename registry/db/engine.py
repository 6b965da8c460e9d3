"""Engine, sessions and schema upgrades (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import functools
import gc
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # Alembic is imported by the commands that change the schema, not by every command
    from alembic.config import Config

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
    _quiet_aborted_pipelines()
    return create_engine(db_url, pool_pre_ping=True)


class _AbortedPipelineNoise(logging.Filter):
    """Drops psycopg's "error ignored terminating <Pipeline>: pipeline aborted" warning, and only that one.

    psycopg runs an executemany (a series' instances, say) in pipeline mode. When one statement fails (a
    concurrent ingest stored the same row first), psycopg raises that error, and closing the pipeline then
    fails on the statements queued behind it with PipelineAborted, which psycopg can only log. That second
    error says nothing the first does not: the first reaches the caller (and `run_in_transaction` retries
    the transaction), while the log line would print on the terminal of a run that ends well.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "error ignored terminating %r: %s" or not isinstance(record.args, tuple):
            return True
        from psycopg import Pipeline
        from psycopg.errors import PipelineAborted

        args = record.args
        return not (len(args) == 2 and isinstance(args[0], Pipeline) and isinstance(args[1], PipelineAborted))


_PIPELINE_FILTER = _AbortedPipelineNoise()


def _quiet_aborted_pipelines() -> None:
    logging.getLogger("psycopg").addFilter(_PIPELINE_FILTER)  # adding the same filter twice keeps one


def alembic_config(db_url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for configparser (PostgreSQL URLs may carry %-encoded passwords).
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(db_url), revision)


def downgrade(db_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(db_url), revision)


@functools.cache
def schema_head() -> str:
    """The latest migration's revision, read from the migration files without importing them.

    Every command checks the schema before it starts; Alembic's `ScriptDirectory` would import
    Alembic and every migration module (and whatever they import) to answer this, which cost each
    command a noticeable part of its start-up. The files are parsed for their `revision` and
    `down_revision` assignments instead; tests/registry/test_schema_head.py checks that the answer
    equals Alembic's own.
    """
    revisions: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found: dict[str, str | None] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value is not None:
                found[target.id] = ast.literal_eval(node.value)
        if "revision" in found:
            revisions[str(found["revision"])] = found.get("down_revision")
    parents = {p for p in revisions.values() if p is not None}
    heads = sorted(set(revisions) - parents)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS_DIR / 'versions'} have {len(heads)} heads "
                           f"({', '.join(heads) or 'none'}); they must form one chain")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (Alembic's version table), or None where it has none."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


class SchemaNotCurrent(RuntimeError):
    """The database is missing, unreachable, or not at the schema this code expects."""


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent, saying what to run, unless the database is at the latest migration.

    Without this a command on a home that was never initialised (or on an older database after an
    upgrade of ctstudy) fails deep inside a query with "no such table".
    """
    url = engine.url.render_as_string(hide_password=True)
    head = schema_head()
    try:
        current = current_revision(engine)
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
