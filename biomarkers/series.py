"""All per-series imaging biomarkers from one HU volume and its hematoma/edema mask.

`series_features(hu, labels, spacing, affine)` returns `(values, lesions)`: a flat dict of scalar
features (names below) and the per-lesion table of `biomarkers.lesions`. Labels are those of
`vocabulary.labels`; "hematoma" keeps CREACTIVE's meaning, IPH (label 1), and the lesion table,
lesion count, ABC/2 and lesion sides are about hematoma lesions and their edema. The feature definitions
are versioned by `DEFINITIONS_VERSION`: change it whenever a definition or default changes, so
that stored features are recomputed (`ctstudy biomarkers extract` skips only current ones).

Scalar features:
- volumes (mL, voxel count x voxel volume): one per class, iph_ml, eah_ml, edema_ml, ivh_ml;
  hematoma_ml (= iph_ml), hemorrhage_ml (labels 1, 2, 4), total_lesion_ml (hematoma + edema),
  relative_edema
- extra-axial and intraventricular blood (biomarkers.extra_axial): eah_count, eah_largest_ml,
  eah_max_thickness_mm, eah_largest_left (1 left / 0 right / NaN none), ivh_present (0/1)
- lesions: lesion_count, largest_lesion_ml, largest_lesion_left (1 left / 0 right / NaN none),
  largest_lesion_region, side (left | right | bilateral | none, over counted lesions)
- abc2_ml: ABC/2 (Kothari) of the largest lesion, by imaging.abc2, to set against largest_lesion_ml
- midline: midline_shift_mm, midline_shift_signed_mm (+ toward the patient's left),
  midline_shift_method, midline_septum_rows, midline_plane_source, midline_normal_{x,y,z} (LPS)
- tissue volumes (mL, on the tissue grid): intracranial_ml, parenchyma_ml, ventricle_ml and their
  _left_ml/_right_ml halves, lesion_left_ml / lesion_right_ml (hematoma + edema, exact, full resolution)
- asymmetry indexes (L - R) / ((L + R) / 2): asymmetry_parenchyma, asymmetry_ventricles, asymmetry_lesion
- density (HU): parenchyma_mean_hu, hematoma_mean_hu, edema_mean_hu
- epidural / subdural (biomarkers.extra_axial_shape): edh_ml, sdh_ml, edh_count, sdh_count
- basal cisterns (biomarkers.cisterns): basal_cisterns (present | compressed | absent | unknown),
  basal_cisterns_reason, cistern_csf_ml, cistern_csf_ratio
- CT classifications (biomarkers.ct_scores): marshall_ct_class, rotterdam_ct_score, helsinki_ct_score
  (NaN when a range), their _low, _high and _missing, and each component's value and source
  (ct_<component>, ct_<component>_source); here from the measurements alone (tSAH unknown, evacuation
  not recorded); `biomarkers.review_components` applies the components the clinical record (tSAH, evacuated
  mass lesion) and reviewers set when features are stored.
- scan-level hemorrhage (biomarkers.ich_probability): ich_probability, p_<class>_present (probabilities
  calibrated on segmented volumes, with the calibration of the model that made the mask) and ich_detected
  (0/1 at the calibration's operating point); ich_calibration (the model whose calibration was used, or
  "none") and ich_probability_reason (why the probabilities are NaN, else "")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from biomarkers.asymmetry import asymmetry_index, side_volumes_ml
from biomarkers.cisterns import basal_cisterns
from biomarkers.ct_scores import ct_score_features, measured_components
from biomarkers.density import mean_hu
from biomarkers.extra_axial import extra_axial_features
from biomarkers.extra_axial_shape import epidural_subdural_ml
from biomarkers.geometry import checked_affine, patient_bbox_mm, voxel_volume_ml
from biomarkers.ich_probability import model_presence_probabilities
from biomarkers.lesions import CONNECTIVITY, MIN_LESION_ML, bounding_box, labelled_lesions, lesion_table
from biomarkers.midline import MidlinePlane, ideal_midline_plane, lateral_ventricles, midline_shift
from biomarkers.tissue import TissueThresholds, inplane_stride, tissue_masks
from biomarkers.volume import EDEMA, HEMATOMA, MAX_LABEL, checked_labels, class_volumes_ml
from imaging.abc2 import abc2_ml

# Not number-like, so that CSV readers keep it a string. v2: the four-class label map (per-class volumes,
# extra-axial collection and thickness, IVH present). v3: epidural/subdural split, basal cisterns, and the
# Marshall, Rotterdam and Helsinki CT classifications with their components' sources, and the calibrated
# scan-level hemorrhage probabilities. v4: the hemorrhage probabilities with the calibration of the model that
# made the mask (NaN, with the reason, for a model without one), ich_calibration and ich_probability_reason.
DEFINITIONS_VERSION = "v4"


@dataclass(frozen=True)
class FeatureSettings:
    """Parameters of the feature definitions (recorded with the features through DEFINITIONS_VERSION)."""

    min_lesion_ml: float = MIN_LESION_ML
    connectivity: int = CONNECTIVITY
    tissue_pixel_mm: float = 0.9
    thresholds: TissueThresholds = field(default_factory=TissueThresholds)


def _checked_inputs(hu: np.ndarray, labels: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple]:
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"CT volume must be 3-D (z, y, x), got shape {hu.shape}")
    spacing_t = tuple(float(s) for s in spacing)
    if len(spacing_t) != 3 or min(spacing_t) <= 0 or not all(np.isfinite(spacing_t)):
        raise ValueError(f"spacing must be three positive numbers (dz, dy, dx) in mm, got {tuple(spacing)}")
    return checked_labels(labels, hu.shape), spacing_t


def series_features(hu: np.ndarray, labels: np.ndarray, spacing: Sequence[float], affine: np.ndarray | None = None,
                    settings: FeatureSettings = FeatureSettings(), model_name: str | None = None,
                    model_version: str | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Scalar features and the per-lesion table of one series (see the module doc for names and units).

    `model_name` / `model_version`: the segmentation model that made `labels` (None for a manual annotation or a
    truth mask), whose calibration gives the scan-level hemorrhage probabilities.
    """
    labels, spacing_t = _checked_inputs(hu, labels, spacing)
    affine_a = checked_affine(affine, spacing_t)
    vml = voxel_volume_ml(spacing_t)
    values: dict[str, Any] = {}

    values.update(class_volumes_ml(np.bincount(labels.ravel(), minlength=MAX_LABEL + 1), vml))
    eah, largest_eah = extra_axial_features(labels, spacing_t, settings.min_lesion_ml, settings.connectivity)
    values.update(eah)
    values.update(epidural_subdural_ml(labels, spacing_t, settings.min_lesion_ml, settings.connectivity,
                                       largest_thickness_mm=eah["eah_max_thickness_mm"] if eah["eah_count"] else None))

    stride = inplane_stride(spacing_t, settings.tissue_pixel_mm)
    tissue = tissue_masks(hu, labels, stride, settings.thresholds)
    plane = ideal_midline_plane(tissue.intracranial, stride, affine_a, labels.shape)
    values["midline_plane_source"] = plane.source
    values.update({f"midline_normal_{k}": float(v) for k, v in zip("xyz", plane.normal_mm, strict=True)})
    ventricles = lateral_ventricles(tissue.csf, tissue.intracranial, plane, stride, spacing_t)
    values.update(midline_shift(ventricles, plane, stride, spacing_t))
    values.update(basal_cisterns(tissue.csf, tissue.intracranial, ventricles, plane, stride, spacing_t, affine_a))
    values["eah_largest_left"] = float("nan")
    if largest_eah is not None:
        centroid = np.argwhere(largest_eah).mean(axis=0)
        values["eah_largest_left"] = 1.0 if plane.signed_distance_mm(centroid[None, :])[0] > 0 else 0.0

    box = bounding_box(tissue.intracranial)
    brain_box_mm = None
    if box is not None:
        lo = [box[0].start, box[1].start * stride, box[2].start * stride]
        hi = [box[0].stop - 1, (box[1].stop - 1) * stride, (box[2].stop - 1) * stride]
        brain_box_mm = patient_bbox_mm(affine_a, lo, hi)

    lesions = lesion_table(labels, hu, spacing_t, affine_a, plane, brain_box_mm,
                           settings.min_lesion_ml, settings.connectivity)
    values["lesion_count"] = int(len(lesions))
    if len(lesions):
        largest = lesions.iloc[0]
        values.update(largest_lesion_ml=float(largest["volume_ml"]),
                      largest_lesion_left=1.0 if largest["side"] == "left" else 0.0,
                      largest_lesion_region=str(largest["region"]))
        sides = set(lesions["side"])
        values["side"] = sides.pop() if len(sides) == 1 else "bilateral"
    else:
        values.update(largest_lesion_ml=0.0, largest_lesion_left=float("nan"), largest_lesion_region="none",
                      side="none")
    values["abc2_ml"] = _largest_abc2_ml(labels, spacing_t, settings) if len(lesions) else 0.0

    grid_ml = voxel_volume_ml((spacing_t[0], spacing_t[1] * stride, spacing_t[2] * stride))
    side = plane.side_grid(labels.shape, stride)
    for name, mask in (("intracranial", tissue.intracranial), ("parenchyma", tissue.parenchyma),
                       ("ventricle", ventricles)):
        left, right = side_volumes_ml(mask, side, grid_ml)
        values[f"{name}_ml"] = float(np.count_nonzero(mask)) * grid_ml
        values[f"{name}_left_ml"], values[f"{name}_right_ml"] = left, right
    lesion_left, lesion_right = _lesion_sides_ml(labels, plane, vml)
    values.update(lesion_left_ml=lesion_left, lesion_right_ml=lesion_right)
    values["asymmetry_parenchyma"] = asymmetry_index(values["parenchyma_left_ml"], values["parenchyma_right_ml"])
    values["asymmetry_ventricles"] = asymmetry_index(values["ventricle_left_ml"], values["ventricle_right_ml"])
    values["asymmetry_lesion"] = asymmetry_index(lesion_left, lesion_right)

    hu_s = hu[:, ::stride, ::stride]
    values["parenchyma_mean_hu"] = mean_hu(hu_s, tissue.parenchyma)
    lbox = bounding_box((labels == HEMATOMA) | (labels == EDEMA))
    if lbox is None:
        values.update(hematoma_mean_hu=float("nan"), edema_mean_hu=float("nan"))
    else:
        values["hematoma_mean_hu"] = mean_hu(hu[lbox], labels[lbox] == HEMATOMA)
        values["edema_mean_hu"] = mean_hu(hu[lbox], labels[lbox] == EDEMA)
    values.update(ct_score_features(measured_components(values, settings.min_lesion_ml)))
    values.update(model_presence_probabilities(values, model_name, model_version))
    return values, lesions


def _largest_abc2_ml(labels: np.ndarray, spacing: tuple, settings: FeatureSettings) -> float:
    box = bounding_box(labels == HEMATOMA)
    lab, _ = labelled_lesions(labels[box] == HEMATOMA, spacing, settings.min_lesion_ml, settings.connectivity)
    return float(abc2_ml(lab == 1, spacing))


def _lesion_sides_ml(labels: np.ndarray, plane: MidlinePlane, vml: float) -> tuple[float, float]:
    """Hematoma + edema (CREACTIVE's lesion) volume on each side of the midline plane."""
    lesion = (labels == HEMATOMA) | (labels == EDEMA)
    box = bounding_box(lesion)
    if box is None:
        return 0.0, 0.0
    zz, yy, xx = np.nonzero(lesion[box])
    offset = [s.start for s in box]
    d = plane.signed_distance_mm(np.column_stack([zz + offset[0], yy + offset[1], xx + offset[2]]))
    return float(np.count_nonzero(d > 0)) * vml, float(np.count_nonzero(d < 0)) * vml
