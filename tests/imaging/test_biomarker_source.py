"""Segmenting a series with another model than the one its biomarkers were measured on is named."""

from __future__ import annotations

import datetime as dt

from imaging.biomarker_source import current_biomarker_masks, source_changes
from registry.db.engine import session_scope
from registry.db.models import Center, Patient, SegmentationRun, Series, SeriesFeatures, Study


def test_source_changes_name_series_measured_on_another_model_or_an_annotation(home, engine) -> None:
    at = dt.datetime(2024, 5, 1)
    with session_scope(engine) as s:
        center = Center(code="IT01")
        series = {}
        for key in ("phantom_then_blast", "blast", "manual", "none"):
            patient = Patient(pseudo_id=key, center=center)
            series[key] = Series(series_instance_uid=f"1.2.{len(series)}", modality="CT",
                                 study=Study(study_instance_uid=f"1.2.{len(series)}.0", patient=patient))
        s.add_all(series.values())
        s.flush()

        def features(key: str, source: str, model: str | None, version: str | None, hours: int) -> None:
            run = None
            if model:
                run = SegmentationRun(series_id=series[key].id, model_name=model, model_version=version,
                                      status="done", mask_path=f"/m/{key}-{model}.nii.gz")
                s.add(run)
                s.flush()
            s.add(SeriesFeatures(series_id=series[key].id, source=source, definitions_version=str(hours),
                                 segmentation_run_id=run.id if run else None, values={},
                                 computed_at=at + dt.timedelta(hours=hours)))

        features("phantom_then_blast", "segmentation", "phantom", "p" * 64, 1)
        features("phantom_then_blast", "manual", None, None, 3)  # a manual one ranks after any segmentation
        features("blast", "segmentation", "blast-ct", "b" * 64, 1)
        features("manual", "manual", None, None, 1)
    uids = [f"1.2.{k}" for k in range(4)]
    with session_scope(engine) as s:
        current = current_biomarker_masks(s, uids)
    assert current["1.2.0"] == ("segmentation", "phantom", "p" * 64) and "1.2.3" not in current
    changes = source_changes(current, uids, "blast-ct", "b" * 64)
    assert changes == {"1.2.0": "model phantom pppppppppppp", "1.2.2": "a manual annotation"}
    assert source_changes(current, ["1.2.1"], "blast-ct", "b" * 64) == {}  # the same model: nothing changes
