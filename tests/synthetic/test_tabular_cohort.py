"""The patients without images beside the imaged study: their own IDs, deterministic, missing values, the imaged
cohort left as it was."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthetic.centers import center_profiles
from synthetic.cohort import MISSING_RATES
from synthetic.study import generate_study
from synthetic.tabular_cohort import tabular_cohort


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabular")
    with_more = generate_study(root / "a", centers=5, patients=60, seed=3, tabular_only=True, tabular_patients=1200)
    again = generate_study(root / "b", centers=5, patients=60, seed=3, tabular_only=True, tabular_patients=1200)
    alone = generate_study(root / "c", centers=5, patients=60, seed=3, tabular_only=True)
    return with_more.out, again.out, alone.out


def test_ids_never_collide_with_the_imaged_patients(studies):
    out, _, _ = studies
    imaged = pd.read_csv(out / "clinical.csv", dtype=str)
    more = pd.read_csv(out / "clinical_tabular.csv", dtype=str)
    assert len(more) == 1200 and more["patient_id"].is_unique
    assert not set(imaged["patient_id"]) & set(more["patient_id"])
    # The same (center, number) exists in both cohorts, told apart by the tag alone.
    numbers = lambda ids: {i.split("-", 1)[0] + i.split("-", 1)[1].lstrip("T") for i in ids}  # noqa: E731
    assert numbers(imaged["patient_id"]) & numbers(more["patient_id"])
    assert more["patient_id"].str.match(r"^[A-Z0-9]+-T\d{4,}$").all()
    outcomes = pd.read_csv(out / "outcomes_tabular.csv", dtype=str)
    assert set(outcomes["patient_id"]) == set(more["patient_id"])


def test_same_seed_same_files_and_the_imaged_cohort_unchanged(studies):
    a, b, alone = studies
    for name in ("clinical_tabular.csv", "outcomes_tabular.csv", "truth/tabular_oracle.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for name in ("clinical.csv", "outcomes.csv", "truth/oracle.csv"):
        assert (a / name).read_bytes() == (alone / name).read_bytes()
    other = tabular_cohort(1200, 4, center_profiles(5))
    assert not other.clinical.equals(pd.read_csv(a / "clinical_tabular.csv"))


def test_spread_over_the_centers_with_missing_values_and_plausible_outcomes(studies):
    out, _, _ = studies
    more = pd.read_csv(out / "clinical_tabular.csv")
    assert more["center"].value_counts().to_dict().keys() == {c.code for c in center_profiles(5)}
    for column, rate in MISSING_RATES.items():
        assert abs(more[column].isna().mean() - rate) < 0.04, column
    assert more[["age", "gcs_motor", "tsah", "edh"]].notna().all().all()
    outcomes = pd.read_csv(out / "outcomes_tabular.csv")
    assert 0.22 < outcomes["died"].mean() < 0.38
    assert 0.02 < outcomes["gos_6m"].isna().mean() < 0.10  # lost to follow-up
    # Drawn from the same model as the imaged patients: the generator's own probabilities say so.
    oracle = pd.read_csv(out / "truth" / "tabular_oracle.csv")
    assert abs(oracle["p_death"].mean() - outcomes["died"].mean()) < 0.05


def test_cli_writes_the_tables_and_rejects_a_negative_count(tmp_path):
    from ctstudy.cli import app

    ok = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "t"), "--patients", "20", "--tabular-only",
                                  "--tabular-patients", "150"])
    assert ok.exit_code == 0, ok.output
    assert "150 more patients without images" in ok.output
    assert len(pd.read_csv(tmp_path / "t" / "clinical_tabular.csv")) == 150
    with pytest.raises(ValueError, match="tabular-patients"):
        generate_study(tmp_path / "n", tabular_only=True, tabular_patients=-1)
