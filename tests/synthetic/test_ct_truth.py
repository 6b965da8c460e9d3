"""The synthetic truth of the CT classifications: epidural shape, cisterns, and the classes in truth/series.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthetic.phantom as P
from synthetic.centers import center_profiles
from synthetic.cohort import simulate_cohort
from synthetic.ct_classes import true_ct_classes
from synthetic.study import generate_study


def render(spec: P.SeriesSpec) -> P.RenderedSeries:
    return P.render_series(spec, P.Grid.centered(128, 230.0, 5.0), np.random.default_rng(0))


def test_true_classes_of_typical_scans() -> None:
    normal = true_ct_classes(render(P.SeriesSpec(render_cisterns=True)), tsah=False, evacuated=False)
    assert normal["basal_cisterns"] == "present"
    assert (normal["marshall_ct_class"], normal["rotterdam_ct_score"], normal["helsinki_ct_score"]) == (1, 2, 0)
    lens = P.SeriesSpec(extra_axial=P.ExtraAxial("left", 40.0, shape="lentiform"), render_cisterns=True)
    edh = true_ct_classes(render(lens), tsah=True, evacuated=False)
    assert edh["edh_ml"] > 39.0 and edh["sdh_ml"] == 0.0
    # 40 mL: a 6 mm shift (+1), cisterns compressed (+1), EDH present (0), tSAH (+1), plus 1.
    assert edh["basal_cisterns"] == "compressed"
    assert edh["marshall_ct_class"] == 6 and edh["rotterdam_ct_score"] == 4
    swollen = true_ct_classes(render(P.SeriesSpec(swelling_ml=80.0, render_cisterns=True)), tsah=False, evacuated=False)
    assert swollen["basal_cisterns"] == "absent" and swollen["marshall_ct_class"] == 3
    assert swollen["rotterdam_ct_score"] == 4 and swollen["helsinki_ct_score"] == 5


def test_true_classes_need_the_cisterns_rendered() -> None:
    with pytest.raises(ValueError, match="render_cisterns=True"):
        true_ct_classes(render(P.SeriesSpec()), tsah=False, evacuated=False)


def test_cohort_epidurals_are_lentiform_and_match_the_clinical_edh() -> None:
    cohort = simulate_cohort(200, 5, center_profiles(3))
    edh = cohort.clinical_complete.set_index("patient_id")["edh"]
    shapes = {p.patient_id: p.extra_axial_shape for p in cohort.plans if p.extra_axial_side is not None}
    assert {"lentiform", "crescentic"} <= set(shapes.values())
    assert all(edh[pid] == int(shape == "lentiform") for pid, shape in shapes.items())
    assert any(p.swelling_ml for p in cohort.plans)


def test_truth_series_csv_holds_the_classes(tmp_path) -> None:
    generate_study(tmp_path / "s", centers=2, patients=4, seed=3, matrix=128)
    series = pd.read_csv(tmp_path / "s" / "truth" / "series.csv")
    assert series["marshall_ct_class"].between(1, 6).all()
    assert series["rotterdam_ct_score"].between(1, 6).all()
    assert set(series["basal_cisterns"]) <= {"present", "compressed", "absent"}
    assert np.allclose(series["edh_ml"] + series["sdh_ml"], series["extra_axial_ml"])
