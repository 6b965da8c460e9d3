"""Cox proportional hazards for time to death (lifelines CoxPHFitter), with the PH check."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import proportional_hazard_test

from prognosis.coefficients import CoefficientModel
from prognosis.design import check_complete, design_matrix, spline_knots_for

# lifelines' ridge penalizer of the fallback fit when the unpenalized one does not converge.
FALLBACK_PENALIZER = 0.1


class CoxModel(CoefficientModel):
    """Cox model of `duration` (days to death or censoring) and `event` (died) on named terms.

    `penalizer` is lifelines' (0 for the plain partial likelihood). Hazard ratios with Wald CIs.
    """

    ratio_name = "hazard_ratio"

    def __init__(self, terms: Sequence[str], duration: str = "days_to_death_or_censor", event: str = "died",
                 age_spline_knots: int | None = None, penalizer: float = 0.0, alpha: float = 0.05) -> None:
        self.terms = list(terms)
        self.duration = duration
        self.event = event
        self.age_spline_knots = age_spline_knots
        self.penalizer = penalizer
        self.alpha = alpha

    def design(self, df: pd.DataFrame) -> pd.DataFrame:
        return design_matrix(df, self.terms, getattr(self, "knots_", None), "CoxModel")

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        frame = self.design(df).copy()
        frame["_T"] = df[self.duration].astype(float)
        frame["_E"] = df[self.event].astype(float)
        return frame

    def fit(self, df: pd.DataFrame) -> CoxModel:
        check_complete(df, [self.duration, self.event], "CoxModel outcome")
        if (df[self.duration] <= 0).any():
            row = df.index[(df[self.duration] <= 0).to_numpy()][0]
            raise ValueError(f"CoxModel: {self.duration!r} must be > 0 (row {row!r})")
        self.knots_ = spline_knots_for(df, self.terms, self.age_spline_knots)
        frame = self._frame(df)
        self.estimation_ = {"method": "maximum likelihood" if not self.penalizer else "ridge",
                            "penalty": self.penalizer}
        try:
            self.fitter_ = CoxPHFitter(penalizer=self.penalizer, alpha=self.alpha).fit(frame, "_T", "_E")
        except ConvergenceError as exc:
            if self.penalizer >= FALLBACK_PENALIZER:
                raise
            # A small sample can leave a term without variation or separate the deaths: the partial
            # likelihood then has no maximum. lifelines' own ridge penalizer gives finite estimates.
            flat = [c for c in frame.columns[:-2] if frame[c].nunique() < 2]
            self.fitter_ = CoxPHFitter(penalizer=FALLBACK_PENALIZER, alpha=self.alpha).fit(frame, "_T", "_E")
            self.estimation_ = {"method": "ridge", "penalty": FALLBACK_PENALIZER, "terms": flat,
                                "reason": f"the partial likelihood did not converge ({str(exc).splitlines()[0]})"}
        self._set_coefficients(self.fitter_.params_.rename(None), self.fitter_.variance_matrix_)
        self.concordance_ = float(self.fitter_.concordance_index_)
        self.n_ = int(len(frame))
        self.n_events_ = int(frame["_E"].sum())
        self._train_frame = frame
        return self

    def risk_score(self, df: pd.DataFrame) -> np.ndarray:
        """The linear predictor (log partial hazard, higher = earlier death)."""
        self._check_fitted()
        return self.design(df).to_numpy() @ self.params_.to_numpy()

    def predict_survival(self, df: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
        """Survival probabilities at `times` (rows) for each patient (columns), Breslow baseline."""
        self._check_fitted()
        return self.fitter_.predict_survival_function(self.design(df), times=list(times))

    def proportional_hazards_test(self) -> pd.DataFrame:
        """Schoenfeld-residual test per term (rank time transform): statistic and p; small p = PH doubtful."""
        self._check_fitted()
        result = proportional_hazard_test(self.fitter_, self._train_frame, time_transform="rank")
        table = result.summary[["test_statistic", "p"]].copy()
        table.index = [i[0] if isinstance(i, tuple) else i for i in table.index]
        table.index.name = "term"
        return table
