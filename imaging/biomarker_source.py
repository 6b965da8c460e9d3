"""Which mask a series' stored biomarkers were measured on, and whether segmenting it with a model changes that.

`biomarkers extract` measures each series on its latest segmentation (else its manual annotation), so a new
segmentation by another model changes what the series' biomarkers will come from. `imaging segment` names the
series where that happens. Imaging sits left of biomarkers: this reads the registry's SeriesFeatures rows
directly (source preference segmentation, then manual, then truth: `biomarkers.store.SOURCE_PREFERENCE`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import SegmentationRun, Series, SeriesFeatures

_PREFERENCE = ("segmentation", "manual", "truth")
_WORDS = {"manual": "a manual annotation", "truth": "a truth mask"}


def current_biomarker_masks(session: Session, uids: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
    """SeriesInstanceUID -> (source, model name, model version) of the mask its stored biomarkers come from, for
    the series in `uids` that have any (the newest features of the preferred source)."""
    rows = session.execute(
        select(Series.series_instance_uid, SeriesFeatures.source, SegmentationRun.model_name,
               SegmentationRun.model_version)
        .join(SeriesFeatures, SeriesFeatures.series_id == Series.id)
        .outerjoin(SegmentationRun, SegmentationRun.id == SeriesFeatures.segmentation_run_id)
        .where(Series.series_instance_uid.in_(uids))
        .order_by(SeriesFeatures.computed_at.desc(), SeriesFeatures.id.desc())).all()
    best: dict[str, tuple[str, str | None, str | None]] = {}
    for uid, source, name, version in rows:  # newest first: of one source, the newest is kept
        if uid not in best or _rank(source) < _rank(best[uid][0]):
            best[uid] = (source, name, version)
    return best


def _rank(source: str) -> int:
    return _PREFERENCE.index(source) if source in _PREFERENCE else len(_PREFERENCE)


def source_changes(current: dict[str, tuple[str, str | None, str | None]], uids: list[str], model_name: str,
                   model_version: str) -> dict[str, str]:
    """SeriesInstanceUID -> what its biomarkers came from ('model phantom 0123456789ab', 'a manual annotation'),
    for the series of `uids` whose biomarkers were not measured on a mask of this model (version)."""
    changes = {}
    for uid in uids:
        if uid not in current:
            continue
        source, name, version = current[uid]
        if source == "segmentation" and version == model_version:
            continue
        changes[uid] = (f"model {name} {(version or '')[:12]}".rstrip() if source == "segmentation" and name
                        else _WORDS.get(source, source))
    return changes
