"""The biomarker export: rounded numbers, a codebook beside it, and which model made each mask (mixed ones named)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from biomarkers.export_table import round_significant, rounded_table
from biomarkers.provenance import mask_model, mixed_models_notice, model_mix
from biomarkers.series import DEFINITIONS_VERSION
from ctstudy.cli import app
from registry.db.engine import session_scope
from registry.db.models import Center, Patient, SegmentationRun, Series, SeriesFeatures, Study


def test_numbers_keep_six_significant_digits_and_print_without_binary_noise() -> None:
    values = np.array([0.6045839999999999, 1234567.891, -0.000123456789, 0.0, np.nan, 12.0, 2.5e-9])
    rounded = round_significant(values)
    assert [repr(float(v)) for v in rounded[:3]] == ["0.604584", "1234570.0", "-0.000123457"]
    assert rounded[3] == 0.0 and np.isnan(rounded[4]) and rounded[5] == 12.0 and rounded[6] == 2.5e-9
    table = rounded_table(pd.DataFrame({"hematoma_ml": [0.6045839999999999], "lesion_count": [3], "center": ["X"]}))
    assert table.to_csv(index=False).splitlines()[1] == "0.604584,3,X"


def test_mask_models_are_named_and_a_mix_is_said() -> None:
    assert mask_model("segmentation", "phantom", "0123456789abcdef") == "phantom 0123456789ab"
    assert mask_model("manual") == "manual annotation" and mask_model("segmentation") == "segmentation (model unknown)"
    one = pd.DataFrame({"mask_model": ["phantom 0123"] * 3})
    assert mixed_models_notice(one) == ""
    mixed = pd.DataFrame({"mask_model": ["phantom 0123", "blast-ct 9999", "phantom 0123"]})
    assert model_mix(mixed).values.tolist() == [["phantom 0123", 2], ["blast-ct 9999", 1]]
    notice = mixed_models_notice(mixed)
    assert "2 different models" in notice and "phantom 0123 (2 series)" in notice
    assert "blast-ct 9999 (1 series)" in notice


def test_export_names_each_series_model_warns_of_the_mix_and_writes_the_codebook(home, engine, tmp_path) -> None:
    with session_scope(engine) as s:
        center = Center(code="IT01")
        for k, (model, volume) in enumerate((("phantom", 0.6045839999999999), ("blast-ct", 3.3000000000000003))):
            patient = Patient(pseudo_id=f"p{k}", center=center)
            series = Series(series_instance_uid=f"1.2.3.{k}", modality="CT", days_from_injury=0.5,
                            study=Study(study_instance_uid=f"1.2.3.{k}.0", patient=patient))
            s.add(series)
            s.flush()
            run = SegmentationRun(series_id=series.id, model_name=model, model_version=f"{k}" * 16, status="done",
                                  mask_path=f"/masks/{k}.nii.gz")
            s.add(run)
            s.flush()
            s.add(SeriesFeatures(series_id=series.id, source="segmentation", definitions_version=DEFINITIONS_VERSION,
                                 segmentation_run_id=run.id, mask_sha256="0" * 64,
                                 values={"hematoma_ml": volume, "edema_ml": 1.0, "lesion_count": 1,
                                         "midline_shift_mm": 0.0, "largest_lesion_left": 1.0}))
    out = tmp_path / "bio.csv"
    result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "biomarkers", "export",
                                      str(out)])
    assert result.exit_code == 0, result.output
    assert "mixed models" in result.output and "2 different models" in result.output
    table = pd.read_csv(out, dtype=str)
    assert table.set_index("series_instance_uid")["mask_model"].to_dict() == {
        "1.2.3.0": "phantom 000000000000", "1.2.3.1": "blast-ct 111111111111"}
    assert set(table["hematoma_ml"]) == {"0.604584", "3.3"}
    codebook = pd.read_csv(tmp_path / "bio.dictionary.csv")
    assert codebook["name"].tolist() == table.columns.tolist()
    described = codebook.set_index("name")
    assert described.loc["hematoma_ml", "unit"] == "mL" and "not directly comparable" in described.loc[
        "mask_model", "definition"]
    per_patient = tmp_path / "patients.csv"
    result = CliRunner().invoke(app, ["--home", str(home.root), "--db-url", home.db_url, "biomarkers", "export",
                                      str(per_patient), "--per-patient"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(per_patient).set_index("patient_id")["mask_models"].to_dict() == {
        "p0": "phantom 000000000000", "p1": "blast-ct 111111111111"}
