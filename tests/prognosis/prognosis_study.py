"""Helpers of the prognosis tests: analysis tables and oracle of a synthetic study (synthetic.outcomes)."""

from __future__ import annotations

import pandas as pd

from prognosis.analysis_table import build_analysis_table
from synthetic.outcomes import TabularStudy

SEED = 20240


def complete_table(study: TabularStudy) -> pd.DataFrame:
    """Analysis table from the pre-missingness clinical values (what the outcomes were drawn from)."""
    return build_analysis_table(study.clinical_complete, study.outcomes, study.patient_level)


def observed_table(study: TabularStudy) -> pd.DataFrame:
    """Analysis table from clinical.csv as sent (with missing values)."""
    return build_analysis_table(study.clinical, study.outcomes, study.patient_level)


def oracle(study: TabularStudy, table: pd.DataFrame) -> pd.DataFrame:
    """The generator's true probabilities aligned to the rows of `table`."""
    return table[["center", "patient_id"]].merge(study.truth, on=["center", "patient_id"], how="left")
