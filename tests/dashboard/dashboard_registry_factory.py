"""A small registry built with the ORM (no ingest): two centers, seven series, tiny DICOM and masks.

The counts below are what the dashboard must show; tests assert against them. Series S1 has
real files (8 slices of 32 x 32, a bright blob) and an automatic and a manual mask.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy.orm import Session

from imaging.volume import load_series, write_mask
from prognosis.logistic import LogisticModel
from prognosis.metrics import binary_metrics, calibration_curve_data, roc_curve_data
from prognosis.terms import design_terms, terms_of
from prognosis.validation import cross_validated_metrics, cross_validated_predictions
from registry.access.users import add_user
from registry.db.engine import make_engine
from registry.db.models import (
    Center,
    ClinicalRecord,
    Instance,
    ManualAnnotation,
    ModelFit,
    Outcome,
    Patient,
    QCDecision,
    SegmentationRun,
    Series,
    SeriesFeatures,
    Study,
)
from registry.home import Home

PASSWORD = "password-1"
USERS = {"coord1": ("coordinator", "IT01"), "coord2": ("coordinator", "IT02"), "stat": ("statistician", None),
         "inv": ("investigator", None), "admin": ("admin", None)}
# center -> expected Collection numbers. A follow-up counts only with a second study that has not failed QC
# (registry.collection.progress), so IT02's patient whose second scan failed has none.
EXPECTED = {
    "IT01": dict(patients=3, series=4, qc_passed=1, qc_failed=0, qc_auto_failed=1, qc_pending=2, with_clinical=2,
                 with_outcome=1, with_followup=1, series_annotated=1, series_segmented=1),
    "IT02": dict(patients=2, series=3, qc_passed=1, qc_failed=1, qc_auto_failed=0, qc_pending=1, with_clinical=2,
                 with_outcome=2, with_followup=0, series_annotated=0, series_segmented=0),
}
SHAPE_ZYX = (8, 32, 32)
VOXEL_ML = 0.7 * 0.7 * 5.0 / 1000
INJURY = dt.datetime(2024, 3, 1, 8, 0)


def _ct_volume() -> np.ndarray:
    z, y, x = np.mgrid[: SHAPE_ZYX[0], : SHAPE_ZYX[1], : SHAPE_ZYX[2]]
    head = ((y - 16) ** 2 + (x - 16) ** 2) < 14**2
    blob = ((y - 12) ** 2 + (x - 20) ** 2 + (z - 4) ** 2 * 4) < 5**2
    hu = np.where(head, 35, -1000).astype(np.int16)
    hu[blob] = 70
    return hu


def mask_zyx() -> np.ndarray:
    z, y, x = np.mgrid[: SHAPE_ZYX[0], : SHAPE_ZYX[1], : SHAPE_ZYX[2]]
    labels = np.zeros(SHAPE_ZYX, np.uint8)
    labels[((y - 12) ** 2 + (x - 20) ** 2 + (z - 4) ** 2 * 4) < 7**2] = 3  # edema (vocabulary.labels)
    labels[((y - 12) ** 2 + (x - 20) ** 2 + (z - 4) ** 2 * 4) < 5**2] = 1  # IPH
    return labels


def _write_dicom(folder: Path, series_uid: str, study_uid: str) -> list[tuple[str, Path, float]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, plane in enumerate(_ct_volume()):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{k:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.Modality, ds.PatientID = "CT", "SYNTH"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 5.0
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
        ds.PixelData = (plane.astype(np.int32) + 1024).astype(np.int16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        out.append((sop, path, 5.0 * k))
    return out


def fit_data(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """Raw predictors and a death outcome drawn from a known logistic model (imaging adds information)."""
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame({
        "age": rng.uniform(18, 85, n), "gcs_motor": rng.integers(1, 7, n), "pupils_unreactive": rng.integers(0, 3, n),
        "hypoxia": rng.integers(0, 2, n), "hypotension": rng.integers(0, 2, n), "glucose_mmol_l": rng.normal(8, 2, n),
        "hemoglobin_g_dl": rng.normal(13, 1.5, n), "adm_hematoma_ml": rng.gamma(1.5, 10, n),
        "peak_edema_ml": rng.gamma(2, 12, n), "adm_midline_shift_mm": rng.gamma(1, 3, n),
        "adm_lesion_count": rng.integers(0, 4, n), "adm_lesion_left": rng.integers(0, 2, n),
    })
    lp = -4 + 0.04 * raw["age"] + 0.8 * (raw["gcs_motor"] <= 3) + 0.6 * raw["pupils_unreactive"] \
        + 0.7 * np.log1p(raw["adm_hematoma_ml"])
    raw["died"] = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(float)
    return raw


def _json_safe(value):  # noqa: ANN001, ANN202 - any JSON-like value
    """Non-finite floats as null: PostgreSQL's JSON has no Infinity or NaN."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def model_fits() -> list[ModelFit]:
    """Two real logistic fits of death (clinical, clinical+imaging) stored the way prognosis records them, with
    their apparent metrics and cross-validated AUC."""
    raw = fit_data()
    table = pd.concat([design_terms(raw), raw[["died"]]], axis=1)
    fits = []
    for feature_set in ("clinical", "clinical+imaging"):
        model = LogisticModel(terms_of(feature_set), "died").fit(table)
        p = model.predict_proba(table)
        oof = cross_validated_predictions(lambda fs=feature_set: LogisticModel(terms_of(fs), "died"), table, "died",
                                          n_splits=5, n_repeats=1, seed=0)
        metrics = {**binary_metrics(raw["died"], p), "cv_auc": cross_validated_metrics(table["died"], oof)["cv_auc"],
                   "curves": {"roc": roc_curve_data(raw["died"], p).to_dict("records"),
                              "calibration": calibration_curve_data(raw["died"], p).to_dict("records")}}
        fits.append(ModelFit(actor="stat", outcome="mortality", feature_set=feature_set, model_kind="logistic",
                             cv=None, n_patients=len(raw), n_events=int(raw["died"].sum()), data_hash="0" * 64,
                             variables=model.terms,
                             coefficients=_json_safe(model.summary.reset_index().to_dict("records")),
                             metrics=_json_safe(metrics), spec=_json_safe({"model": model.to_spec()})))
    return fits


def build(home: Home) -> dict[str, str]:
    """Fill an initialised home's registry; returns series keys S1..S7 -> SeriesInstanceUID."""
    engine = make_engine(home.db_url)
    uids = {f"S{i}": f"1.2.826.0.1.3680043.10.999.{i}" for i in range(1, 8)}
    with Session(engine) as s, s.begin():
        it1, it2 = Center(code="IT01", name="Center one"), Center(code="IT02", name="Center two")
        s.add_all([it1, it2])

        def patient(center: Center, pid: str, clinical: dict | None, outcome: dict | None) -> Patient:
            p = Patient(pseudo_id=pid, center=center, created_at=INJURY + dt.timedelta(hours=2))
            if clinical is not None:
                p.clinical = ClinicalRecord(injury_datetime=INJURY, **clinical)
            if outcome is not None:
                p.outcome = Outcome(**outcome)
            s.add(p)
            return p

        base = dict(sex="M", gcs_total=8, hypoxia=False, hypotension=False, glucose_mmol_l=7.0,
                    hemoglobin_g_dl=13.0, marshall_ct=3, tsah=True, edh=False)
        p1a = patient(it1, "pA1aaaaaaaaaaaaa", dict(age=45, gcs_motor=4, pupils_unreactive=0, **base),
                      dict(gos_6m=1, died=True, days_to_death_or_censor=20))
        p1b = patient(it1, "pB1bbbbbbbbbbbbb", dict(age=60, gcs_motor=5, pupils_unreactive=1, **base), None)
        p1c = patient(it1, "pC1ccccccccccccc", None, None)
        p2a = patient(it2, "pA2aaaaaaaaaaaaa", dict(age=30, gcs_motor=6, pupils_unreactive=0, **base),
                      dict(gos_6m=4, died=False, days_to_death_or_censor=183))
        p2b = patient(it2, "pB2bbbbbbbbbbbbb", dict(age=70, gcs_motor=2, pupils_unreactive=2, **base),
                      dict(gos_6m=3, died=False, days_to_death_or_censor=183))

        def series(p: Patient, key: str, day: float, status: str, reasons=(), phi=()) -> Series:
            st = Study(study_instance_uid=uids[key] + ".0", patient=p,
                       study_datetime=INJURY + dt.timedelta(days=day))
            se = Series(series_instance_uid=uids[key], study=st, modality="CT", description=f"Head {key}",
                        days_from_injury=day, instance_count=8, slice_thickness=5.0, rows=32, columns=32,
                        qc_status=status, qc_reasons=list(reasons), phi_tags=list(phi),
                        ingested_at=INJURY + dt.timedelta(days=day, hours=2))
            s.add(se)
            return se

        s1 = series(p1a, "S1", 0.2, "passed")
        s2 = series(p1a, "S2", 2.5, "pending")
        series(p1b, "S3", 0.1, "auto_failed", reasons=["too_few_slices"])
        s4 = series(p1c, "S4", 0.3, "pending", phi=["PatientName"])
        s4.days_from_injury = None  # p1c has no clinical record, hence no injury time
        s5 = series(p2a, "S5", 0.2, "passed")
        s6 = series(p2a, "S6", 3.0, "failed", reasons=["motion artefact"])
        series(p2b, "S7", 0.4, "pending")
        s.flush()
        s.add(QCDecision(series_id=s6.id, status="failed", reasons=["motion artefact"], actor="coord2"))

        written = _write_dicom(home.archive_dir / "IT01" / "S1", uids["S1"], uids["S1"] + ".0")
        grid = load_series([path for _, path, _ in written]).affine
        for sop, path, z in written:
            s.add(Instance(sop_instance_uid=sop, series_id=s1.id, instance_number=int(z / 5) + 1, position_z=z,
                           file_path=str(path), sha256="0" * 64, file_size=path.stat().st_size))
        labels = mask_zyx()
        auto = write_mask(home.masks_dir / "auto" / f"{uids['S1']}.nii.gz", labels, grid)
        manual_labels = labels.copy()
        manual_labels[manual_labels == 3] = 0  # the annotator drew the hematoma only
        manual = write_mask(home.masks_dir / "manual" / f"{uids['S1']}.nii.gz", manual_labels, grid)
        run = SegmentationRun(series_id=s1.id, model_name="unet2d", model_version="v1", device="cpu", status="done",
                              mask_path=str(auto), seconds=1.0)
        ann = ManualAnnotation(series_id=s1.id, mask_path=str(manual), sha256="1" * 64, annotator="rater1")
        s.add_all([run, ann])
        s.flush()
        feats = [(s1, "segmentation", 12.5, 30.0, 11.0), (s2, "segmentation", 18.0, 45.0, 16.0),
                 (s5, "segmentation", 2.0, 6.0, 2.5), (s1, "manual", 11.0, 0.0, 11.0)]
        for se, source, hem, ede, abc2 in feats:
            s.add(SeriesFeatures(series_id=se.id, source=source, definitions_version="1",
                                 segmentation_run_id=run.id if se is s1 and source == "segmentation" else None,
                                 values={"hematoma_ml": hem, "edema_ml": ede, "abc2_ml": abc2, "lesion_count": 1,
                                         "midline_shift_mm": 2.0, "largest_lesion_left": 1.0}))
        s.add_all(model_fits())
        for username, (role, center) in USERS.items():
            add_user(s, username, role, PASSWORD, center_code=center)
    engine.dispose()
    return uids
