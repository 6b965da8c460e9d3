"""Each patient's patient-level imaging features (`auto` source, current definitions), stored per patient and
kept in step with the series features they come from (`registry.summary`): the analysis table reads 20,000
stored rows instead of recomputing 100,000 series' time courses.

`refresh` recomputes, with the full query (`store.patient_features_by_id`), the patients whose revision moved
or whose row was made under other feature definitions; `read` refreshes and returns the stored features.
"""

from __future__ import annotations

import hashlib
import json
import math

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from biomarkers.series import DEFINITIONS_VERSION
from biomarkers.store import decode_json_objects, feature_columns, patient_features_by_id, with_feature_types
from registry.db.engine import bulk_read
from registry.db.models import PatientFeatureSummary
from registry.summary import revisions

# Names what a stored row was computed under: the series feature definitions and the patient-level features (their
# names; SUMMARY_FORMAT changes with how they are computed or stored). Rows under another name are recomputed.
SUMMARY_FORMAT = "2"
DEFINITIONS = hashlib.sha256(
    "\n".join([SUMMARY_FORMAT, DEFINITIONS_VERSION, *feature_columns(with_ct_classes=True)]).encode()).hexdigest()


def _json_row(values: dict) -> str:
    """A patient's features as a JSON object, missing values (NaN) as null; exact floats (repr) round-trip."""
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})


def refresh(session: Session) -> int:
    """Recompute and store the features of every patient whose revision moved; how many were recomputed."""
    stale = revisions.stale_patients(session, PatientFeatureSummary, PatientFeatureSummary.definitions != DEFINITIONS)
    if not stale:
        return 0
    with bulk_read():
        features = patient_features_by_id(session, patients=list(stale), with_ct_classes=True)
        features = features[features.index.isin(list(stale))]
        stored = dict(zip(features.index.tolist(), (_json_row(r) for r in features.to_dict(orient="records")),
                          strict=True))
        revisions.store(session, PatientFeatureSummary, [
            {"patient_id": p, "revision": r, "definitions": DEFINITIONS, "values": stored.get(p)}
            for p, r in stale.items()])
    return len(stale)


def read(session: Session, with_ct_classes: bool = False) -> pd.DataFrame:
    """The stored features of every patient with series features (`refresh` first): indexed by patient id, columns
    PATIENT_FEATURES (and with `with_ct_classes` the admission CT classifications), as
    `store.patient_features_by_id` gives them."""
    columns = feature_columns(with_ct_classes)
    refresh(session)
    with bulk_read():
        rows = session.connection().execute(
            select(PatientFeatureSummary.patient_id, PatientFeatureSummary.values)
            .where(PatientFeatureSummary.values.is_not(None))).all()
        if not rows:
            return with_feature_types(pd.DataFrame(columns=columns, index=pd.Index([], name="_patient")))
        ids, texts = zip(*rows, strict=True)
        values = decode_json_objects(pd.Series(texts, index=pd.Index(ids, name="_patient")))
    return with_feature_types(values.reindex(columns=columns))
