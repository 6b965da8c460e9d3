"""Every page as every role, read the way a person reads it: no machine name (snake_case) anywhere in the
text, tables, widgets or chart labels, and no table cell left to show as "None"."""

from __future__ import annotations

from collections.abc import Iterator

import dashboard_registry_factory as small_registry
import pytest
import streamlit as st
from dashboard_apptest import ADMIN, COORD1, COORD2, INV, PAGES, STAT, page
from dashboard_visible_text import CODE_WORD, code_words, none_cells, visible_text
from streamlit.testing.v1 import AppTest

from registry.db.engine import upgrade
from registry.home import Home

ROLES = {"admin": ADMIN, "coordinator IT01": COORD1, "coordinator IT02": COORD2, "statistician": STAT,
         "investigator": INV}
PAGE_FILES = sorted(p.name for p in PAGES.glob("*.py"))


@pytest.fixture(scope="module")
def tour_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """One small registry for the whole tour (the pages only read it)."""
    home = Home.resolve(tmp_path_factory.mktemp("tour") / "home")
    home.ensure()
    upgrade(home.db_url)
    small_registry.build(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CTSTUDY_HOME", str(home.root))
        mp.setenv("CTSTUDY_DB_URL", home.db_url)
        st.cache_data.clear()
        st.cache_resource.clear()
        yield home


def test_the_tour_covers_every_page_of_the_app() -> None:
    app = (PAGES.parent / "app.py").read_text()
    assert len(PAGE_FILES) >= 7 and all(f"pages/{name}" in app for name in PAGE_FILES)


def test_code_word_pattern_finds_machine_names_and_passes_words() -> None:
    assert [m.group() for m in CODE_WORD.finditer("Survival by hematoma_ml, auto_failed; QC (Q1) 0.5 mL")] == [
        "hematoma_ml", "auto_failed"]
    assert not CODE_WORD.search("Hematoma volume (mL) · `ctstudy imaging segment --all` · day 2.5 · pA1aaaa")


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("name", PAGE_FILES)
def test_page_reads_in_words(tour_home: Home, name: str, role: str) -> None:
    at = page(name, ROLES[role])
    assert not at.exception, at.exception
    texts = list(visible_text(at))
    assert len(texts) >= 2 and texts[0][0] == "title"  # the page was read, not skipped
    assert code_words(at) == []
    assert none_cells(at) == []


def _case_without_injury_time(at: AppTest) -> None:
    at.selectbox(key="case_patient").set_value("pC1ccccccccccccc").run()


def _case_manual_mask(at: AppTest) -> None:
    uid = at.selectbox(key="case_series_pA1aaaaaaaaaaaaa").value
    at.radio(key=f"case_mask_{uid}").set_value("manual").run()


def _biomarker_traced_all_scans(at: AppTest) -> None:
    at.radio(key="bio_scans").set_value("all")
    at.radio(key="bio_outcome").set_value("unfavourable").run()
    at.selectbox(key="bio_trace_hematoma_ml").set_value(0).run()


def _fit_traced(at: AppTest) -> None:
    fit_id = at.selectbox(key="om_fit").value
    at.selectbox(key=f"om_trace_{fit_id}_adm_hematoma_ml").set_value(0).run()


def _qc_auto_failed_series(at: AppTest) -> None:
    series = at.selectbox(key="qc_series")
    series.select_index(next(i for i, o in enumerate(series.options) if "Failed automatic checks" in o)).run()


def _risk_of_a_registry_patient(at: AppTest) -> None:
    at.radio(key="risk_source").set_value("patient").run()


STATES = {"case viewer, no injury time": ("3_Case_viewer.py", _case_without_injury_time),
          "case viewer, manual mask": ("3_Case_viewer.py", _case_manual_mask),
          "biomarkers, all scans, a value traced": ("4_Biomarkers.py", _biomarker_traced_all_scans),
          "outcome models, a value traced": ("5_Outcome_models.py", _fit_traced),
          "quality control, an auto-failed series": ("2_Quality_control.py", _qc_auto_failed_series),
          "risk calculator, a registry patient": ("6_Risk_calculator.py", _risk_of_a_registry_patient)}


@pytest.mark.parametrize("state", list(STATES))
def test_page_after_choices_reads_in_words(tour_home: Home, state: str) -> None:
    name, act = STATES[state]
    at = page(name, STAT)
    act(at)
    assert not at.exception, at.exception
    assert code_words(at) == []
    assert none_cells(at) == []
