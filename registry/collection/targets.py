"""Collection targets per center (and study-wide), kept in the registry and changed by admins, with an audit trail.

Layers, lowest first: the packaged study-wide defaults (dashboard/targets.toml, handed in as `defaults`),
then what admins stored here. A coordinator sees their own center's targets; nobody needs a file on
the server. Every change is an AuditEvent (who, when, before, after); storing the value already
stored changes nothing and audits nothing.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import Center, CenterTarget
from registry.db.store import audit, center_by_code

TARGET_METRICS: dict[str, str] = {
    "patients": "Patients enrolled",
    "series_qc_passed": "Series passed QC",
    "series_annotated": "Series manually annotated",
    "series_segmented": "Series segmented",
}
STUDY = None  # the center code of study-wide targets


def stored_targets(session: Session) -> pd.DataFrame:
    """Every stored target: center (None = study-wide), metric, target, updated_at, updated_by."""
    rows = session.execute(
        select(Center.code.label("center"), CenterTarget.metric, CenterTarget.target, CenterTarget.updated_at,
               CenterTarget.updated_by)
        .select_from(CenterTarget).outerjoin(Center, Center.id == CenterTarget.center_id)
        .order_by(Center.code.nulls_first(), CenterTarget.metric)).all()
    return pd.DataFrame(rows, columns=["center", "metric", "target", "updated_at", "updated_by"])


def effective_targets(stored: pd.DataFrame, defaults: dict[str, int], center: str | None) -> dict[str, int]:
    """The targets that apply to `center` (None: the study): study-wide ones are the defaults overridden by
    stored study-wide rows; a center's are its stored rows only (a study figure is not a center's)."""
    rows = stored[stored["center"].isna()] if center is None else stored[stored["center"] == center]
    values = dict(defaults) if center is None else {}
    values.update({r.metric: int(r.target) for r in rows.itertuples()})
    return {k: values[k] for k in TARGET_METRICS if k in values}


def set_target(session: Session, center: str | None, metric: str, target: int | None, actor: str) -> bool:
    """Store (or with `target` None remove) one target; True when something changed (and was audited)."""
    if metric not in TARGET_METRICS:
        raise ValueError(f"unknown target {metric!r}; targets: {', '.join(TARGET_METRICS)}")
    if target is not None and (int(target) != target or target <= 0):
        raise ValueError(f"target {TARGET_METRICS[metric]!r} must be a positive whole number, got {target!r}")
    if not actor or not actor.strip():
        raise ValueError("a target change needs an actor (who set it)")
    center_row = None
    if center is not None:
        center_row = center_by_code(session, center, create=False)
        if center_row is None:
            raise LookupError(f"no center {center!r} in the registry")
    center_id = None if center_row is None else center_row.id
    row = session.scalars(select(CenterTarget).where(
        CenterTarget.center_id.is_(None) if center_id is None else CenterTarget.center_id == center_id,
        CenterTarget.metric == metric)).one_or_none()
    before = None if row is None else row.target
    after = None if target is None else int(target)
    if before == after:
        return False
    if row is None:
        session.add(CenterTarget(center_id=center_id, metric=metric, target=after, updated_by=actor.strip()))
    elif after is None:
        session.delete(row)
    else:
        row.target, row.updated_by = after, actor.strip()
    audit(session, actor=actor.strip(), action="target_set" if after is not None else "target_removed",
          entity_type="center_target", entity_id=f"{center or 'study'}:{metric}",
          before={"target": before}, after={"target": after})
    session.flush()
    return True


def set_targets(session: Session, center: str | None, values: dict[str, int | None], actor: str) -> list[str]:
    """Several targets of one center (or the study) at once; the metrics that changed."""
    return [metric for metric, value in values.items() if set_target(session, center, metric, value, actor)]
