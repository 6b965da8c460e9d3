"""Shared fixtures: a fresh data home on SQLite, and a throw-away PostgreSQL database.

PostgreSQL tests use CTSTUDY_TEST_PG_URL (default the local server's `test` database as
`postgres`); each test session creates its own database beside it and drops it afterwards, so
runs never see each other's rows. Where PostgreSQL is unreachable those tests are skipped,
except under CTSTUDY_REQUIRE_PG=1 (CI), where that is an error.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import create_engine, text

from registry.db.engine import make_engine, upgrade
from registry.db.scratch_database import ServerUnreachable, scratch_database
from registry.home import Home


@pytest.fixture(autouse=True)
def keep_the_main_module() -> Iterator[None]:
    """Put back the interpreter's `__main__` after each test.

    Streamlit's script runner (AppTest included) installs the app script as `sys.modules["__main__"]` and leaves it
    there. A process started later with the "spawn" method re-runs `__main__` first, so it would run the dashboard
    in bare mode and die before its first task."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    """Put back torch's intra-op thread count after each test.

    Commands run in the test process set it from the cores the load average leaves free
    (`imaging.devices.set_cpu_threads`). A network trained by a later test would then sum in another order
    with the machine's load at that moment, and a test of what training reaches would pass or fail with it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a database created for this test session on the PostgreSQL server."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database("ctstudy_test"))
        except ServerUnreachable as exc:
            if os.environ.get("CTSTUDY_REQUIRE_PG") == "1":
                raise RuntimeError(f"PostgreSQL required (CTSTUDY_REQUIRE_PG=1): {exc}") from exc
            pytest.skip(str(exc))
        yield url


@pytest.fixture()
def pg_url(pg_server_url: str) -> Iterator[str]:
    """An empty PostgreSQL database per test (schema dropped after)."""
    yield pg_server_url
    engine = create_engine(pg_server_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    """An initialised data home on SQLite (folders, key, schema at head)."""
    h = Home.resolve(tmp_path / "home")
    h.ensure()
    upgrade(h.db_url)
    return h


@pytest.fixture(params=["sqlite", "postgresql"])
def any_home(request: pytest.FixtureRequest, tmp_path: Path) -> Home:
    """The same initialised home on SQLite and on PostgreSQL: for tests the registry must pass on both."""
    if request.param == "sqlite":
        h = Home.resolve(tmp_path / "home")
    else:
        h = Home.resolve(tmp_path / "home", request.getfixturevalue("pg_url"))
    h.ensure()
    upgrade(h.db_url)
    return h


@pytest.fixture()
def engine(home: Home):
    eng = make_engine(home.db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def small_scored_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-center, 8-patient synthetic study at 128 x 128 (seed 11; its patient SI009-0001's lesion is evacuated),
    generated once for the tests of CT classes in the registry. Tests read it and never write into it."""
    from synthetic.study import generate_study

    out = tmp_path_factory.mktemp("small-scored-study") / "s"
    generate_study(out, centers=2, patients=8, seed=11, matrix=128)
    return out
