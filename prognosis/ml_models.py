"""scikit-learn comparison models with the same interface as LogisticModel (fit(df), predict_proba(df)):
an L2-penalized logistic regression on standardized terms, and histogram gradient boosting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from prognosis.design import check_complete, design_matrix


class _SklearnOutcomeModel:
    terms: list[str]
    outcome: str

    def _estimator(self) -> Pipeline | HistGradientBoostingClassifier:
        raise NotImplementedError

    def fit(self, df: pd.DataFrame) -> _SklearnOutcomeModel:
        check_complete(df, [self.outcome], f"{type(self).__name__} outcome {self.outcome!r}")
        x = design_matrix(df, self.terms, None, type(self).__name__)
        y = df[self.outcome].astype(int).to_numpy()
        self.estimator_ = self._estimator().fit(x.to_numpy(), y)
        self.n_ = int(len(y))
        self.n_events_ = int(y.sum())
        return self

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "estimator_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(df) first")
        return self.estimator_.predict_proba(design_matrix(df, self.terms, None, type(self).__name__).to_numpy())[:, 1]


class PenalizedLogisticModel(_SklearnOutcomeModel):
    """Ridge (L2) logistic regression on standardized terms; `C` is the inverse penalty strength."""

    def __init__(self, terms: Sequence[str], outcome: str = "died", C: float = 1.0) -> None:
        self.terms = list(terms)
        self.outcome = outcome
        self.C = C

    def _estimator(self) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=1000))

    @property
    def coefficients_(self) -> pd.Series:
        """Coefficients per standardized term (no CIs: penalized estimates have no simple sampling theory)."""
        return pd.Series(self.estimator_[-1].coef_[0], index=self.terms)


class GradientBoostingModel(_SklearnOutcomeModel):
    """Histogram gradient boosting with shallow trees and a fixed number of rounds (no early stopping,
    so that a cross-validation fold never tunes on its own test rows)."""

    def __init__(self, terms: Sequence[str], outcome: str = "died", max_iter: int = 150, learning_rate: float = 0.05,
                 max_depth: int = 3, random_state: int = 0) -> None:
        self.terms = list(terms)
        self.outcome = outcome
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.random_state = random_state

    def _estimator(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                              max_depth=self.max_depth, early_stopping=False,
                                              random_state=self.random_state)
