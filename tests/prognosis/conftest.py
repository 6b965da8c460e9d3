"""Fixtures of the prognosis tests: a synthetic study with a known outcome model (synthetic.outcomes)."""

from __future__ import annotations

import pytest
from prognosis_study import SEED

from synthetic.outcomes import TabularStudy, simulate_tabular


@pytest.fixture(scope="session")
def study() -> TabularStudy:
    return simulate_tabular(2500, seed=SEED)
