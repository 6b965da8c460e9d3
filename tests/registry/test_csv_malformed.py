"""A malformed clinical/outcome CSV corpus, on SQLite and PostgreSQL: every bad file is refused with the
row, column, value and rule, no traceback, and nothing stored before changes; good variants
(encodings, delimiters, .xlsx, case of IDs) import. Plus CSV formula injection in every CSV export.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_dicom_factory import write_series
from sqlalchemy import select
from typer.testing import CliRunner

from registry.clinical.csv_import import CSVValidationError, import_table
from registry.clinical.csv_validation import FOLLOW_UP_WINDOW_DAYS, expected_columns, validate_table
from registry.clinical.table_reading import TableReadError
from registry.csv_export import neutralized, neutralized_cell
from registry.db.engine import make_engine, session_scope
from registry.db.models import Center, ClinicalRecord, Outcome, Patient
from registry.home import Home
from registry.ingest.directory import ingest_directory

CLINICAL = ("center,patient_id,injury_datetime,age,sex,gcs_total,gcs_motor,pupils_unreactive,hypoxia,hypotension,"
            "glucose_mmol_l,hemoglobin_g_dl,marshall_ct,tsah,edh,major_extracranial_injury")
OUTCOMES = "center,patient_id,gos_6m,died,days_to_death_or_censor"
# IT064-0001 has a CT on 2024-03-06 09:30; IT064-0002 has none (created by the baseline import with --create).
P1 = "IT064,IT064-0001,2024-03-05T14:30,45,M,8,4,1,0,1,7.5,13.1,3,1,0,0"
P2 = "IT064,IT064-0002,2024-01-10T08:00,70,F,14,6,0,0,0,6.1,12.0,2,0,0,1"
O1 = "IT064,IT064-0001,3,0,180"
O2 = "IT064,IT064-0002,1,1,12.5"


def _clinical(**cells: str) -> str:
    """P1 with some cells replaced."""
    row = dict(zip(CLINICAL.split(","), P1.split(","), strict=True))
    row.update(cells)
    return ",".join(row.values())


def _outcome(**cells: str) -> str:
    row = dict(zip(OUTCOMES.split(","), O1.split(","), strict=True))
    row.update(cells)
    return ",".join(row.values())


# (case name, kind, data line, expected column, words the rule must contain)
BAD_ROWS = [
    ("excel serial date", "clinical", _clinical(injury_datetime="45356"), "injury_datetime", "Excel serial"),
    ("zero as a date", "clinical", _clinical(injury_datetime="0"), "injury_datetime", "Excel serial"),
    ("injury in 2099", "clinical", _clinical(injury_datetime="2099-01-01"), "injury_datetime", "future"),
    ("injury in 1900", "clinical", _clinical(injury_datetime="1900-01-01"), "injury_datetime", "1990-01-01"),
    ("day-first date", "clinical", _clinical(injury_datetime="5/3/2024"), "injury_datetime", "YYYY-MM-DD"),
    ("no such day", "clinical", _clinical(injury_datetime="2024-02-30"), "injury_datetime", "calendar"),
    ("injury after the first CT", "clinical", _clinical(injury_datetime="2024-03-07T10:00"), "injury_datetime",
     "first CT"),
    ("GCS 3 with motor 6", "clinical", _clinical(gcs_total="3", gcs_motor="6"), "gcs_total,gcs_motor", "motor + 2"),
    ("GCS 15 with motor 1", "clinical", _clinical(gcs_total="15", gcs_motor="1"), "gcs_total,gcs_motor",
     "motor + 9"),
    ("GCS 16", "clinical", _clinical(gcs_total="16", gcs_motor=""), "gcs_total", "between 3 and 15"),
    ("motor 4.5", "clinical", _clinical(gcs_motor="4.5"), "gcs_motor", "whole number"),
    ("age inf", "clinical", _clinical(age="inf"), "age", "finite"),
    ("age nan", "clinical", _clinical(age="nan"), "age", "finite"),
    ("age 1e308", "clinical", _clinical(age="1e308"), "age", "between 0 and 110"),
    ("decimal comma", "clinical", _clinical(glucose_mmol_l='"7,5"'), "glucose_mmol_l", "point, not a comma"),
    ("sex unknown", "clinical", _clinical(sex="X"), "sex", "M or F"),
    ("flag 2", "clinical", _clinical(hypoxia="2"), "hypoxia", "0 (no) or 1 (yes)"),
    ("center typo", "clinical", _clinical(center="IT046"), "center", "unknown center"),
    ("formula as center", "clinical", _clinical(center='"=HYPERLINK(""http://x.example"",""a"")"'), "center",
     "center code"),
    ("formula as patient", "clinical", _clinical(patient_id="@SUM(A1)"), "patient_id", "patient ID"),
    ("unknown patient", "clinical", _clinical(patient_id="IT064-0999"), "patient_id", "no such patient"),
    ("days inf", "outcomes", _outcome(days_to_death_or_censor="inf"), "days_to_death_or_censor", "finite"),
    ("days 1e308", "outcomes", _outcome(days_to_death_or_censor="1e308"), "days_to_death_or_censor", "follow-up"),
    ("5000 days", "outcomes", _outcome(days_to_death_or_censor="5000"), "days_to_death_or_censor", "follow-up"),
    ("0 days", "outcomes", _outcome(days_to_death_or_censor="0"), "days_to_death_or_censor", "more than 0"),
    ("dead but alive", "outcomes", _outcome(gos_6m="1", died="0"), "gos_6m,died", "if and only if"),
    ("alive but dead", "outcomes", _outcome(gos_6m="4", died="1"), "gos_6m,died", "if and only if"),
    ("GOS 6", "outcomes", _outcome(gos_6m="6"), "gos_6m", "GOS 1"),
]


def _write(path: Path, header: str, *rows: str, encoding: str = "utf-8") -> Path:
    path.write_bytes("\n".join([header, *rows, ""]).encode(encoding))
    return path


def _stored(engine) -> dict[str, Any]:  # noqa: ANN001
    """Everything the imports may touch, as plain values."""
    with session_scope(engine) as s:
        return {
            "centers": sorted(s.scalars(select(Center.code))),
            "patients": sorted(s.scalars(select(Patient.pseudo_id))),
            "clinical": sorted(tuple(str(getattr(r, c.name)) for c in ClinicalRecord.__table__.columns
                                     if c.name != "imported_at") for r in s.scalars(select(ClinicalRecord))),
            "outcomes": sorted(tuple(str(getattr(r, c.name)) for c in Outcome.__table__.columns
                                     if c.name != "imported_at") for r in s.scalars(select(Outcome))),
        }


@pytest.fixture()
def registry(any_home: Home, tmp_path: Path):  # noqa: ANN201
    """A registry with IT064-0001 (a CT and data) and IT064-0002 (clinical data, no CT)."""
    write_series(tmp_path / "dicom" / "IT064" / "a", "adm", patient_id="IT064-0001", acquisition="20240306093000")
    engine = make_engine(any_home.db_url)
    ingest_directory(engine, any_home, tmp_path / "dicom")
    import_table(engine, any_home, _write(tmp_path / "c0.csv", CLINICAL, P1, P2), "clinical", create=True)
    import_table(engine, any_home, _write(tmp_path / "o0.csv", OUTCOMES, O1, O2), "outcomes")
    yield any_home, engine
    engine.dispose()


def test_every_malformed_row_is_refused_with_row_column_value_rule(registry, tmp_path: Path) -> None:
    home, engine = registry
    before = _stored(engine)
    for name, kind, line, column, words in BAD_ROWS:
        header, good = (CLINICAL, P2) if kind == "clinical" else (OUTCOMES, O2)
        path = _write(tmp_path / f"{kind}.csv", header, good, line)
        with pytest.raises(CSVValidationError) as caught:
            import_table(engine, home, path, kind)
        errors = caught.value.errors
        assert list(errors["row"]) == [3], (name, errors.to_dict("records"))
        error = errors.iloc[0]
        assert error["column"] == column and words in error["rule"], (name, error.to_dict())
        assert error["value"] != "" or column == "", (name, error.to_dict())
        assert _stored(engine) == before, f"{name}: something stored changed"

        # --skip-invalid: the good row goes in, the bad one to the rejects file with its reason.
        report = import_table(engine, home, path, kind, skip_invalid=True)
        assert report.invalid_rows == 1 and report.unchanged == 1, name
        rejects = pd.read_csv(report.rejects_path, dtype=str, keep_default_na=False)
        assert list(rejects["line"]) == ["3"] and words in rejects.loc[0, "errors"], name
        assert _stored(engine) == before, f"{name}: --skip-invalid changed a stored value"


def test_the_cli_prints_the_reason_and_no_traceback(registry, tmp_path: Path) -> None:
    from ctstudy.cli import app

    home, _ = registry
    path = _write(tmp_path / "c.csv", CLINICAL, _clinical(injury_datetime="45356"), _clinical(center="IT046"))
    result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url,
                                      "registry", "import-clinical", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Excel serial" in result.output and "IT046" in result.output and "--create" in result.output
    assert "nothing imported" in result.output


def test_lower_case_ids_and_padded_codes_match_the_stored_patient(registry, tmp_path: Path) -> None:
    home, engine = registry
    before = _stored(engine)
    line = _clinical(center=" it064 ", patient_id="it064-0001 ", age="46")
    report = import_table(engine, home, _write(tmp_path / "c.csv", CLINICAL, line), "clinical")
    assert (report.updated, report.patients_new, report.centers_new) == (1, 0, 0)
    after = _stored(engine)
    assert after["patients"] == before["patients"] and after["centers"] == before["centers"]


def test_create_adds_a_new_center_and_patient_only_when_asked(registry, tmp_path: Path) -> None:
    home, engine = registry
    path = _write(tmp_path / "c.csv", CLINICAL, _clinical(center="GR001", patient_id="GR001-0001"))
    with pytest.raises(CSVValidationError):
        import_table(engine, home, path, "clinical")
    report = import_table(engine, home, path, "clinical", create=True)
    assert (report.created, report.patients_new, report.centers_new) == (1, 1, 1)
    assert "GR001" in _stored(engine)["centers"]


@pytest.mark.parametrize("variant", ["utf-16", "utf-8-sig", "semicolon", "tab", "xlsx renamed .csv", "latin-1"])
def test_encodings_delimiters_and_xlsx_are_read(registry, tmp_path: Path, variant: str) -> None:
    home, engine = registry
    changed = _clinical(age="50")
    path = tmp_path / "clinical.csv"
    if variant in ("utf-16", "utf-8-sig", "latin-1"):
        _write(path, CLINICAL, P2, changed, encoding=variant)
    elif variant in ("semicolon", "tab"):
        sep = ";" if variant == "semicolon" else "\t"
        _write(path, CLINICAL.replace(",", sep), P2.replace(",", sep), changed.replace(",", sep))
    else:
        rows = [dict(zip(CLINICAL.split(","), r.split(","), strict=True)) for r in (P2, changed)]
        pd.DataFrame(rows).to_excel(tmp_path / "book.xlsx", index=False)
        (tmp_path / "book.xlsx").rename(path)
    report = import_table(engine, home, path, "clinical")
    assert (report.updated, report.unchanged) == (1, 1), (variant, report.read_as)
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(ClinicalRecord.age))) == [50.0, 70.0]


def test_a_latin1_file_shows_its_bad_value_decoded(registry, tmp_path: Path) -> None:
    home, engine = registry
    path = _write(tmp_path / "c.csv", CLINICAL, _clinical(sex="Mé"), encoding="latin-1")
    with pytest.raises(CSVValidationError) as caught:
        import_table(engine, home, path, "clinical")
    assert caught.value.errors.iloc[0]["value"] == "Mé"  # decoded, shown as written


@pytest.mark.parametrize(("content", "words"), [
    (b"\x00\x01\x02\xff\xfe\x00binary" * 20, "not a text file"),
    (b"\xd0\xcf\x11\xe0" + b"\x00" * 100, ".xls"),
    (b"PK\x03\x04not really a zip", "not a readable .xlsx"),
    (b"   \n", "empty file"),
])
def test_unreadable_files_name_the_file_and_what_to_do(registry, tmp_path: Path, content: bytes,
                                                       words: str) -> None:
    home, engine = registry
    before = _stored(engine)
    path = tmp_path / "clinical.csv"
    path.write_bytes(content)
    with pytest.raises(TableReadError) as caught:
        import_table(engine, home, path, "clinical")
    assert str(path) in str(caught.value) and words in str(caught.value)
    assert _stored(engine) == before


def test_a_blank_cell_keeps_the_stored_value_unless_blank_clears(registry, tmp_path: Path) -> None:
    home, engine = registry
    path = _write(tmp_path / "o.csv", OUTCOMES, "IT064,IT064-0001,,,", O2)
    report = import_table(engine, home, path, "outcomes")
    assert (report.unchanged, report.blanks_kept) == (2, 3)
    with session_scope(engine) as s:
        assert s.scalars(select(Outcome.gos_6m).order_by(Outcome.gos_6m)).all() == [1, 3]
    report = import_table(engine, home, path, "outcomes", blank_clears=True)
    assert report.updated == 1
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(Outcome.gos_6m)), key=str) == [1, None]


def test_formula_cells_are_neutralized_in_every_registry_csv_export(registry, tmp_path: Path) -> None:
    from ctstudy.cli import app

    home, engine = registry
    formula = '=HYPERLINK("http://x.example","click")'
    with session_scope(engine) as s:  # a center created before codes were checked (or by a folder name)
        s.add(Center(code="@SUM(1)", name=formula))
        s.scalars(select(Center).where(Center.code == "IT064")).one().code = "+IT064"
    base = ["--home", str(home.root), "--db-url", home.db_url, "registry"]
    runner = CliRunner()
    outputs = {
        "progress": runner.invoke(app, [*base, "progress", "--format", "csv"]).output,
        "missing": runner.invoke(app, [*base, "missing", "--format", "csv"]).output,
        "missing --detail": runner.invoke(app, [*base, "missing", "--detail", "--format", "csv"]).output,
    }
    assert runner.invoke(app, [*base, "export", str(tmp_path / "patients.csv")]).exit_code == 0
    outputs["export"] = (tmp_path / "patients.csv").read_text()
    for name, text in outputs.items():
        cells = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False).to_numpy().ravel()
        assert "'+IT064" in set(cells), (name, text[:300])
        assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _number(c))], name


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_neutralized_keeps_numbers_and_escapes_every_formula_start() -> None:
    table = pd.DataFrame({"a": ["=1+1", "+1", "-1", "-x", "@A1", "\tx", "ok", None], "n": range(8)})
    out = neutralized(table)
    assert list(out["a"]) == ["'=1+1", "+1", "-1", "'-x", "'@A1", "'\tx", "ok", None]
    assert list(out["n"]) == list(range(8)) and neutralized_cell(-3) == -3


CELL = st.one_of(st.text(max_size=12), st.sampled_from(["", "0", "1", "inf", "-1", "1e308", "45356", "3", "6",
                                                         "2024-03-05", "=1+1", "IT064", "M"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({c: CELL for c in expected_columns("outcomes")}), min_size=1, max_size=5))
def test_any_outcome_cells_give_typed_rows_or_located_errors(rows: list[dict[str, str]]) -> None:
    checked = validate_table(pd.DataFrame(rows, dtype=str), "outcomes")
    lines = set(range(2, 2 + len(rows)))
    assert set(checked.errors["row"]) <= lines and set(checked.valid["row"]) <= lines
    assert not set(checked.errors["row"]) & set(checked.valid["row"])
    assert all(set(str(c).split(",")) <= set(expected_columns("outcomes")) for c in checked.errors["column"])
    for row in checked.valid.to_dict("records"):
        days, gos, died = row["days_to_death_or_censor"], row["gos_6m"], row["died"]
        assert days is None or 0 < days <= FOLLOW_UP_WINDOW_DAYS
        assert gos is None or died is None or (gos == 1) == (died == 1)
        assert json.dumps(row["center"]) and row["center"][0].isalnum()


def test_utf16_without_a_bom_is_detected(registry, tmp_path: Path) -> None:
    home, engine = registry
    path = tmp_path / "c.csv"
    path.write_bytes(codecs.encode("\n".join([CLINICAL, P2, ""]), "utf-16-le"))
    report = import_table(engine, home, path, "clinical")
    assert report.unchanged == 1 and "utf-16-le" in report.read_as
