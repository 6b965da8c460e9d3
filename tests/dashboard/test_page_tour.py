"""Every page as every role, read the way a person reads it: no machine name (snake_case) anywhere in the
text, tables, widgets or chart labels, and no table cell left to show as "None"."""

from __future__ import annotations

from collections.abc import Iterator

import dashboard_registry_factory as small_registry
import pytest
import streamlit as st
from dashboard_apptest import ADMIN, COORD1, COORD2, INV, PAGES, STAT, page
from dashboard_visible_text import CODE_WORD, code_words, none_cells, visible_text

from registry.db import upgrade
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
    assert len(texts) > 3  # the page was read, not skipped
    assert code_words(at) == []
    assert none_cells(at) == []
