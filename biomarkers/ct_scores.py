"""CT classifications clinicians use: Marshall class, Rotterdam score and Helsinki score, each with its
components and where each component came from.

Definitions (shared ANCHORS.md, "CT classification scores"):
- Marshall LF, Marshall SB, Klauber MR, et al. A new classification of head injury based on computerized
  tomography. J Neurosurg 1991;75:S14-S20. I no visible pathology; II cisterns present, midline shift
  0-5 mm, no high/mixed-density lesion > 25 mL; III cisterns compressed or absent, shift 0-5 mm, no lesion
  > 25 mL; IV shift > 5 mm, no lesion > 25 mL; V any evacuated mass lesion; VI non-evacuated
  high/mixed-density lesion > 25 mL.
- Maas AIR, Hukkelhoven CWPM, Marshall LF, Steyerberg EW. Prediction of outcome in traumatic brain injury
  with computed tomographic characteristics: a comparison between the computed tomographic classification
  and combinations of computed tomographic predictors. Neurosurgery 2005;57:1173-82 (Rotterdam): basal
  cisterns normal 0 / compressed 1 / absent 2; midline shift <= 5 mm 0 / > 5 mm 1; epidural mass present 0
  / absent 1; IVH or tSAH absent 0 / present 1; score = sum + 1 (1-6).
- Raj R, Siironen J, Skrifvars MB, et al. Predicting outcome in traumatic brain injury: development of a
  novel computerized tomography classification system (Helsinki computerized tomography score).
  Neurosurgery 2014;75:632-47: SDH +2, ICH +2, EDH -3, mass lesion > 25 mL +2, IVH +3, suprasellar
  cisterns normal 0 / compressed 1 / obliterated 5 (range -3 to 14).

Components. Each is a `Component(value, source)`; value None means unknown. Sources: `measured` (from the
mask and image by the biomarkers), `reviewer` (set by a reviewer in the case viewer), `clinical_record`
(the clinical record), `not_recorded` (nothing says: evacuation is then taken as not done, the usual
reading of an admission scan), `unknown` (cannot be measured and nobody set it: tSAH, which has no class in
the label map, and cisterns where `biomarkers.cisterns` cannot place its window).

A score with unknown components is a range: `ScoreResult(low, high, missing)`, the lowest and highest the
score takes over every value the unknown components could have, and `missing` the unknown components that
change it. When low == high the score is known (`value`), even with unknown components.

The "high or mixed density lesion" of Marshall and the "mass lesion" of Helsinki are measured as the
largest single hemorrhagic lesion: the largest intraparenchymal hematoma or the largest extra-axial
collection (mL).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MEASURED = "measured"
REVIEWER = "reviewer"
CLINICAL_RECORD = "clinical_record"
NOT_RECORDED = "not_recorded"
UNKNOWN = "unknown"
COMPONENT_SOURCES = (MEASURED, REVIEWER, CLINICAL_RECORD, NOT_RECORDED, UNKNOWN)

MASS_LESION_ML = 25.0
SHIFT_MM = 5.0
CISTERN_VALUES = ("present", "compressed", "absent")

# The components and the values an unknown one may take.
COMPONENT_VALUES: dict[str, tuple[Any, ...]] = {
    "basal_cisterns": CISTERN_VALUES,
    "midline_shift_over_5mm": (False, True),
    "mass_lesion_over_25ml": (False, True),
    "evacuated": (False, True),
    "tsah": (False, True),
    "ivh": (False, True),
    "edh": (False, True),
    "sdh": (False, True),
    "ich": (False, True),
    "visible_pathology": (False, True),
}
# The components a reviewer may set in the case viewer (`biomarkers.review_components`).
REVIEWABLE = ("basal_cisterns", "tsah", "evacuated", "edh")


@dataclass(frozen=True)
class Component:
    value: Any
    source: str

    def __post_init__(self) -> None:
        if self.source not in COMPONENT_SOURCES:
            raise ValueError(f"component source must be one of {COMPONENT_SOURCES}, not {self.source!r}")


@dataclass(frozen=True)
class ScoreResult:
    low: int
    high: int
    missing: tuple[str, ...] = field(default_factory=tuple)

    @property
    def value(self) -> int | None:
        return self.low if self.low == self.high else None

    def text(self) -> str:
        """"3" or "2-3 (tsah unknown)"."""
        if self.value is not None:
            return str(self.value)
        return f"{self.low}-{self.high} ({', '.join(self.missing)} unknown)"


def marshall_class(c: Mapping[str, Any]) -> int:
    """Marshall class 1-6 from known component values (Marshall et al. 1991)."""
    if c["evacuated"]:
        return 5
    if c["mass_lesion_over_25ml"]:
        return 6
    if c["midline_shift_over_5mm"]:
        return 4
    if c["basal_cisterns"] in ("compressed", "absent"):
        return 3
    if not (c["visible_pathology"] or c["tsah"]):
        return 1
    return 2


def rotterdam_score(c: Mapping[str, Any]) -> int:
    """Rotterdam CT score 1-6 from known component values (Maas et al. 2005)."""
    return (1 + CISTERN_VALUES.index(c["basal_cisterns"]) + int(bool(c["midline_shift_over_5mm"]))
            + int(not c["edh"]) + int(bool(c["ivh"] or c["tsah"])))


def helsinki_score(c: Mapping[str, Any]) -> int:
    """Helsinki CT score -3 to 14 from known component values (Raj et al. 2014)."""
    cisterns = {"present": 0, "compressed": 1, "absent": 5}[c["basal_cisterns"]]
    return (2 * bool(c["sdh"]) + 2 * bool(c["ich"]) - 3 * bool(c["edh"]) + 2 * bool(c["mass_lesion_over_25ml"])
            + 3 * bool(c["ivh"]) + cisterns)


SCORES: dict[str, tuple[Callable[[Mapping[str, Any]], int], tuple[str, ...]]] = {
    "marshall_ct_class": (marshall_class, ("evacuated", "mass_lesion_over_25ml", "midline_shift_over_5mm",
                                           "basal_cisterns", "visible_pathology", "tsah")),
    "rotterdam_ct_score": (rotterdam_score, ("basal_cisterns", "midline_shift_over_5mm", "edh", "ivh", "tsah")),
    "helsinki_ct_score": (helsinki_score, ("sdh", "ich", "edh", "mass_lesion_over_25ml", "ivh", "basal_cisterns")),
}


def score_range(score: Callable[[Mapping[str, Any]], int], uses: tuple[str, ...],
                components: Mapping[str, Component]) -> ScoreResult:
    """The score over every value of its unknown components: lowest, highest, and the unknowns that matter."""
    for name in uses:
        if name not in components:
            raise KeyError(f"component {name!r} is missing: every score component needs a value or an "
                           f"explicit Component(None, 'unknown')")
    unknown = [n for n in uses if components[n].value is None]
    known = {n: components[n].value for n in uses if components[n].value is not None}
    results: dict[tuple, int] = {}
    for combo in itertools.product(*(COMPONENT_VALUES[n] for n in unknown)):
        results[combo] = score({**known, **dict(zip(unknown, combo, strict=True))})
    values = list(results.values())
    low, high = min(values), max(values)
    matters = []
    for i, name in enumerate(unknown):
        groups: dict[tuple, set[int]] = {}
        for combo, v in results.items():
            groups.setdefault(combo[:i] + combo[i + 1:], set()).add(v)
        if any(len(g) > 1 for g in groups.values()):
            matters.append(name)
    return ScoreResult(low, high, tuple(matters))


def measured_components(values: Mapping[str, Any], min_ml: float = 0.05) -> dict[str, Component]:
    """The components the series features measure (names of `biomarkers.series`); tSAH unknown, evacuation
    not recorded. `min_ml` is the smallest volume that counts as present (the lesion speck size)."""
    def present(name: str) -> bool:
        return float(values.get(name) or 0.0) >= min_ml

    shift = values.get("midline_shift_mm")
    shift_known = shift is not None and shift == shift  # NaN: the septum was not found
    cisterns = values.get("basal_cisterns", "unknown")
    mass = max(float(values.get("largest_lesion_ml") or 0.0), float(values.get("eah_largest_ml") or 0.0))
    visible = any(present(n) for n in ("iph_ml", "eah_ml", "edema_ml", "ivh_ml"))
    return {
        "basal_cisterns": Component(cisterns if cisterns in CISTERN_VALUES else None,
                                    MEASURED if cisterns in CISTERN_VALUES else UNKNOWN),
        "midline_shift_over_5mm": Component(bool(shift > SHIFT_MM) if shift_known else None,
                                            MEASURED if shift_known else UNKNOWN),
        "mass_lesion_over_25ml": Component(mass > MASS_LESION_ML, MEASURED),
        "evacuated": Component(False, NOT_RECORDED),
        "tsah": Component(None, UNKNOWN),
        "ivh": Component(present("ivh_ml"), MEASURED),
        "edh": Component(present("edh_ml"), MEASURED),
        "sdh": Component(present("sdh_ml"), MEASURED),
        "ich": Component(present("iph_ml"), MEASURED),
        "visible_pathology": Component(visible, MEASURED),
    }


def with_overrides(components: Mapping[str, Component], overrides: Mapping[str, Component]) -> dict[str, Component]:
    """Components with reviewer or clinical-record values in place of the measured ones."""
    out = dict(components)
    for name, comp in overrides.items():
        if name not in COMPONENT_VALUES:
            raise ValueError(f"unknown score component {name!r}; expected one of {', '.join(COMPONENT_VALUES)}")
        if comp.value is not None and comp.value not in COMPONENT_VALUES[name]:
            raise ValueError(f"component {name}: value {comp.value!r} is not one of {COMPONENT_VALUES[name]}")
        out[name] = comp
    return out


def ct_score_features(components: Mapping[str, Component]) -> dict[str, Any]:
    """Flat features: per score `<score>` (NaN when a range), `<score>_low`, `<score>_high`, `<score>_missing`
    (comma-separated unknown components that change it, "" when known); per component `ct_<name>` and
    `ct_<name>_source`."""
    out: dict[str, Any] = {}
    for name, (fn, uses) in SCORES.items():
        r = score_range(fn, uses, components)
        out[name] = float(r.value) if r.value is not None else float("nan")
        out[f"{name}_low"], out[f"{name}_high"] = r.low, r.high
        out[f"{name}_missing"] = ",".join(r.missing)
    for name, comp in components.items():
        v = comp.value
        out[f"ct_{name}"] = (float(v) if isinstance(v, bool) else v) if v is not None else None
        out[f"ct_{name}_source"] = comp.source
    return out
