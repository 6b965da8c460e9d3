"""Migration 0006 on a registry with data, both databases: identifying text scrubbed, runs told apart, round trip."""

from __future__ import annotations

from sqlalchemy import text

from registry.db.engine import downgrade, make_engine, upgrade
from registry.home import Home


def test_0006_scrubs_old_rows_and_round_trips(any_home: Home) -> None:
    downgrade(any_home.db_url, "0001")
    engine = make_engine(any_home.db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO center (id, code, created_at) VALUES (1, 'IT064', '2024-01-01')"))
        conn.execute(text("INSERT INTO patient (id, pseudo_id, center_id, created_at) "
                          "VALUES (1, 'p1', 1, '2024-01-01')"))
        conn.execute(text("INSERT INTO study (id, study_instance_uid, patient_id, description) "
                          "VALUES (1, '1.2', 1, 'CT HEAD Rossi Mario 12.03.1961')"))
        conn.execute(text("INSERT INTO series (id, series_instance_uid, study_id, description, institution, "
                          "instance_count, qc_status, qc_reasons, phi_tags, ingested_at) VALUES (1, '1.3', 1, "
                          "'Head 5mm Verdi', 'Ospedale San Gerardo', 0, 'pending', '[]', '[]', '2024-01-01')"))
        conn.execute(text("INSERT INTO ingest_run (id, kind, source, actor, started_at, finished_at, counts) VALUES "
                          "(1, 'dicom', '/in', 't', '2024-01-01', NULL, '{}'), "
                          "(2, 'dicom', '/in', 't', '2024-01-01', '2024-01-01', '{}')"))
        conn.execute(text("INSERT INTO rejection (ingest_run_id, path, reason, detail) VALUES (2, "
                          "'/in/IT064/Rossi_Mario/x.dcm', 'conflict', "
                          "'already registered (file /archive/Rossi_Mario/x.dcm); Rows x BitsAllocated/8')"))
    engine.dispose()

    upgrade(any_home.db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT description FROM study")).scalar() == "CT HEAD"
        assert conn.execute(text("SELECT description FROM series")).scalar() == "Head 5mm"
        statuses = conn.execute(text("SELECT status FROM ingest_run ORDER BY id")).scalars().all()
        assert statuses == ["interrupted", "done"]
        path, detail = conn.execute(text("SELECT path, detail FROM rejection")).one()
    assert "Rossi" not in path and "Rossi" not in detail and "BitsAllocated/8" in detail
    engine.dispose()

    downgrade(any_home.db_url, "0001")
    upgrade(any_home.db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM series")).scalar() == 1
    engine.dispose()
