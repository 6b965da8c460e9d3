"""A throw-away PostgreSQL database on the test server, dropped afterwards even when the run fails.

The test session (tests/conftest.py) and every bench that measures PostgreSQL need a database of their
own beside the server's, so that runs never see each other's rows. The server is CTSTUDY_TEST_PG_URL
(default: the local server's `test` database as `postgres`, what CI and this machine have).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import URL, create_engine, text
from sqlalchemy.engine import make_url

PG_URL_ENV = "CTSTUDY_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class ServerUnreachable(RuntimeError):
    """No PostgreSQL server answered at the test URL (or it refused to create a database)."""


def server_url() -> URL:
    return make_url(os.environ.get(PG_URL_ENV, DEFAULT_PG_URL))


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a new database named `prefix`_<random>, dropped (sessions still open or not) on leaving.

    Raises ServerUnreachable, naming the server, when the database cannot be created.
    """
    base = server_url()
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to connect or create means "no server to use"
        admin.dispose()
        raise ServerUnreachable(f"PostgreSQL unreachable at {base.render_as_string(hide_password=True)}: "
                                f"{type(exc).__name__}: {exc}") from exc
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
