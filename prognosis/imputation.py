"""Missing predictors: multiple imputation by chained equations, or complete-case as a sensitivity analysis.

scikit-learn's IterativeImputer with `sample_posterior=True` draws each imputed value from the
posterior predictive of a Bayesian ridge regression on the other variables (chained equations,
van Buuren & Groothuis-Oudshoorn, J Stat Softw 2011); m independent runs give the m data sets that
Rubin's rules pool (prognosis.rubin). The outcomes are included as predictors of the imputation
model, not imputed themselves: leaving them out biases the imputed variables' effects toward zero
(Moons et al., J Clin Epidemiol 2006). Codes (GCS motor, pupils, 0/1 flags, counts) are imputed on
a continuous scale and rounded into their range; volumes are imputed on the log1p scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.experimental import enable_iterative_imputer  # noqa: F401 - registers IterativeImputer
from sklearn.impute import IterativeImputer

from prognosis.terms import CLINICAL_RAW, IMAGING_RAW, INTEGER_RANGES, design_terms

IMPUTED_COLUMNS: tuple[str, ...] = (*CLINICAL_RAW, *IMAGING_RAW)
LOG_SCALE = ("adm_hematoma_ml", "peak_edema_ml")
AUXILIARY = ("died", "unfavourable", "gos_6m", "days_to_death_or_censor")


def multiply_imputed_tables(table: pd.DataFrame, m: int = 5, seed: int = 0, max_iter: int = 10,
                            columns: tuple[str, ...] = IMPUTED_COLUMNS,
                            required: tuple[str, ...] = ()) -> list[pd.DataFrame]:
    """m copies of the analysis table with the raw predictors imputed and the design terms recomputed.

    `required` raw columns (those of the model's terms) must have observed values; other columns
    with none (e.g. imaging not yet extracted, for a clinical-only model) are left out.
    """
    if m < 1:
        raise ValueError(f"multiple imputation: m must be >= 1, got {m}")
    absent = [c for c in required if c not in table.columns or table[c].isna().all()]
    if absent:
        raise ValueError(f"multiple imputation: column(s) {absent} have no observed value "
                         "(imaging features not extracted yet? see `ctstudy biomarkers extract`)")
    cols = [c for c in columns if c in table.columns and table[c].notna().any()]
    aux = [c for c in AUXILIARY if c in table.columns]
    work = table[cols + aux].astype(float).copy()
    for c in LOG_SCALE:
        if c in work:
            work[c] = np.log1p(work[c])
    if "days_to_death_or_censor" in work:
        work["days_to_death_or_censor"] = np.log(work["days_to_death_or_censor"].clip(lower=1e-3))
    tables = []
    for i in range(m):
        # skip_complete: columns without gaps need no regression of their own (5x faster here).
        imputer = IterativeImputer(sample_posterior=True, max_iter=max_iter, random_state=seed + i, skip_complete=True,
                                   keep_empty_features=True)
        filled = pd.DataFrame(imputer.fit_transform(work), columns=work.columns, index=work.index)[cols]
        for c in LOG_SCALE:
            if c in filled:
                filled[c] = np.expm1(filled[c]).clip(lower=0)
        for c, (lo, hi) in INTEGER_RANGES.items():
            if c in filled:
                filled[c] = filled[c].round().clip(lo, hi)
        out = table.copy()
        # Observed values are kept exactly; only the gaps take imputed values.
        for c in cols:
            out[c] = table[c].astype(float).where(table[c].notna(), filled[c])
        terms = design_terms(out)
        out[terms.columns] = terms
        tables.append(out)
    return tables


def complete_case_table(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows with every listed column present (the complete-case sensitivity analysis)."""
    return table.loc[table[columns].notna().all(axis=1)].reset_index(drop=True)
