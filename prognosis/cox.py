"""Cox proportional hazards for time to death (lifelines CoxPHFitter), with the PH test of R's cox.zph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError

from prognosis.coefficients import CoefficientModel
from prognosis.design import check_complete, design_matrix, spline_knots_for
from prognosis.ph_test import cox_zph, term_groups

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
        self.baseline_ = breslow_baseline(frame["_T"].to_numpy(), frame["_E"].to_numpy(),
                                          frame.drop(columns=["_T", "_E"]).to_numpy() @ self.params_.to_numpy())
        return self

    def _pool_extra(self, fits: list[CoefficientModel]) -> None:
        """The baseline cumulative hazard recomputed for the pooled coefficients (Breslow on each
        imputed data set, then averaged over them at the union of event times), so that pooled
        survival predictions match the pooled hazard ratios."""
        super()._pool_extra(fits)
        beta = self.params_.to_numpy()
        curves = []
        for f in fits:
            frame = f._train_frame
            curves.append(breslow_baseline(frame["_T"].to_numpy(), frame["_E"].to_numpy(),
                                           frame.drop(columns=["_T", "_E"]).to_numpy() @ beta))
        times = np.unique(np.concatenate([c.index.to_numpy() for c in curves]))
        self.baseline_ = pd.Series(np.mean([c.reindex(times, method="ffill").fillna(0.0).to_numpy()
                                            for c in curves], axis=0), index=times)
        self._train_frames = [f._train_frame for f in fits]

    def risk_score(self, df: pd.DataFrame) -> np.ndarray:
        """The linear predictor (log partial hazard, higher = earlier death)."""
        self._check_fitted()
        return self.design(df).to_numpy() @ self.params_.to_numpy()

    def predict_survival(self, df: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
        """Survival probabilities at `times` (rows) for each patient (columns): exp(-H0(t) exp(x'b)),
        Breslow baseline H0 of these (possibly pooled) coefficients."""
        self._check_fitted()
        h0 = self.baseline_.reindex(list(times), method="ffill").fillna(0.0).to_numpy()
        risk = np.exp(self.risk_score(df))
        return pd.DataFrame(np.exp(-h0[:, None] * risk[None, :]), index=list(times), columns=df.index)

    def _zph(self, transform: str) -> tuple[pd.DataFrame, dict[str, float]]:
        self._check_fitted()
        frame = self._train_frame
        x = frame.drop(columns=["_T", "_E"])
        return cox_zph(frame["_T"].to_numpy(), frame["_E"].to_numpy(), x.to_numpy(), self.params_.to_numpy(),
                       term_groups(list(x.columns)), transform)

    def proportional_hazards_test(self, transform: str = "km") -> pd.DataFrame:
        """R's `cox.zph` per term (`prognosis.ph_test`): test_statistic, df and p; small p = PH doubtful."""
        return self._zph(transform)[0]

    def global_ph_test(self, transform: str = "km") -> dict[str, float]:
        """R's `cox.zph` global test (Grambsch-Therneau score test on the full information matrix): statistic,
        df, p."""
        return self._zph(transform)[1]

    def to_spec(self) -> dict[str, Any]:
        """Everything needed to predict again without the data: coefficients, covariance, knots and
        the Breslow baseline cumulative hazard (thinned to at most 400 time points)."""
        self._check_fitted()
        base = self.baseline_
        if len(base) > 400:
            base = base.iloc[np.unique(np.linspace(0, len(base) - 1, 400).round().astype(int))]
        return {"model_kind": "cox", "terms": self.terms, "duration": self.duration, "event": self.event,
                "age_spline_knots": self.age_spline_knots, "knots": self.knots_, "params": self.params_.to_dict(),
                "cov": self.cov_params_.to_numpy().tolist(), "baseline_times": [float(t) for t in base.index],
                "baseline_cumhaz": [float(v) for v in base.to_numpy()], "alpha": self.alpha}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> CoxModel:
        model = cls(spec["terms"], spec["duration"], spec["event"], spec.get("age_spline_knots"),
                    alpha=spec.get("alpha", 0.05))
        model.knots_ = spec.get("knots")
        index = pd.Index(list(spec["params"]))
        model._set_coefficients(pd.Series(spec["params"], dtype=float).reindex(index),
                                pd.DataFrame(spec["cov"], index=index, columns=index))
        model.baseline_ = pd.Series(spec["baseline_cumhaz"], index=spec["baseline_times"], dtype=float)
        return model


def breslow_baseline(time: np.ndarray, event: np.ndarray, lp: np.ndarray) -> pd.Series:
    """Breslow's cumulative baseline hazard H0(t) at each distinct event time, for linear predictors
    `lp` (uncentered: S(t | x) = exp(-H0(t) exp(x'b)))."""
    risk = np.exp(lp - lp.max())  # scaled for stability, undone below
    order = np.argsort(time)
    t, e, r = time[order], event[order], risk[order]
    at_risk = np.cumsum(r[::-1])[::-1]  # sum of risk over patients with time >= t_i
    event_times = np.unique(t[e > 0])
    first = np.searchsorted(t, event_times, side="left")
    deaths = np.array([e[t == s].sum() for s in event_times])
    hazard = deaths / at_risk[first] / np.exp(lp.max())
    return pd.Series(np.cumsum(hazard), index=event_times)
