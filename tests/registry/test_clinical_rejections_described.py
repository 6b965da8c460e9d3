"""Rejected CSV cells are described by kind in the registry, never copied; a title row above the header is named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from registry.clinical.csv_import import import_table
from registry.clinical.csv_validation import expected_columns
from registry.clinical.table_reading import TableReadError
from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, IngestRun, Rejection
from registry.deid.stored_names import value_kind
from registry.home import Home

ROW = "2024-03-05T20:00,63,M,9,5,0,0,0,7.1,13.2,2,1,0,0"
REJECTED = "Rossi Mario 1961-03-12 +39 333 1234567"


def test_rejected_values_are_stored_by_kind(home: Home, tmp_path: Path) -> None:
    path = tmp_path / "clinical_Rossi.csv"
    path.write_text(",".join(expected_columns("clinical")) + "\n"
                    f"IT064,IT064-0001,{ROW}\n"
                    f"IT064,{REJECTED},{ROW}\n"
                    f"IT064,IT064-0002,{ROW.replace(',63,', ',Bianchi,')}\n")
    engine = make_engine(home.db_url)
    report = import_table(engine, home, path, "clinical", skip_invalid=True, create=True)
    assert report.created == 1 and report.invalid_rows == 2
    with session_scope(engine) as s:
        stored = {r.path.rsplit(":", 1)[1]: r.detail for r in s.scalars(select(Rejection))}
        texts = [str(r.source) for r in s.scalars(select(IngestRun))]
        texts += [str(e.after) for e in s.scalars(select(AuditEvent))]
    assert stored["3"].startswith(f"patient_id ({len(REJECTED)} characters: letters, digits, spaces, other symbols)")
    assert stored["4"].startswith("age (7 characters: letters):")
    for text in [*stored.values(), *texts]:
        assert not any(piece in text for piece in ("Rossi", "1234567", "1961", "Bianchi", str(tmp_path))), text
    # The operator's own rejects file, beside theirs, keeps the rows as they were.
    assert REJECTED in (tmp_path / "clinical_Rossi.rejects.csv").read_text()
    engine.dispose()


@pytest.mark.parametrize(("value", "kind"), [
    ("", "empty"), ("7", "1 character: digits"), ("Rossi^Mario", "11 characters: letters, other symbols"),
])
def test_value_kind_names_length_and_character_classes(value: str, kind: str) -> None:
    assert value_kind(value) == kind


def test_title_row_above_the_header_is_pointed_at(home: Home, tmp_path: Path) -> None:
    columns = expected_columns("clinical")
    rows = [["Clinical data, center IT064", *[None] * (len(columns) - 1)], [None] * len(columns), columns,
            ["IT064", "IT064-0001", *ROW.split(",")]]
    path = tmp_path / "clinical.xlsx"
    pd.DataFrame(rows).to_excel(path, header=False, index=False)
    engine = make_engine(home.db_url)
    with pytest.raises(TableReadError, match=r"column names are on row 3, not on row 1; rows 1 to 2 above them"):
        import_table(engine, home, path, "clinical", create=True)
    engine.dispose()
