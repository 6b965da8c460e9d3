"""Fixtures for the dashboard tests: a small registry, Streamlit caches reset between tests."""

from __future__ import annotations

import dashboard_registry_factory as small_registry
import pytest
import streamlit as st

from registry.home import Home


@pytest.fixture()
def small(home: Home, monkeypatch: pytest.MonkeyPatch) -> tuple[Home, dict[str, str]]:
    """The small registry in a fresh SQLite home, which the app finds through CTSTUDY_HOME / CTSTUDY_DB_URL."""
    uids = small_registry.build(home)
    monkeypatch.setenv("CTSTUDY_HOME", str(home.root))
    monkeypatch.setenv("CTSTUDY_DB_URL", home.db_url)
    st.cache_data.clear()
    st.cache_resource.clear()
    return home, uids
