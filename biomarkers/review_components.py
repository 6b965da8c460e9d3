"""Reviewer-set and clinical-record components of the CT classifications, and the scores they change.

A reviewer may set a component the biomarkers cannot measure, or correct one they measured
(`biomarkers.ct_scores.REVIEWABLE`: basal cisterns, tSAH, evacuation, EDH). Each setting is a
`ScoreComponentReview` row (the latest per series and component counts; `unset` returns the component
to what is measured) and an audit event. The clinical record's tSAH and evacuated mass lesion (its
surgery field), where the center recorded them, are the components' values when no reviewer has set them
(source `clinical_record`).

`apply_components` is the pure part: the score features of `biomarkers.ct_scores` recomputed from a
series' stored features with those components in place. `set_component` stores a setting and rescores
the stored features of the series at once, so exports and the case viewer show the new score and say
that the component is reviewer-entered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biomarkers.ct_scores import (
    CISTERN_VALUES,
    CLINICAL_RECORD,
    REVIEWABLE,
    REVIEWER,
    Component,
    ct_score_features,
    measured_components,
    with_overrides,
)
from biomarkers.lesions import MIN_LESION_ML
from biomarkers.series import DEFINITIONS_VERSION
from biomarkers.store import jsonable
from registry.db.models import ClinicalRecord, ScoreComponentReview, Series, SeriesFeatures, Study
from registry.db.store import audit

UNSET = "unset"
_YES_NO = {"yes": True, "no": False}


def parse_value(component: str, text: str) -> Any:
    """The component's value from its stored text; None for `unset`. A clear error for anything else."""
    if component not in REVIEWABLE:
        raise ValueError(f"component {component!r} cannot be set by a reviewer; expected one of "
                         f"{', '.join(REVIEWABLE)}")
    text = str(text).strip().lower()
    if text == UNSET:
        return None
    if component == "basal_cisterns":
        if text not in CISTERN_VALUES:
            raise ValueError(f"basal_cisterns: {text!r} is not one of {', '.join(CISTERN_VALUES)} or {UNSET}")
        return text
    if text not in _YES_NO:
        raise ValueError(f"{component}: {text!r} is not yes, no or {UNSET}")
    return _YES_NO[text]


def apply_components(values: Mapping[str, Any], overrides: Mapping[str, Component],
                     min_ml: float = MIN_LESION_ML) -> dict[str, Any]:
    """`values` with the score features recomputed from the measured components and `overrides`."""
    out = dict(values)
    out.update(ct_score_features(with_overrides(measured_components(values, min_ml), overrides)))
    return out


def component_overrides(session: Session, series_id: int) -> dict[str, Component]:
    """The components set for a series: the clinical record's tSAH and evacuation, then the latest reviewer
    settings.

    Evacuation is the patient's, not the scan's: Marshall et al. 1991 class V is "any lesion surgically
    evacuated", so every scan of a patient whose record says a mass lesion was evacuated is class V, and a record
    that says none was makes the component a recorded "no" rather than `not_recorded`."""
    return components_set_for(session, [series_id])[series_id]


def components_set_for(session: Session, series_ids: list[int]) -> dict[int, dict[str, Component]]:
    """`component_overrides` of many series in two queries (ids in chunks that every database accepts)."""
    out: dict[int, dict[str, Component]] = {sid: {} for sid in series_ids}
    for i in range(0, len(series_ids), 5000):
        chunk = series_ids[i:i + 5000]
        records = session.execute(select(Series.id, ClinicalRecord.tsah, ClinicalRecord.evacuated_mass_lesion)
                                  .join(Study, Series.study_id == Study.id)
                                  .join(ClinicalRecord, ClinicalRecord.patient_id == Study.patient_id)
                                  .where(Series.id.in_(chunk))).all()
        for sid, tsah, evacuated in records:
            if tsah is not None:
                out[sid]["tsah"] = Component(bool(tsah), CLINICAL_RECORD)
            if evacuated is not None:
                out[sid]["evacuated"] = Component(bool(evacuated), CLINICAL_RECORD)
        reviews = session.scalars(select(ScoreComponentReview).where(ScoreComponentReview.series_id.in_(chunk))
                                  .order_by(ScoreComponentReview.set_at, ScoreComponentReview.id)).all()
        latest = {(row.series_id, row.component): row for row in reviews}
        for (sid, name), row in latest.items():
            value = parse_value(name, row.value)
            if value is not None:  # `unset`: the record's value, or what is measured, stays
                out[sid][name] = Component(value, REVIEWER)
    return out


def rescore_stored(session: Session, series_id: int, version: str = DEFINITIONS_VERSION) -> int:
    """Recompute the score features of every stored feature row of a series (of `version`); how many."""
    overrides = component_overrides(session, series_id)
    rows = session.scalars(select(SeriesFeatures).where(SeriesFeatures.series_id == series_id,
                                                        SeriesFeatures.definitions_version == version)).all()
    for row in rows:
        row.values = jsonable(apply_components(_from_json(row.values), overrides))
    session.flush()
    return len(rows)


def rescore_if_changed(session: Session, rows: list[SeriesFeatures], min_ml: float = MIN_LESION_ML) -> int:
    """Rescore the stored feature rows whose series' set components (a clinical record imported or changed after
    extraction, for example its evacuated mass lesion) would change what is stored; how many were."""
    sets = components_set_for(session, sorted({row.series_id for row in rows}))
    changed = 0
    for row in rows:
        rescored = jsonable(apply_components(_from_json(row.values), sets[row.series_id], min_ml))
        if rescored != row.values:
            row.values = rescored
            changed += 1
    session.flush()
    return changed


def _from_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored JSON values with null (a missing number or category) as NaN, as the features had it."""
    return {k: (float("nan") if v is None else v) for k, v in values.items()}


def set_component(session: Session, series_id: int, component: str, value: str, reviewer: str,
                  note: str | None = None) -> ScoreComponentReview:
    """Store a reviewer's setting of a component (audited) and rescore the series' stored features."""
    parse_value(component, value)
    if session.get(Series, series_id) is None:
        raise LookupError(f"series id {series_id} is not in the registry")
    before = {name: (c.value, c.source) for name, c in component_overrides(session, series_id).items()}
    row = ScoreComponentReview(series_id=series_id, component=component, value=str(value).strip().lower(),
                               reviewer=reviewer, note=note)
    session.add(row)
    session.flush()
    rescored = rescore_stored(session, series_id)
    audit(session, actor=reviewer, action="biomarkers.score_component", entity_type="series",
          entity_id=str(series_id), before={"components": before},
          after={"component": component, "value": row.value, "note": note, "rescored_feature_rows": rescored})
    return row
