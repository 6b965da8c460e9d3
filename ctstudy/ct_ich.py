"""Real head-CT slices of the CT-ICH dataset as DICOM series: the demo's small "real" center.

The 36 slices in `ctstudy/data/ct_ich/` come from CT-ICH (Hssayeni et al., "Intracranial
hemorrhage segmentation using a deep convolutional model", Data 2020, PhysioNet, CC BY 4.0),
through the Apache-2.0 repository sarah-antillia/TensorFlow-FlexUNet-Image-Segmentation-Brain-
Intracranial-Hemorrhage. They are JPG images in the brain window, not DICOM, so this converter
writes what is known and says what is assumed, in the files themselves:

- the stored pixel value is the JPG grey level (0-255), and RescaleSlope/Intercept map it to
  HU ≈ grey / 255 x 120 - 20 (window level 40, width 120): everything outside -20..100 HU was
  clipped by the JPG export and stays clipped;
- PixelSpacing 0.36 mm (not kept by the export; a fair guess for a 650-pixel head CT field of
  view) and 5 mm slices at position slice number x 5 mm; axial orientation;
- ImageComments and DerivationDescription say all of this, and the series is marked DERIVED.

The patients are pseudonymous (CT-ICH numbers them); their IDs here are `CTICH-<number>`.
Masks (orange = hemorrhage of any type) are read into binary arrays on the same grid.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_ROOT_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from vocabulary.labels import EAH, IPH, IVH, UNANNOTATED

CT_ICH_DIR = Path(__file__).parent / "data" / "ct_ich"
WINDOW_LOW_HU, WINDOW_WIDTH_HU = -20.0, 120.0
ASSUMED_PIXEL_SPACING_MM = 0.36
SLICE_STEP_MM = 5.0
ATTRIBUTION = ("CT-ICH (Hssayeni et al., Data 2020; PhysioNet; CC BY 4.0), via sarah-antillia/"
               "TensorFlow-FlexUNet-Image-Segmentation-Brain-Intracranial-Hemorrhage (Apache-2.0)")
# The two stacks of contiguous slices (5 mm apart): a subdural and an epidural hematoma.
DEMO_STACKS = ((81, range(13, 28)), (78, range(11, 18)))


@dataclass(frozen=True)
class CtIchSlice:
    file: str
    patient: int
    slice: int
    types: tuple[str, ...]


def slice_index(folder: Path = CT_ICH_DIR) -> list[CtIchSlice]:
    """Every slice of the folder's slice_index.json, by patient then slice number."""
    rows = json.loads((folder / "slice_index.json").read_text())
    slices = [CtIchSlice(r["file"], int(r["patient"]), int(r["slice"]), tuple(r["types"])) for r in rows]
    return sorted(slices, key=lambda s: (s.patient, s.slice))


def patient_slices(patient: int, numbers: range | None = None, folder: Path = CT_ICH_DIR) -> list[CtIchSlice]:
    chosen = [s for s in slice_index(folder) if s.patient == patient and (numbers is None or s.slice in numbers)]
    if not chosen:
        raise LookupError(f"{folder}: no CT-ICH slices of patient {patient}"
                          + (f" numbered {numbers.start}-{numbers.stop - 1}" if numbers else ""))
    return chosen


def grey_image(path: Path) -> np.ndarray:
    """A JPG slice as (rows, columns) uint8 grey levels (the export wrote equal R, G, B)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def hemorrhage_mask(path: Path) -> np.ndarray:
    """A PNG mask as (rows, columns) bool: the orange hemorrhage colour (R ~ 210, G ~ 80, B < 80)."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    return (rgb[..., 0] > 150) & (rgb[..., 1] > 40) & (rgb[..., 1] < 130) & (rgb[..., 2] < 80)


def hu_of_grey(grey: np.ndarray) -> np.ndarray:
    return grey.astype(np.float32) / 255.0 * WINDOW_WIDTH_HU + WINDOW_LOW_HU


def truth_masks(slices: list[CtIchSlice], folder: Path = CT_ICH_DIR) -> np.ndarray:
    """(z, y, x) bool hemorrhage masks of `slices`, in the order given (slice number order)."""
    return np.stack([hemorrhage_mask(folder / "masks" / (Path(s.file).stem + ".png")) for s in slices])


# A slice's hemorrhage type (hemorrhage_diagnosis.csv) as a class of the label map; subarachnoid has none.
TYPE_CLASS = {"Epidural": EAH, "Subdural": EAH, "Intraparenchymal": IPH, "Intraventricular": IVH}


def class_labels(slices: list[CtIchSlice], folder: Path = CT_ICH_DIR) -> np.ndarray:
    """(z, y, x) uint8 truth in the label map: each slice's hemorrhage as the class its type names, and
    `UNANNOTATED` where the slice holds several types or subarachnoid blood (the masks do not tell them apart)."""
    blood = truth_masks(slices, folder)
    labels = np.zeros(blood.shape, np.uint8)
    for k, s in enumerate(slices):
        kinds = {TYPE_CLASS.get(t, UNANNOTATED) for t in s.types if t in TYPE_CLASS or t == "Subarachnoid"}
        labels[k][blood[k]] = kinds.pop() if len(kinds) == 1 else UNANNOTATED
    return labels


def _uid(*parts: object) -> str:
    return generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=["ct-ich", *map(str, parts)])


def series_uid(slices: list[CtIchSlice]) -> str:
    """The SeriesInstanceUID `write_series` gives these slices (deterministic: re-running adds nothing)."""
    return _uid(slices[0].patient, "series", f"{slices[0].slice}-{slices[-1].slice}")


def write_series(slices: list[CtIchSlice], out_dir: Path, *, folder: Path = CT_ICH_DIR,
                 institution: str = "CT-ICH (PhysioNet)") -> list[Path]:
    """Write `slices` (one patient) as one CT series of DICOM files under `out_dir`; returns the files."""
    patients = {s.patient for s in slices}
    if len(patients) != 1:
        raise ValueError(f"one series holds one patient's slices, got patients {sorted(patients)}")
    patient = patients.pop()
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = f"{slices[0].slice}-{slices[-1].slice}"
    study_uid, frame_uid, uid = _uid(patient, "study"), _uid(patient, "frame"), series_uid(slices)
    when = dt.datetime(2020, 1, 1, 12, 0)  # the dataset carries no dates; a fixed, obviously nominal one
    paths = []
    for s in slices:
        grey = grey_image(folder / "images" / s.file)
        rows, cols = grey.shape
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = _uid(patient, "slice", s.slice)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.Modality = "CT"
        ds.PatientID = f"CTICH-{patient:03d}"
        ds.PatientName = ds.PatientID
        ds.PatientSex = ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, uid, frame_uid
        ds.StudyDate = ds.SeriesDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = when.strftime("%H%M%S")
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, s.slice
        ds.AccessionNumber = ds.ReferringPhysicianName = ""
        ds.InstitutionName = institution
        ds.Manufacturer = "unknown (converted from JPG)"
        ds.StudyDescription = "CT HEAD"
        ds.SeriesDescription = f"CT-ICH patient {patient} slices {numbers} (converted from JPG)"
        ds.BodyPartExamined = "HEAD"
        ds.DerivationDescription = ("Converted from a CT-ICH brain-window JPG: HU approximated as grey/255*120-20 "
                                    "(clipped to -20..100 HU); pixel spacing assumed")
        ds.ImageComments = f"Source: {ATTRIBUTION}. Pixel spacing 0.36 mm and 5 mm slice step are assumptions."
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [-cols * ASSUMED_PIXEL_SPACING_MM / 2, -rows * ASSUMED_PIXEL_SPACING_MM / 2,
                                   s.slice * SLICE_STEP_MM]
        ds.PixelSpacing = [ASSUMED_PIXEL_SPACING_MM, ASSUMED_PIXEL_SPACING_MM]
        ds.SliceThickness = SLICE_STEP_MM
        ds.SliceLocation = s.slice * SLICE_STEP_MM
        ds.KVP = ""
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 8, 7, 0
        ds.RescaleSlope = f"{WINDOW_WIDTH_HU / 255.0:.8f}"
        ds.RescaleIntercept = f"{WINDOW_LOW_HU:g}"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 120
        ds.PixelData = grey.astype(np.uint16).tobytes()
        path = out_dir / f"{s.slice:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_demo_center(out_dir: Path, folder: Path = CT_ICH_DIR) -> list[Path]:
    """The two contiguous stacks (patients 81 and 78) as DICOM series under `out_dir/<patient>/`."""
    files = []
    for patient, numbers in DEMO_STACKS:
        files += write_series(patient_slices(patient, numbers, folder), out_dir / f"ctich-{patient:03d}", folder=folder)
    return files
