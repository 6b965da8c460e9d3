"""On PostgreSQL the dashboard's hot, selective queries are served by indexes, never a scan of a big table.

The registry is filled by the scale bench's own loader (small here); the planner is told to avoid
sequential scans (`enable_seqscan = off`), so a `Seq Scan` left in a plan means no index can serve
that query at all, and the named indexes of migration 0007 must be the ones chosen. The same
plans at 100,000 series, with real statistics, are printed by `bench/scale_bench.py`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from registry.db.engine import make_engine, upgrade

pytestmark = pytest.mark.postgres

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale_bench.py"


def _bench():  # noqa: ANN202 - the bench module
    spec = importlib.util.spec_from_file_location("scale_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hot_queries_use_indexes_on_postgresql(pg_url: str) -> None:
    from dashboard import queries

    bench = _bench()
    upgrade(pg_url)
    engine = make_engine(pg_url)
    bench.fill(engine, n_series=400, n_patients=80, n_centers=4)
    engine.dispose()

    pages = {
        "QC queue of one center": lambda: queries.qc_queue(pg_url, "C02"),
        "QC queue counts of one center": lambda: queries.qc_status_counts(pg_url, "C02"),
        "QC queue, first page of one center": lambda: queries.qc_queue_page(pg_url, "C02", ("C02",),
                                                                            ("pending", "auto_failed")),
        "arrivals per day of one center": lambda: queries.arrival_counts(pg_url, "C02", "scanned"),
        "QC history, all centers": lambda: queries.qc_history(pg_url, None),
        "QC history of one center": lambda: queries.qc_history(pg_url, "C02"),
        "audit trail of one center": lambda: queries.audit_trail(pg_url, "C02"),
    }
    plans: dict[str, str] = {}
    dashboard_engine = queries.engine_for(pg_url)
    try:
        for label, call in pages.items():
            queries.clear_caches()
            with bench.captured_sql(dashboard_engine) as seen:
                call()
            assert seen, label
            plans[label] = "\n".join(bench.explain(dashboard_engine, sql, params, no_seqscan=True)
                                     for sql, params in seen)
    finally:
        dashboard_engine.dispose()
        queries.clear_caches()
    for label, plan in plans.items():
        assert bench.big_table_seq_scans(plan) == [], f"{label}:\n{plan}"
    assert "ix_qc_decision_decided_at" in plans["QC history, all centers"]  # newest first, LIMIT: no sort of all
