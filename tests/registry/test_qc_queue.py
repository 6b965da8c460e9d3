"""`registry qc-queue` and `registry qc` by short reference: the coordinator's day at the command line."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from registry.db.engine import session_scope
from registry.db.models import AuditEvent, Center, Patient, Series, Study
from registry.qc.review_queue import SeriesReferenceError, qc_queue_rows, resolve_series_uid
from vocabulary.dictionary import short_uid

UIDS = {"old_pending": "1.2.826.0.1.3680043.10.7.16578426", "auto": "1.2.826.0.1.3680043.10.7.22222222",
        "passed": "1.2.826.0.1.3680043.10.7.33333333", "new_pending": "1.2.826.0.1.3680043.10.7.44416578426",
        "other_center": "1.2.826.0.1.3680043.10.7.55555555"}


@pytest.fixture()
def queue_home(home, engine):
    start = dt.datetime(2024, 5, 1, 9, 0)
    statuses = {"old_pending": ("IT01", "pending", []), "auto": ("IT01", "auto_failed", ["too_few_slices"]),
                "passed": ("IT01", "passed", []), "new_pending": ("IT01", "pending", []),
                "other_center": ("IT02", "pending", [])}
    with session_scope(engine) as s:
        centers = {code: Center(code=code) for code in ("IT01", "IT02")}
        s.add_all(centers.values())
        for k, (key, (code, status, reasons)) in enumerate(statuses.items()):
            patient = Patient(pseudo_id=f"p{k}", center=centers[code])
            study = Study(study_instance_uid=UIDS[key] + ".9", patient=patient)
            s.add(Series(series_instance_uid=UIDS[key], study=study, modality="CT", description=f"Head {key}",
                         instance_count=30, qc_status=status, qc_reasons=reasons,
                         ingested_at=start + dt.timedelta(hours=k)))
    return home


def _cli(home, *args: str):
    return CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "registry", *args])


def test_short_reference_resolves_to_its_series_and_ambiguity_is_named(queue_home, engine) -> None:
    with session_scope(engine) as s:
        assert resolve_series_uid(s, short_uid(UIDS["auto"])) == UIDS["auto"]
        assert resolve_series_uid(s, "...22222222") == UIDS["auto"]
        assert resolve_series_uid(s, UIDS["old_pending"]) == UIDS["old_pending"]  # a full UID wins over suffixes
        with pytest.raises(SeriesReferenceError, match="several series"):
            resolve_series_uid(s, "…16578426")  # ends two UIDs
        with pytest.raises(SeriesReferenceError, match="no series whose UID ends in '99999999'"):
            resolve_series_uid(s, "…99999999")
        assert resolve_series_uid(s, "…55555555", center="IT02") == UIDS["other_center"]
        with pytest.raises(SeriesReferenceError, match="in center IT01"):
            resolve_series_uid(s, "…55555555", center="IT01")


def test_queue_lists_what_awaits_a_decision_oldest_first(queue_home, engine) -> None:
    with session_scope(engine) as s:
        rows = qc_queue_rows(s, "IT01")
    assert [r[-1] for r in rows.rows] == [UIDS["old_pending"], UIDS["auto"], UIDS["new_pending"]]
    shown = _cli(queue_home, "qc-queue")
    assert shown.exit_code == 0, shown.output
    assert "4 series awaiting a QC decision" in shown.output and short_uid(UIDS["auto"]) in shown.output
    assert "Too few slices" in shown.output and short_uid(UIDS["passed"]) not in shown.output
    as_json = json.loads(_cli(queue_home, "qc-queue", "--center", "IT02", "--format", "json").output)
    assert [r["series_uid"] for r in as_json] == [UIDS["other_center"]] and as_json[0]["qc_status"] == "pending"


def test_qc_by_short_reference_records_and_audits_the_decision(queue_home, engine) -> None:
    done = _cli(queue_home, "qc", short_uid(UIDS["auto"]), "--pass", "--actor", "coord")
    assert done.exit_code == 0, done.output
    assert f"Series {UIDS['auto']}: QC passed by coord" in done.output
    ambiguous = _cli(queue_home, "qc", "…16578426", "--fail", "--reason", "motion", "--actor", "coord")
    assert ambiguous.exit_code == 1 and "several series" in ambiguous.output
    with session_scope(engine) as s:
        status = dict(s.execute(select(Series.series_instance_uid, Series.qc_status)).all())
        assert status[UIDS["auto"]] == "passed" and status[UIDS["old_pending"]] == "pending"
        assert s.scalar(select(AuditEvent.entity_id).where(AuditEvent.action == "qc_decision")) == UIDS["auto"]
    after = _cli(queue_home, "qc-queue", "--center", "IT01")
    assert short_uid(UIDS["auto"]) not in after.output and "2 series awaiting" in after.output
