"""A fit made on another data snapshot than the analysis table's now is flagged, with the command that refits it."""

from __future__ import annotations

from prognosis.report import staleness_section
from prognosis.staleness import refit_command, stale_fits, stale_notice


def _fit(i: int, data_hash: str, **spec) -> dict:
    settings = {"outcome": "mortality", "model_kind": "logistic", "feature_set": "clinical", "cv": "kfold",
                "imputation": "mice", "m": 5, "n_boot": 200, "seed": 0, "age_spline_knots": None, **spec}
    return {"id": i, "outcome": settings["outcome"], "feature_set": settings["feature_set"],
            "model_kind": settings["model_kind"], "cv": settings["cv"], "data_hash": data_hash, "spec": settings}


def test_only_fits_of_another_snapshot_are_stale_and_their_refit_keeps_the_settings() -> None:
    now, before = "a" * 64, "b" * 64
    fits = [_fit(1, now), _fit(2, before, feature_set="clinical+imaging", cv="center", n_boot=100, m=3),
            _fit(3, before, outcome="unfavourable", model_kind="penalized", cv=None, age_spline_knots=4)]
    assert [f["id"] for f in stale_fits(fits, now)] == [2, 3]
    assert refit_command(fits[0]) == "ctstudy prognosis fit --outcome mortality --features clinical"
    assert refit_command(fits[1]) == ("ctstudy prognosis fit --outcome mortality --features clinical+imaging "
                                      "--cv center --m 3 --n-boot 100")
    assert refit_command(fits[2]) == ("ctstudy prognosis fit --outcome unfavourable --features clinical --cv none "
                                      "--model penalized --age-spline 4")
    notice = stale_notice(stale_fits(fits, now), now)
    assert "2 model fit(s) (#2, #3) are out of date" in notice and "bbbbbbbbbbbb" in notice
    assert "aaaaaaaaaaaa" in notice and "prognosis report" in notice
    assert stale_notice([], now) == ""


def test_report_leads_with_the_out_of_date_fits_only_when_there_are_some() -> None:
    now = "c" * 64
    fits = [_fit(7, "d" * 64, n_boot=100)]
    section = staleness_section(fits, now)
    assert "Out of date." in section and "fit #7" in section
    assert "ctstudy prognosis fit --outcome mortality --features clinical --n-boot 100" in section
    assert staleness_section([_fit(7, now)], now) == ""
    assert staleness_section(fits, None) == ""  # the current snapshot not known: nothing claimed
