"""`registry import-clinical` / `import-outcomes`: validated CSV rows -> ClinicalRecord / Outcome.

All-or-nothing by default: any invalid row and nothing is written. With `skip_invalid`, the valid
rows are imported and the invalid ones written, with their errors, to `<file>.rejects.csv` beside
the input. Patients are matched to imaging through the same keyed pseudonym (and the same ID
normalization, `registry.identifiers`) as DICOM ingest.

A center or patient the registry does not know is an error (a typo must not create one) unless
`create` is given: then the center and patient are created, so that coordinators see "clinical
data, no CT". A re-import updates the records and audits each change with before/after; an empty
cell keeps the stored value unless `blank_clears` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from registry.clinical.csv_validation import ValidatedTable, expected_columns, validate_table
from registry.clinical.table_reading import read_table_as_text
from registry.csv_export import write_csv
from registry.db.engine import run_in_transaction
from registry.db.models import (
    Center,
    ClinicalRecord,
    IngestRun,
    Outcome,
    Patient,
    Rejection,
    Series,
    Study,
    utcnow,
)
from registry.db.store import audit, center_by_code, patient_by_pseudo_id, update_days_from_injury
from registry.deid.pseudonym import pseudo_id
from registry.deid.stored_names import path_token, value_kind
from registry.home import Home

RECORD_MODELS = {"clinical": ClinicalRecord, "outcomes": Outcome}
BOOL_FIELDS = {"hypoxia", "hypotension", "tsah", "edh", "major_extracranial_injury", "evacuated_mass_lesion", "died"}


class CSVValidationError(ValueError):
    """The file has errors and nothing was imported; `errors` lists them all (row, column, value, rule)."""

    def __init__(self, path: Path, errors: pd.DataFrame, header_only: bool = False) -> None:
        what = "header errors" if header_only else f"{len(errors)} error(s)"
        super().__init__(f"{path}: {what}; nothing imported")
        self.path = path
        self.errors = errors


@dataclass
class ImportReport:
    run_id: int
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    patients_new: int = 0
    invalid_rows: int = 0
    centers_new: int = 0
    blanks_kept: int = 0
    read_as: str = ""
    rejects_path: Path | None = None
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)

    # `imported_at` stays the first import's time (progress "as of" a date counts from it); later
    # changes are in the audit log.

    def counts(self) -> dict[str, Any]:
        return {"rows": self.rows, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "patients_new": self.patients_new, "centers_new": self.centers_new,
                "blanks_kept": self.blanks_kept, "invalid_rows": self.invalid_rows, "read_as": self.read_as,
                # Whether `<file>.rejects.csv` was written beside the file, never its name (it may name someone).
                "rejects_file_written": self.rejects_path is not None}


def import_table(
    engine: Engine, home: Home, path: Path | str, kind: str, *, actor: str = "cli", skip_invalid: bool = False,
    create: bool = False, blank_clears: bool = False,
) -> ImportReport:
    """Validate and import a clinical (`kind="clinical"`) or outcome (`"outcomes"`) CSV or .xlsx file.

    `create`: unknown centers and patients are created instead of being errors. `blank_clears`: an
    empty cell erases the stored value instead of keeping it.
    """
    path = Path(path)
    key = home.secret()
    read = read_table_as_text(path, expected_columns(kind))
    raw = read.table
    checked = validate_table(raw, kind)
    if checked.header_errors:
        raise CSVValidationError(path, checked.errors, header_only=True)

    model = RECORD_MODELS[kind]
    fields = [c for c in checked.valid.columns if c not in ("row", "center", "patient_id")]
    rows = checked.valid.to_dict("records")
    pseudos = [pseudo_id(key, r["center"], r["patient_id"]) for r in rows]

    def store(session: Session) -> ImportReport:
        # The whole import is one transaction, run again from scratch when a concurrent import or ingest
        # created the same center, patient or record first (the get-or-create of ingest,
        # registry.db.engine.run_in_transaction): the next attempt finds them and updates or keeps them. Only the
        # rejects file outlives a failed attempt, and the next attempt writes it again.
        patients = {p.pseudo_id: p for p in _patients_by_pseudo(session, pseudos)}
        judged = checked.with_errors(_registry_errors(session, rows, pseudos, patients, create))
        if len(judged.errors) and not skip_invalid:
            raise CSVValidationError(path, judged.errors)
        valid_lines = set(judged.valid["row"])
        kept = [(r, p) for r, p in zip(rows, pseudos, strict=True) if r["row"] in valid_lines]

        source = path_token(key, "file", str(path.resolve()))
        run = IngestRun(kind=kind, source=source, actor=actor)
        session.add(run)
        session.flush()
        report = ImportReport(run_id=run.id, rows=len(raw), errors=judged.errors, read_as=read.how)
        injury_changed: list[int] = []
        records = {r.patient_id: r for r in session.scalars(
            select(model).where(model.patient_id.in_([p.id for p in patients.values()])))} if patients else {}
        for row, pseudo in kept:
            patient = patients.get(pseudo)
            if patient is None:
                center = center_by_code(session, row["center"], create=False)
                if center is None:
                    center = center_by_code(session, row["center"])
                    audit(session, actor=actor, action="center_created", entity_type="center",
                          entity_id=center.code, after={"source": source, "line": row["row"]})
                    report.centers_new += 1
                patient, _ = patient_by_pseudo_id(session, center, pseudo)
                patients[pseudo] = patient
                report.patients_new += 1
            new_values = {f: _db_value(f, row[f]) for f in fields}
            record = records.get(patient.id)
            if record is None:
                record = model(patient_id=patient.id, **new_values)
                session.add(record)
                records[patient.id] = record
                report.created += 1
                audit(session, actor=actor, action=f"{kind}_created", entity_type="patient", entity_id=pseudo,
                      after=new_values)
                if new_values.get("injury_datetime") is not None:
                    injury_changed.append(patient.id)
                continue
            before = {f: getattr(record, f) for f in fields}
            if not blank_clears:
                # An empty cell means "not in this file", not "erase": a partial re-export must not
                # wipe outcomes already recorded.
                blanks = [f for f in fields if new_values[f] is None and before[f] is not None]
                report.blanks_kept += len(blanks)
                new_values.update({f: before[f] for f in blanks})
            if before == new_values:
                report.unchanged += 1
                continue
            for f, v in new_values.items():
                setattr(record, f, v)
            changed = [f for f in fields if before[f] != new_values[f]]
            audit(session, actor=actor, action=f"{kind}_updated", entity_type="patient", entity_id=pseudo,
                  before={f: before[f] for f in changed}, after={f: new_values[f] for f in changed})
            report.updated += 1
            if "injury_datetime" in changed:
                injury_changed.append(patient.id)
        session.flush()
        if injury_changed:
            update_days_from_injury(session, injury_changed)

        if len(judged.errors):
            report.invalid_rows = len(judged.invalid_rows)
            report.rejects_path = write_rejects(path, raw, judged)
            session.execute(insert(Rejection), [
                {"ingest_run_id": run.id, "path": f"{source}:{line}", "reason": "invalid_row",
                 "detail": _errors_of_line(judged, line, described=True)}
                for line in judged.invalid_rows
            ])
        run.finished_at = utcnow()
        run.counts = report.counts()
        audit(session, actor=actor, action=f"import_{kind}", entity_type="ingest_run", entity_id=str(run.id),
              after={"source": source, **report.counts()})
        return report

    return run_in_transaction(engine, store)


def _registry_errors(
    session: Session, rows: list[dict[str, Any]], pseudos: list[str], patients: dict[str, Patient], create: bool
) -> list[dict[str, Any]]:
    """Errors only the registry can tell: unknown centers and patients, an injury after the patient's first scan."""
    errors: list[dict[str, Any]] = []
    known_centers = set(session.scalars(select(Center.code)))
    if not create:
        for row, pseudo in zip(rows, pseudos, strict=True):
            if row["center"] not in known_centers:
                known = ", ".join(sorted(known_centers)) or "none yet"
                errors.append({"row": row["row"], "column": "center", "value": row["center"],
                               "rule": f"unknown center (known: {known}); a typo? Give --create to add a new center"})
            elif pseudo not in patients:
                errors.append({"row": row["row"], "column": "patient_id", "value": row["patient_id"],
                               "rule": f"no such patient at center {row['center']} (no images ingested yet, or a "
                                       "typo?); give --create to add the patient"})
    first_scans = _first_scan_times(session, [p.id for p in patients.values()])
    for row, pseudo in zip(rows, pseudos, strict=True):
        injury, patient = row.get("injury_datetime"), patients.get(pseudo)
        first = first_scans.get(patient.id) if patient is not None else None
        if injury is not None and first is not None and injury > first:
            errors.append({"row": row["row"], "column": "injury_datetime", "value": injury.isoformat(),
                           "rule": f"an injury before the patient's first CT ({first:%Y-%m-%d %H:%M})"})
    return errors


def _first_scan_times(session: Session, patient_ids: list[int]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for start in range(0, len(patient_ids), 900):
        chunk = patient_ids[start : start + 900]
        found.update(session.execute(
            select(Study.patient_id, func.min(Series.acquisition_datetime))
            .join(Series, Series.study_id == Study.id)
            .where(Study.patient_id.in_(chunk), Series.acquisition_datetime.is_not(None))
            .group_by(Study.patient_id)).all())
    return found


def write_rejects(path: Path, raw: pd.DataFrame, checked: ValidatedTable) -> Path:
    """The invalid rows as they were, with their line number and errors, to `<stem>.rejects.csv`."""
    target = path.with_name(f"{path.stem}.rejects.csv")
    lines = checked.invalid_rows
    rejects = raw.iloc[[line - 2 for line in lines]].copy()
    rejects.insert(0, "line", lines)
    rejects["errors"] = [_errors_of_line(checked, line) for line in lines]
    write_csv(rejects, target)
    return target


def _errors_of_line(checked: ValidatedTable, line: int, *, described: bool = False) -> str:
    """One line's errors; `described`: each value by its kind (`registry.deid.stored_names.value_kind`), not copied.

    The registry gets the described form (a rejected cell may hold a name, a birth date, a phone
    number); the operator's own `.rejects.csv` keeps the values, beside the file they came from.
    """
    errors = checked.errors[checked.errors["row"] == line]
    if described:
        return "; ".join(f"{e.column} ({value_kind(e.value)}): {e.rule}" for e in errors.itertuples())
    return "; ".join(f"{e.column}={e.value!r}: {e.rule}" for e in errors.itertuples())


def _patients_by_pseudo(session: Session, pseudos: list[str]) -> list[Patient]:
    found: list[Patient] = []
    for start in range(0, len(pseudos), 900):
        found.extend(session.scalars(select(Patient).where(Patient.pseudo_id.in_(pseudos[start : start + 900]))))
    return found


def _db_value(field_name: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if field_name in BOOL_FIELDS:
        return bool(value)
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value
