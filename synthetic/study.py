"""A whole synthetic multi-center study on disk: `generate_study(out, ...)`.

Layout (docs/data-formats.md):

    out/dicom/<CENTER>/<patient_id>/<StudyDate>_<timepoint>/<SeriesNumber>_<description>/IM0001.dcm
    out/clinical.csv   out/outcomes.csv
    out/truth/series.csv  out/truth/masks/<SeriesInstanceUID>.nii.gz  out/truth/patient_features.csv
    out/truth/patient_level.csv  out/truth/oracle.csv  out/truth/outcome_model.json  out/truth/defects.csv
    with tabular_patients > 0 (patients without images, synthetic.tabular_cohort):
    out/clinical_tabular.csv  out/outcomes_tabular.csv
    out/truth/tabular_patient_level.csv  out/truth/tabular_oracle.csv

Each scan is one study with one axial series (series number 2). With `defects=True` some studies
get extra series (localizer, a resent copy with missing slices, one with metal streaks), one
patient an MR study, and the tree a duplicate copy, a truncated file and a non-DICOM file; one
real series keeps a name and birth date in its headers; one clinical row has gcs_motor 9. Extra
defect series are not in truth/series.csv; all defects are in truth/defects.csv.

The outcomes of an image study are drawn from the features of the rendered masks (voxel counts),
those of a tabular-only study from the planned volumes: the same seed gives the same patients,
lesions and clinical data in both, and outcomes that agree except where rounding to voxels tips
a draw.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from synthetic.centers import CenterProfile, center_profiles
from synthetic.cohort import PatientPlan, simulate_cohort
from synthetic.ct_classes import true_ct_classes
from synthetic.defects import (
    DEFECT_KINDS,
    EXPECTED_REASONS,
    FAKE_IDENTITIES,
    localizer_image,
    mr_like,
    with_metal_streaks,
)
from synthetic.dicom_writer import SeriesHeader, uid, write_series
from synthetic.features import TIMEPOINT_COLUMNS, side_of, timepoint_table_from_plans
from synthetic.outcomes import TabularStudy, outcomes_for_cohort
from synthetic.phantom import Grid, RenderedSeries, render_series
from synthetic.tabular_cohort import tabular_cohort
from vocabulary.labels import HEMORRHAGE_LABELS, LESION_CLASSES, NIFTI_DESCRIPTION, NIFTI_INTENT_NAME

# One volume column per class of the label map (`iph_ml`, `eah_ml`, `edema_ml`, `ivh_ml`); `hematoma_ml`
# (= `iph_ml`, CREACTIVE's hematoma) and `extra_axial_ml` (= `eah_ml`) keep their older names.
CLASS_VOLUME_COLUMNS = tuple(f"{c.key}_ml" for c in LESION_CLASSES)

SERIES_COLUMNS = ("center", "patient_id", "study_instance_uid", "series_instance_uid", "timepoint", "days_from_injury",
                  "hematoma_ml", "edema_ml", "extra_axial_ml", *(c for c in CLASS_VOLUME_COLUMNS if c != "edema_ml"),
                  "hemorrhage_ml", "lesion_count", "side", "lesion_centroids_mm",
                  "midline_shift_mm", "basal_cisterns", "edh_ml", "sdh_ml", "tsah", "evacuated",
                  "marshall_ct_class", "rotterdam_ct_score", "helsinki_ct_score", "rows", "columns", "slices",
                  "pixel_spacing_mm", "slice_thickness_mm", "dicom_folder")
DEFECT_COLUMNS = ("kind", "center", "patient_id", "series_instance_uid", "path", "expected_reason")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class StudySummary:
    out: Path
    patients: int
    centers: int
    series: int  # axial CT series with truth
    files: int
    bytes: int
    seconds: float
    defects: int
    tabular: TabularStudy
    unscanned: TabularStudy | None = None  # the patients without images (tabular_patients > 0)

    @property
    def truth_dir(self) -> Path:
        return self.out / "truth"


def write_mask(path: Path, labels: np.ndarray, affine_lps: np.ndarray) -> None:
    """(z, y, x) labels with an LPS affine as NIfTI (axes x, y, z, RAS+ affine), like imaging.volume.write_mask.

    Duplicated here on purpose: synthetic imports no other package of the project.
    """
    ras = LPS_TO_RAS @ affine_lps
    img = nib.Nifti1Image(np.ascontiguousarray(labels.astype(np.uint8).transpose(2, 1, 0)), ras)
    img.set_qform(ras, code=1)
    img.set_sform(ras, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = NIFTI_DESCRIPTION  # which label map (vocabulary.labels), for importers
    img.header.set_intent("label", name=NIFTI_INTENT_NAME)
    nib.save(img, path)  # nibabel writes gzip with mtime 0: same labels, same bytes


def _series_row(plan: PatientPlan, t: int, r: RenderedSeries, study_uid: str, series_uid: str,
                folder: str, tsah: bool) -> tuple[dict, dict]:
    present = [les for les in r.lesions if les.volume_ml > 0]
    largest = max(present, key=lambda les: les.volume_ml) if present else None
    g = r.grid
    common = {"center": plan.center, "patient_id": plan.patient_id, "timepoint": t,
              "days_from_injury": plan.scan_days[t], "hematoma_ml": r.hematoma_ml, "edema_ml": r.edema_ml,
              "extra_axial_ml": r.extra_axial_ml, "ivh_ml": r.ivh_ml, "lesion_count": len(present),
              "side": side_of([les.side for les in present]), "midline_shift_mm": r.midline_shift_mm}
    per_class = {f"{c.key}_ml": r.class_ml(c.value) for c in LESION_CLASSES}
    series = {**common, **per_class, "hemorrhage_ml": sum(r.class_ml(v) for v in HEMORRHAGE_LABELS),
              "study_instance_uid": study_uid, "series_instance_uid": series_uid,
              "lesion_centroids_mm": json.dumps([[round(v, 2) for v in les.centroid_mm] for les in present]),
              "rows": g.rows, "columns": g.columns, "slices": g.slices,
              "pixel_spacing_mm": round(g.pixel_spacing[0], 6), "slice_thickness_mm": g.slice_thickness,
              "dicom_folder": folder, **true_ct_classes(r, tsah, plan.evacuated)}
    timepoint = {**common, "largest_lesion_left": float(largest.side == "left") if largest else np.nan}
    return series, timepoint


def _defect_hosts(plans: tuple[PatientPlan, ...], seed: int) -> dict[str, PatientPlan]:
    """Which patient carries which defect: distinct patients while there are enough."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 6]))
    order = [plans[i] for i in rng.permutation(len(plans))]
    return {kind: order[i % len(order)] for i, kind in enumerate(DEFECT_KINDS)}


def generate_study(out: Path | str, centers: int = 5, patients: int = 60, seed: int = 0, matrix: int = 256,
                   defects: bool = False, tabular_only: bool = False, progress: Progress | None = None,
                   tabular_patients: int = 0) -> StudySummary:
    """Write a synthetic study under `out` (which must not exist or be empty) and return its summary.

    `tabular_patients`: as many more patients with clinical data and outcomes but no images, in
    clinical_tabular.csv and outcomes_tabular.csv (synthetic.tabular_cohort)."""
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder (nothing was written)")
    if matrix not in (128, 256, 512):
        raise ValueError(f"--matrix must be 128, 256 or 512, not {matrix}")
    if tabular_patients < 0:
        raise ValueError(f"--tabular-patients must be 0 or more, not {tabular_patients}")
    profiles = center_profiles(centers)
    by_code = {c.code: c for c in profiles}
    cohort = simulate_cohort(patients, seed, profiles)
    truth_dir = out / "truth"
    (truth_dir / "masks").mkdir(parents=True, exist_ok=True)

    series_rows: list[dict] = []
    defect_rows: list[dict] = []
    n_series = 0
    if tabular_only:
        timepoints = timepoint_table_from_plans(cohort.plans)
    else:
        hosts = _defect_hosts(cohort.plans, seed) if defects else {}
        tp_rows: list[dict] = []
        total = sum(len(p.scan_days) for p in cohort.plans)
        done = 0
        for plan in cohort.plans:
            center = by_code[plan.center]
            sex = cohort.clinical_complete.set_index("patient_id").at[plan.patient_id, "sex"]
            tsah = bool(cohort.clinical_complete.set_index("patient_id").at[plan.patient_id, "tsah"])
            for t in range(len(plan.scan_days)):
                s_row, t_row = _render_and_write(out, plan, t, center, matrix, seed, sex, hosts, defect_rows,
                                                 tsah)
                series_rows.append(s_row)
                tp_rows.append(t_row)
                done += 1
                n_series += 1
                if progress:
                    progress(done, total, f"{plan.patient_id} scan {t}")
        timepoints = pd.DataFrame(tp_rows, columns=list(TIMEPOINT_COLUMNS))
        if defects:
            _file_level_defects(out, hosts, series_rows, defect_rows)

    tab = outcomes_for_cohort(cohort, timepoints, seed)
    clinical = tab.clinical.copy()
    # The clinical record's surgery field: the mass lesions the plans evacuate (Marshall class V in the truth).
    evacuated = {p.patient_id: int(p.evacuated) for p in cohort.plans}
    clinical["evacuated_mass_lesion"] = clinical["patient_id"].map(evacuated)
    if defects:
        host = _defect_hosts(cohort.plans, seed)["invalid_value"]
        clinical.loc[clinical["patient_id"] == host.patient_id, "gcs_motor"] = 9
        defect_rows.append({"kind": "invalid_value", "center": host.center, "patient_id": host.patient_id,
                            "series_instance_uid": "", "path": "clinical.csv",
                            "expected_reason": EXPECTED_REASONS["invalid_value"]})
    clinical.to_csv(out / "clinical.csv", index=False)
    tab.outcomes.to_csv(out / "outcomes.csv", index=False)
    timepoints.to_csv(truth_dir / "patient_features.csv", index=False, float_format="%.4f")
    tab.patient_level.to_csv(truth_dir / "patient_level.csv", index=False, float_format="%.4f")
    tab.truth.to_csv(truth_dir / "oracle.csv", index=False, float_format="%.6f")
    (truth_dir / "outcome_model.json").write_text(json.dumps(tab.model, indent=2) + "\n")
    if not tabular_only:
        # Full precision: volumes must equal voxel counts x voxel volume when read back.
        pd.DataFrame(series_rows, columns=list(SERIES_COLUMNS)).to_csv(truth_dir / "series.csv", index=False)
    pd.DataFrame(defect_rows, columns=list(DEFECT_COLUMNS)).to_csv(truth_dir / "defects.csv", index=False)
    unscanned = tabular_cohort(tabular_patients, seed, profiles) if tabular_patients else None
    if unscanned is not None:
        unscanned.clinical.to_csv(out / "clinical_tabular.csv", index=False)
        unscanned.outcomes.to_csv(out / "outcomes_tabular.csv", index=False)
        unscanned.patient_level.to_csv(truth_dir / "tabular_patient_level.csv", index=False, float_format="%.4f")
        unscanned.truth.to_csv(truth_dir / "tabular_oracle.csv", index=False, float_format="%.6f")

    files = [p for p in out.rglob("*") if p.is_file()]
    return StudySummary(out=out, patients=len(cohort.plans), centers=len(profiles), series=n_series,
                        files=len(files), bytes=sum(p.stat().st_size for p in files),
                        seconds=time.perf_counter() - t0, defects=len(defect_rows), tabular=tab, unscanned=unscanned)


def _render_and_write(out: Path, plan: PatientPlan, t: int, center: CenterProfile, matrix: int, seed: int, sex: str,
                      hosts: dict[str, PatientPlan], defect_rows: list[dict], tsah: bool) -> tuple[dict, dict]:
    spec = plan.series_spec(t, center.noise_sigma())
    grid = Grid.centered(matrix, center.fov_mm, center.slice_thickness_mm)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5, plan.patient_seed, t]))
    r = render_series(spec, grid, rng)

    when = plan.injury_datetime + dt.timedelta(days=plan.scan_days[t])
    study_uid = uid(seed, plan.patient_id, t, "study")
    series_uid = uid(seed, plan.patient_id, t, "series")
    frame_uid = uid(seed, plan.patient_id, t, "frame")
    study_dir = out / "dicom" / plan.center / plan.patient_id / f"{when:%Y%m%d}_{t}"
    desc = f"Head {center.slice_thickness_mm:g}mm {center.kernel}"
    header = SeriesHeader(patient_id=plan.patient_id, patient_sex=sex, study_instance_uid=study_uid,
                          series_instance_uid=series_uid, frame_of_reference_uid=frame_uid, study_datetime=when,
                          series_number=2, study_id=str(t + 1), series_description=desc, center=center,
                          sop_seed=str(seed))
    phi = hosts.get("phi_in_header")
    if phi is not None and phi.patient_id == plan.patient_id and t == 0:
        name, _ = FAKE_IDENTITIES[plan.patient_seed % len(FAKE_IDENTITIES)]
        header.patient_name = name
        header.extra = {"PatientBirthDate": f"{plan.injury_datetime.year - 47}0312"}
    folder = study_dir / f"2_{desc.replace(' ', '_')}"
    write_series(r.hu, grid.affine, header, folder)
    write_mask(out / "truth" / "masks" / f"{series_uid}.nii.gz", r.labels, grid.affine)
    rel = folder.relative_to(out).as_posix()
    if phi is not None and phi.patient_id == plan.patient_id and t == 0:
        defect_rows.append(_defect("phi_in_header", plan, series_uid, rel))
    if t == 0:
        _series_level_defects(out, plan, r, header, study_dir, hosts, defect_rows, seed)
    return _series_row(plan, t, r, study_uid, series_uid, rel, tsah)


def _defect(kind: str, plan: PatientPlan, series_uid: str, path: str) -> dict:
    return {"kind": kind, "center": plan.center, "patient_id": plan.patient_id, "series_instance_uid": series_uid,
            "path": path, "expected_reason": EXPECTED_REASONS[kind]}


def _series_level_defects(out: Path, plan: PatientPlan, r: RenderedSeries, header: SeriesHeader, study_dir: Path,
                          hosts: dict[str, PatientPlan], defect_rows: list[dict], seed: int) -> None:
    """Extra series in the admission study of the patients hosting image defects."""
    def is_host(kind: str) -> bool:
        return kind in hosts and hosts[kind].patient_id == plan.patient_id

    base = dict(header.__dict__)
    base.update(patient_name=None, extra={})
    if is_host("localizer"):
        img, drow, dcol = localizer_image(r.hu_clean, r.grid.spacing)
        s_uid = uid(seed, plan.patient_id, "localizer")
        # Lateral scout: rows run head to foot (-z), columns front to back (+y).
        top = r.grid.origin[2] + r.grid.slice_thickness * (r.grid.slices - 1)
        affine = np.array([[0, 0, 0, 0.0], [dcol, 0, 0, r.grid.origin[1]], [0, -drow, 0, top], [0, 0, 0, 1]])
        affine[0, 2] = 1.0  # a nominal slice axis along x, never used for a single image
        h = SeriesHeader(**{**base, "series_instance_uid": s_uid, "series_number": 1, "series_description": "Topogram",
                            "image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER"),
                            "frame_of_reference_uid": header.frame_of_reference_uid})
        folder = study_dir / "1_Topogram"
        write_series(img, affine, h, folder, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
        defect_rows.append(_defect("localizer", plan, s_uid, folder.relative_to(out).as_posix()))
    if is_host("missing_slices"):
        s_uid = uid(seed, plan.patient_id, "missing_slices")
        h = SeriesHeader(**{**base, "series_instance_uid": s_uid, "series_number": 3,
                            "series_description": header.series_description + " resent"})
        folder = study_dir / "3_resent"
        paths = write_series(r.hu, r.grid.affine, h, folder)
        mid = len(paths) // 2
        for p in paths[mid - 1: mid + 2]:  # three consecutive slices lost in transfer
            p.unlink()
        defect_rows.append(_defect("missing_slices", plan, s_uid, folder.relative_to(out).as_posix()))
    if is_host("metal_artifact"):
        s_uid = uid(seed, plan.patient_id, "metal")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        # An intracranial pressure probe through the right frontal bone, on the slices around the ventricles.
        rows, cols = r.grid.rows, r.grid.columns
        k0 = int(np.argmin(np.abs(r.grid.slice_positions()[:, 2] - 15.0)))
        z_range = (max(0, k0 - 2), min(r.grid.slices, k0 + 3))
        hu = with_metal_streaks(r.hu, r.grid.spacing, (0.35 * rows, 0.42 * cols), z_range, rng)
        h = SeriesHeader(**{**base, "series_instance_uid": s_uid, "series_number": 4,
                            "series_description": header.series_description + " ICP"})
        folder = study_dir / "4_ICP"
        write_series(hu, r.grid.affine, h, folder)
        defect_rows.append(_defect("metal_artifact", plan, s_uid, folder.relative_to(out).as_posix()))
    if is_host("not_ct"):
        s_uid = uid(seed, plan.patient_id, "mr")
        mr_study = study_dir.parent / f"{study_dir.name}_MR"
        h = SeriesHeader(**{**base, "series_instance_uid": s_uid, "series_number": 5,
                            "study_instance_uid": uid(seed, plan.patient_id, "mr-study"),
                            "frame_of_reference_uid": uid(seed, plan.patient_id, "mr-frame"),
                            "series_description": "T2 TSE AX", "modality": "MR", "study_id": "MR1",
                            "image_type": ("ORIGINAL", "PRIMARY", "M", "NORM")})
        folder = mr_study / "5_T2_TSE_AX"
        write_series(mr_like(r.hu_clean), r.grid.affine, h, folder)
        defect_rows.append(_defect("not_ct", plan, s_uid, folder.relative_to(out).as_posix()))


def _file_level_defects(out: Path, hosts: dict[str, PatientPlan], series_rows: list[dict],
                        defect_rows: list[dict]) -> None:
    """A byte-identical resent copy of a series, a truncated file, a non-DICOM file."""
    adm = {(row["patient_id"]): row for row in series_rows if row["timepoint"] == 0}
    plan = hosts["duplicate"]
    row = adm[plan.patient_id]
    src = out / row["dicom_folder"]
    dst = out / "dicom" / plan.center / plan.patient_id / "resent" / src.name
    shutil.copytree(src, dst)
    defect_rows.append(_defect("duplicate", plan, row["series_instance_uid"], dst.relative_to(out).as_posix()))

    plan = hosts["truncated"]
    row = adm[plan.patient_id]
    files = sorted((out / row["dicom_folder"]).glob("*.dcm"))
    src_file = files[len(files) // 2]
    dst_file = out / "dicom" / plan.center / plan.patient_id / "partial_transfer" / src_file.name
    dst_file.parent.mkdir(parents=True, exist_ok=True)
    data = src_file.read_bytes()
    dst_file.write_bytes(data[: int(len(data) * 0.4)])
    defect_rows.append(_defect("truncated", plan, row["series_instance_uid"], dst_file.relative_to(out).as_posix()))

    plan = hosts["not_dicom"]
    path = out / "dicom" / plan.center / plan.patient_id / "referral_letter.pdf"
    path.write_bytes(b"%PDF-1.4\n% a referral letter sent along with the images by mistake\n%%EOF\n")
    defect_rows.append(_defect("not_dicom", plan, "", path.relative_to(out).as_posix()))
