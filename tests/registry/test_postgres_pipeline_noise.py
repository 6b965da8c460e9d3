"""PostgreSQL: a failed executemany (a concurrent writer stored the row first) raises its error to the caller
and logs nothing more; psycopg's other warnings still come through."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import Center


def test_a_conflict_inside_an_executemany_raises_without_pipeline_noise(pg_url: str,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    with session_scope(engine) as s:
        s.execute(insert(Center), [{"code": "IT064"}])
    caplog.set_level(logging.WARNING)
    # The conflicting row first and many behind it: psycopg learns of the error while the rest of the batch is
    # still in its pipeline (as a concurrent ingest's instance insert may); how soon depends on the server,
    # so three batch sizes.
    for size in (1_000, 5_000, 20_000):
        with pytest.raises(IntegrityError), session_scope(engine) as s:
            s.execute(insert(Center), [{"code": "IT064"}] + [{"code": f"C{i:05d}"} for i in range(size)])
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]
    with session_scope(engine) as s:
        assert s.query(Center).count() == 1  # nothing of the failed batch was kept

    logging.getLogger("psycopg").warning("error ignored terminating %r: %s", "a copy", "connection lost")
    assert [r.getMessage() for r in caplog.records] == ["error ignored terminating 'a copy': connection lost"]
    engine.dispose()
