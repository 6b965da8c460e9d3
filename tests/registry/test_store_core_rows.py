"""The registry's get-or-create and audit rows written as Core statements (`registry.db.store`), on both databases:
the same rows as their ORM counterparts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, Center, Patient
from registry.db.store import (
    audit,
    center_by_code,
    center_id_by_code,
    insert_audit,
    patient_by_pseudo_id,
    patient_id_by_pseudo_id,
)
from registry.home import Home


def test_center_and_patient_ids_are_those_of_the_orm_lookups(any_home: Home) -> None:
    engine = make_engine(any_home.db_url)
    with session_scope(engine) as s:
        first = center_id_by_code(s, "it064")
        assert center_id_by_code(s, "IT064") == first  # the code is normalized, the center made once
        other = center_id_by_code(s, "IT065")
        patient, created = patient_id_by_pseudo_id(s, first, "p1")
        assert created and patient_id_by_pseudo_id(s, first, "p1") == (patient, False)
        with pytest.raises(ValueError, match="pseudonym p1 already belongs to another center"):
            patient_id_by_pseudo_id(s, other, "p1")
    with session_scope(engine) as s:
        assert center_by_code(s, "IT064").id == first and center_by_code(s, "IT065").id == other
        orm_patient, orm_created = patient_by_pseudo_id(s, center_by_code(s, "IT064"), "p1")
        assert (orm_patient.id, orm_created) == (patient, False)
        assert s.scalars(select(Center.code).order_by(Center.id)).all() == ["IT064", "IT065"]
        assert s.scalars(select(Patient.pseudo_id)).all() == ["p1"]
    engine.dispose()


def test_audit_rows_from_core_and_orm_hold_the_same_values(any_home: Home) -> None:
    engine = make_engine(any_home.db_url)
    values = {"actor": "tester", "action": "series_ingested", "entity_type": "series", "entity_id": "1.2.3",
              "before": None, "after": {"phi_tags": ("PatientName",), "count": 3}}
    with session_scope(engine) as s:
        audit(s, **values)
        s.flush()
        insert_audit(s.connection(), **values)
    with session_scope(engine) as s:
        rows = s.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.entity_type, AuditEvent.entity_id,
                                AuditEvent.before, AuditEvent.after).order_by(AuditEvent.id)).all()
        times = s.scalars(select(AuditEvent.at)).all()
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0].after == {"phi_tags": ["PatientName"], "count": 3}  # JSON-safe as `audit` makes it
    assert all(t is not None for t in times)
    engine.dispose()
