"""A tiny study on disk: valid DICOM, masks aligned with the CT, truth consistent, defects present, deterministic."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from synthetic.centers import center_profiles
from synthetic.cohort import simulate_cohort
from synthetic.study import generate_study
from vocabulary.labels import EDEMA, LABEL_MAP, LESION_CLASSES

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def tree_sha256(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    summary = generate_study(out, centers=2, patients=4, seed=7, matrix=128, defects=True)
    return out, summary


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_every_series_file_is_valid_ct_with_consistent_geometry(study):
    out, _ = study
    series = pd.read_csv(out / "truth" / "series.csv")
    assert len(series) >= 4
    for _, row in series.iterrows():
        files = sorted((out / row["dicom_folder"]).glob("*.dcm"))
        dss = [pydicom.dcmread(f) for f in files]
        assert len(dss) == row["slices"]
        assert {ds.SeriesInstanceUID for ds in dss} == {row["series_instance_uid"]}
        assert all(ds.SOPClassUID == pydicom.uid.CTImageStorage for ds in dss)
        assert all(ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian for ds in dss)
        assert len({ds.SOPInstanceUID for ds in dss}) == len(dss)
        assert {tuple(map(float, ds.ImageOrientationPatient)) for ds in dss} == {(1, 0, 0, 0, 1, 0)}
        z = np.sort([float(ds.ImagePositionPatient[2]) for ds in dss])
        assert np.allclose(np.diff(z), row["slice_thickness_mm"])
        assert np.allclose([float(ds.PixelSpacing[0]) for ds in dss], row["pixel_spacing_mm"], atol=1e-5)
        assert {ds.PatientID for ds in dss} == {row["patient_id"]}
        assert sorted(int(ds.InstanceNumber) for ds in dss) == list(range(1, len(dss) + 1))
        assert all(ds.Manufacturer and ds.InstitutionName and ds.StudyDate for ds in dss)


def test_masks_align_with_the_ct_and_volumes_equal_voxel_counts(study):
    out, _ = study
    series = pd.read_csv(out / "truth" / "series.csv")
    with_lesion = series[series["hematoma_ml"] > 0]
    assert len(with_lesion) > 0
    for _, row in series.iterrows():
        img = nib.load(out / "truth" / "masks" / f"{row['series_instance_uid']}.nii.gz")
        labels = np.asarray(img.dataobj).transpose(2, 1, 0)  # (z, y, x)
        affine_lps = LPS_TO_RAS @ img.affine
        vv = abs(np.linalg.det(affine_lps[:3, :3])) / 1000
        assert set(np.unique(labels).tolist()) <= set(LABEL_MAP)
        for c in LESION_CLASSES:  # one volume column per class of the label map
            assert row[f"{c.key}_ml"] == pytest.approx(np.count_nonzero(labels == c.value) * vv, abs=1e-3)
        assert row["hematoma_ml"] == row["iph_ml"] and row["extra_axial_ml"] == row["eah_ml"]
        assert row["hemorrhage_ml"] == pytest.approx(row["iph_ml"] + row["eah_ml"] + row["ivh_ml"], abs=1e-6)
        dss = sorted((pydicom.dcmread(f) for f in (out / row["dicom_folder"]).glob("*.dcm")),
                     key=lambda ds: float(ds.ImagePositionPatient[2]))
        assert np.allclose(affine_lps[:3, 3], [float(v) for v in dss[0].ImagePositionPatient], atol=1e-3)
        if row["hematoma_ml"] > 0:
            hu = np.stack([_hu(ds) for ds in dss])
            # 50-90 HU before noise: with the center's noise the mean stays well inside that band.
            hem = hu[labels == 1]
            assert 50 < hem.mean() < 90 and np.median(hu[labels == EDEMA]) < 30
            # Each listed centroid is the centroid of one connected hematoma in the mask.
            listed = np.asarray(json.loads(row["lesion_centroids_mm"]))
            comp, n = ndimage.label(labels == 1)
            assert n == row["lesion_count"] == len(listed)
            for zyx in ndimage.center_of_mass(labels == 1, comp, range(1, n + 1)):
                lps = (affine_lps @ [zyx[2], zyx[1], zyx[0], 1])[:3]
                assert np.linalg.norm(listed - lps, axis=1).min() < 0.02


def test_tabular_truth_files_and_outcome_model(study):
    out, summary = study
    clinical = pd.read_csv(out / "clinical.csv")
    outcomes = pd.read_csv(out / "outcomes.csv")
    features = pd.read_csv(out / "truth" / "patient_features.csv")
    model = json.loads((out / "truth" / "outcome_model.json").read_text())
    assert len(clinical) == len(outcomes) == summary.patients == 4
    assert set(features["patient_id"]) == set(clinical["patient_id"])
    assert model["model"] == "proportional_odds" and "adm_lesion_left" in model["terms"]
    series = pd.read_csv(out / "truth" / "series.csv")
    merged = features.merge(series, on=["patient_id", "timepoint"], suffixes=("", "_s"))
    assert np.allclose(merged["hematoma_ml"], merged["hematoma_ml_s"], atol=1e-3)


def test_defects_are_present_and_listed(study):
    out, _ = study
    defects = pd.read_csv(out / "truth" / "defects.csv", keep_default_na=False)
    kinds = set(defects["kind"])
    assert kinds == {"localizer", "missing_slices", "metal_artifact", "not_ct", "phi_in_header", "duplicate",
                     "truncated", "not_dicom", "invalid_value"}
    by = defects.set_index("kind")
    loc = pydicom.dcmread(next((out / by.at["localizer", "path"]).glob("*.dcm")))
    assert "LOCALIZER" in loc.ImageType
    assert pydicom.dcmread(next((out / by.at["not_ct", "path"]).glob("*.dcm"))).Modality == "MR"
    phi = pydicom.dcmread(next((out / by.at["phi_in_header", "path"]).glob("*.dcm")))
    assert str(phi.PatientName) != phi.PatientID and phi.PatientBirthDate
    missing = sorted((out / by.at["missing_slices", "path"]).glob("*.dcm"))
    z = np.sort([float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in missing])
    assert np.diff(z).max() > 1.5 * np.median(np.diff(z))
    metal = [_hu(pydicom.dcmread(f)).max() for f in (out / by.at["metal_artifact", "path"]).glob("*.dcm")]
    assert max(metal) >= 2500
    dup = out / by.at["duplicate", "path"]
    original = out / pd.read_csv(out / "truth" / "series.csv").set_index("series_instance_uid").at[
        by.at["duplicate", "series_instance_uid"], "dicom_folder"]
    assert tree_sha256(dup) == tree_sha256(original)
    with pytest.raises(Exception):  # noqa: B017 - any pydicom error: the file is cut short
        pydicom.dcmread(out / by.at["truncated", "path"]).pixel_array  # noqa: B018
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(out / by.at["not_dicom", "path"])
    clinical = pd.read_csv(out / "clinical.csv")
    assert clinical.set_index("patient_id").at[by.at["invalid_value", "patient_id"], "gcs_motor"] == 9


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a = generate_study(tmp_path / "a", centers=1, patients=2, seed=3, matrix=128)
    b = generate_study(tmp_path / "b", centers=1, patients=2, seed=3, matrix=128)
    c = generate_study(tmp_path / "c", centers=1, patients=2, seed=4, matrix=128)
    assert tree_sha256(a.out) == tree_sha256(b.out)
    assert tree_sha256(a.out) != tree_sha256(c.out)


def test_refuses_a_non_empty_folder_and_keeps_it(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_study(tmp_path, centers=1, patients=1, tabular_only=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_tabular_only_writes_tables_without_images(tmp_path):
    from ctstudy.cli import app

    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "t"), "--patients", "300", "--centers", "3",
                                      "--tabular-only", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "300 patients in 3 centers" in result.output
    assert not (tmp_path / "t" / "dicom").exists()
    feats = pd.read_csv(tmp_path / "t" / "truth" / "patient_features.csv")
    assert feats["patient_id"].nunique() == 300
    assert set(pd.read_csv(tmp_path / "t" / "clinical.csv")["center"]) == {"IT100", "SI009", "IT064"}


def test_some_patients_have_extra_axial_and_intraventricular_blood_and_it_does_not_change_the_rest():
    """About 1 in 5 patients get each; IVH comes from a stream of its own, so the other draws are unchanged."""
    cohort = simulate_cohort(200, seed=3, centers=center_profiles(5))
    with_ivh = [p for p in cohort.plans if p.ivh_ml and p.ivh_ml[0] > 0]
    with_eah = [p for p in cohort.plans if p.extra_axial_side is not None]
    assert 0.10 < len(with_ivh) / 200 < 0.35 and 0.10 < len(with_eah) / 200 < 0.40
    # IVH clears over the follow-up scans.
    for p in with_ivh:
        assert all(b <= a for a, b in zip(p.ivh_ml, p.ivh_ml[1:], strict=False))
    spec = with_ivh[0].series_spec(0, 0.0)
    assert spec.intraventricular is not None and spec.intraventricular.volume_ml == with_ivh[0].ivh_ml[0]
    assert spec.mass_ml() == dataclasses.replace(spec, intraventricular=None).mass_ml()  # IVH adds no mass
