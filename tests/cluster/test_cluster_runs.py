"""Ingest, segmentation, feature extraction and distillation (teacher labelling) through a Dask LocalCluster(2).

The registry a cluster run leaves must equal the in-process one; a worker killed mid-run costs at
most its own series, recorded as failed, and a second run finishes it with nothing duplicated.
One LocalCluster serves the whole module: starting one costs seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from biomarkers import store as biomarker_store
from biomarkers.extract import extract_features
from cluster.executor import Executor, open_executor, parse_scheduler
from imaging.devices import select_device
from imaging.distill import DistillOptions, distill
from imaging.preprocess import Preprocessing
from imaging.segment import segment_registered_series, series_uids_to_segment
from imaging.segmenters import open_segmenter
from imaging.train import TrainingConfig
from imaging.volume import read_mask
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import Instance, Patient, SegmentationRun, Series, SeriesFeatures, Study
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def spawnable_main():  # noqa: ANN201
    """Dask starts its workers by spawning, and a spawned process re-runs the parent's `__main__` file.
    Under pytest that file may be whatever a Streamlit AppTest ran last (a dashboard page, which fails
    without a log-in), so the workers are started with `__main__` pointing at no file, as for `python -c`."""
    import sys

    main = sys.modules["__main__"]
    saved = main.__dict__.pop("__file__", None)
    yield
    if saved is not None:
        main.__file__ = saved


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic.study import generate_study

    out = tmp_path_factory.mktemp("cluster") / "study"
    generate_study(out, centers=2, patients=4, seed=5, matrix=128)  # 7 series
    return out


@pytest.fixture(scope="module")
def cluster() -> Executor:
    with open_executor("local:2") as executor:
        yield executor


def new_home(root: Path, key_from: Home | None = None) -> Home:
    home = Home.resolve(root)
    home.ensure()
    if key_from is not None:  # the same pseudonymization key, so both registries name patients alike
        shutil.copy(key_from.secret_path, home.secret_path)
    upgrade(home.db_url)
    return home


def pipeline(home: Home, study: Path, executor: Executor) -> None:
    """ingest -> segment (phantom model) -> features from the segmentations, all through `executor`."""
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, study / "dicom", executor=executor, workers=1)
    segmenter = open_segmenter("phantom", select_device("cpu"))
    uids = series_uids_to_segment(engine, None, include_pending=True)
    report = segment_registered_series(engine, home.masks_dir, segmenter, uids, executor=executor,
                                       worker_device="cpu" if executor.distributed else None)
    assert not report.failed, report.failed
    with session_scope(engine) as session:
        jobs = biomarker_store.mask_jobs(session, "auto")
    extracted = extract_features(engine, jobs, executor=executor)
    assert not extracted.failed and len(extracted.computed) == len(uids)
    engine.dispose()


def registry_content(home: Home) -> dict[str, object]:
    """What two equivalent runs must share (ids, times and the home's own paths aside)."""
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        runs = s.execute(select(Series.series_instance_uid, SegmentationRun.model_version, SegmentationRun.status,
                                SegmentationRun.mask_path).join(Series, Series.id == SegmentationRun.series_id)).all()
        features = s.execute(select(Series.series_instance_uid, SeriesFeatures.source, SeriesFeatures.mask_sha256,
                                    SeriesFeatures.values).join(Series, Series.id == SeriesFeatures.series_id)).all()
        content = {
            "patients": sorted(s.scalars(select(Patient.pseudo_id))),
            "studies": sorted(s.scalars(select(Study.study_instance_uid))),
            "series": sorted(s.execute(select(Series.series_instance_uid, Series.instance_count, Series.qc_status,
                                              Series.coverage_mm)).all()),
            "instances": sorted(s.execute(select(Instance.sop_instance_uid, Instance.sha256)).all()),
            "runs": sorted((uid, version, status) for uid, version, status, _ in runs),
            "masks": {uid: read_mask(path)[0] for uid, _, _, path in runs},
            "features": {(uid, source): (sha, values) for uid, source, sha, values in features},
        }
    engine.dispose()
    return content


def test_local_cluster_run_leaves_the_registry_of_an_in_process_run(study: Path, cluster: Executor,
                                                                    tmp_path: Path) -> None:
    assert cluster.distributed and len(cluster.workers()) == 2
    assert cluster.dashboard_link and "2 workers" in cluster.describe()
    here = new_home(tmp_path / "in-process")
    pipeline(here, study, Executor())
    there = new_home(tmp_path / "cluster", key_from=here)
    pipeline(there, study, cluster)

    a, b = registry_content(here), registry_content(there)
    assert len(a["series"]) == 7 and len(a["runs"]) == 7 and len(a["features"]) == 7
    for key in ("patients", "studies", "series", "instances", "runs"):
        assert a[key] == b[key], key
    assert a["masks"].keys() == b["masks"].keys()
    for uid, labels in a["masks"].items():
        assert np.array_equal(labels, b["masks"][uid]), uid
    assert a["features"].keys() == b["features"].keys()
    for key, (sha, values) in a["features"].items():
        other_sha, other_values = b["features"][key]
        assert sha == other_sha and values.keys() == other_values.keys()
        for name, value in values.items():
            expected = other_values[name]
            if isinstance(value, float) and isinstance(expected, float):
                assert value == pytest.approx(expected, rel=1e-6, abs=1e-9, nan_ok=True), (key, name)
            else:
                assert value == expected, (key, name)


def test_distill_teacher_labels_on_the_cluster_as_in_process(study: Path, cluster: Executor, tmp_path: Path) -> None:
    """`imaging distill --scheduler`: the phantom teacher labels the drawn series on the workers, the client
    records them; the registry ends as after an in-process distillation, and a re-run reuses every label."""
    options = DistillOptions(series_limit=7, seed=2, timing_scans=1, training=TrainingConfig(
        epochs=1, steps_per_epoch=2, batch_size=4, patch=32, seed=3, val_fraction=0.3,
        net={"channels": [4, 8], "strides": [2], "num_res_units": 0}), preprocessing=Preprocessing(size=32))
    teacher = open_segmenter("phantom", select_device("cpu"))
    results, homes = {}, {}
    for name, executor in (("in-process", Executor()), ("cluster", cluster)):
        home = homes[name] = new_home(tmp_path / name, key_from=homes.get("in-process"))
        engine = make_engine(home.db_url)
        ingest_directory(engine, home, study / "dicom", workers=1)
        with session_scope(engine) as session:
            for uid in session.scalars(select(Series.series_instance_uid)):
                record_qc_decision(session, uid, "passed", None, "test")
        results[name] = distill(engine, home.masks_dir, teacher, options, "cpu", executor=executor,
                                worker_device="cpu" if executor.distributed else None)
        engine.dispose()

    here, there = results["in-process"], results["cluster"]
    assert len(here.teacher_labelled) == 7 and not here.skipped
    assert sorted(there.teacher_labelled) == sorted(here.teacher_labelled) and not there.skipped
    pd.testing.assert_frame_equal(there.sample, here.sample)
    a, b = registry_content(homes["in-process"]), registry_content(homes["cluster"])
    for key in ("patients", "studies", "series", "runs"):
        assert a[key] == b[key], key
    assert {status for _, _, status in b["runs"]} == {"done"} and a["masks"].keys() == b["masks"].keys()
    for uid, labels in a["masks"].items():
        assert np.array_equal(labels, b["masks"][uid]), uid
    # The teacher was timed on the workers, on every series it labelled there.
    assert there.cost["teacher_scans"] == 7 and there.cost["teacher_basis"] == "labelling in this run"
    assert there.cost["teacher_device"] == "cpu" and there.cost["teacher_s_per_scan"] > 0

    engine = make_engine(homes["cluster"].db_url)
    again = distill(engine, homes["cluster"].masks_dir, teacher, options, "cpu", executor=cluster, worker_device="cpu")
    engine.dispose()
    assert again.teacher_labelled == [] and sorted(again.teacher_reused) == sorted(there.teacher_labelled)
    assert registry_content(homes["cluster"])["runs"] == b["runs"]


def _kill_a_busy_worker(executor: Executor) -> str:
    """SIGKILL (as the kernel's OOM killer would) a worker that is running a series right now."""
    busy = [addr for addr, keys in executor.client.processing().items() if keys]
    assert busy, "no worker was running a series when the test wanted to kill one"
    pids = executor.client.run(os.getpid, workers=busy[:1])
    os.kill(pids[busy[0]], signal.SIGKILL)
    return busy[0]


# allowed_failures 3 (Dask's default): the killed worker's series is re-run on the other worker; 0: it fails at once
# (KilledWorker) and is recorded failed with the reason, and the second run finishes it. Bounded in time: a run that
# waited forever on a lost future would fail here instead of hanging the CI.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("allowed_failures", [3, 0], ids=["rescheduled", "recorded-failed"])
def test_a_killed_worker_costs_only_its_series_and_a_rerun_finishes_it(
        study: Path, cluster: Executor, tmp_path: Path, allowed_failures: int) -> None:
    home = new_home(tmp_path / "home")
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, study / "dicom", workers=1)
    uids = series_uids_to_segment(engine, None, include_pending=True)
    segmenter = open_segmenter("phantom", select_device("cpu"))
    scheduler = cluster.client.cluster.scheduler  # LocalCluster: the scheduler lives in this process
    default = scheduler.allowed_failures
    scheduler.allowed_failures = allowed_failures  # 0: a task whose worker dies fails at once (KilledWorker)
    killed: list[str] = []

    def kill_once(uid: str, outcome: str) -> None:
        if not killed:
            killed.append(_kill_a_busy_worker(cluster))

    try:
        first = segment_registered_series(engine, home.masks_dir, segmenter, uids, on_series=kill_once,
                                          executor=cluster, worker_device="cpu")
    finally:
        scheduler.allowed_failures = default
    assert killed
    assert sorted(first.done + list(first.failed) + first.skipped) == sorted(uids)  # every series accounted for
    if allowed_failures:
        assert sorted(first.done) == sorted(uids)  # Dask re-ran the lost series on the surviving worker
    else:
        assert first.failed and all("worker running this series died" in e for e in first.failed.values())

    second = segment_registered_series(engine, home.masks_dir, segmenter, uids, executor=cluster,
                                       worker_device="cpu")
    assert sorted(second.done) == sorted(first.failed) and not second.failed
    with session_scope(engine) as s:
        rows = s.execute(select(SegmentationRun.series_id, func.count(), func.min(SegmentationRun.status))
                         .group_by(SegmentationRun.series_id)).all()
    assert len(rows) == len(uids) and all(n == 1 and status == "done" for _, n, status in rows)
    masks = list((home.masks_dir / "segmentations").rglob("*"))
    finished = sorted(p.name for p in masks if p.is_file() and ".part." not in p.name)  # a killed write: debris
    assert finished == sorted(f"{uid}.nii.gz" for uid in uids)
    engine.dispose()


@pytest.mark.timeout(180)
def test_a_result_lost_with_its_worker_before_the_client_took_it_is_waited_for_again(cluster: Executor,
                                                                                      tmp_path: Path) -> None:
    """A series finished on a worker that dies before the client fetched its result: Dask recomputes it, and the
    client waits for that result instead of recording the series as failed ("NoneType: None", as it did)."""

    def recomputed_slowly(marker: str) -> str:  # defined here so that it travels by value to the workers
        import pathlib
        import time as clock

        if pathlib.Path(marker).exists():
            clock.sleep(4)  # the recomputation: slow enough for the client to meet the lost result first
            return "recomputed"
        pathlib.Path(marker).write_text("done once")
        return "first"

    items = [str(tmp_path / "a"), str(tmp_path / "b")]
    results = cluster.map_per_series(recomputed_slowly, items, label="lost", key_of=lambda m: Path(m).name)
    first = next(results)
    assert first.error is None and first.value == "first"
    other = next(i for i in items if i != first.item)
    client = cluster.client
    key = next(k for k in list(client.futures) if str(k).startswith(f"lost-{Path(other).name}-"))
    deadline = time.monotonic() + 60
    while client.futures[key].status != "finished" or not client.who_has().get(key):
        assert time.monotonic() < deadline, "the second task did not finish"
        time.sleep(0.05)
    holder = client.who_has()[key][0]
    os.kill(client.run(os.getpid, workers=[holder])[holder], signal.SIGKILL)
    while client.futures[key].status != "lost":
        assert time.monotonic() < deadline, "the client was never told the result was lost"
        time.sleep(0.05)
    second = next(results)
    assert second.item == other and second.error is None and second.value == "recomputed"
    assert next(results, None) is None


@pytest.mark.timeout(300)
def test_series_no_worker_can_run_are_recorded_failed_not_waited_for_forever(study: Path, cluster: Executor,
                                                                             tmp_path: Path) -> None:
    """Segmentation restricted to GPU workers on a cluster that has none (or lost its only one): Dask would keep
    the tasks waiting for such a worker forever; they come back failed, saying why, and a re-run finishes them."""
    home = new_home(tmp_path / "home")
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, study / "dicom", workers=1)
    uids = series_uids_to_segment(engine, None, include_pending=True)
    segmenter = open_segmenter("phantom", select_device("cpu"))
    impatient = Executor(cluster.client, cluster.address, stall_timeout_s=3)
    t = time.monotonic()
    first = segment_registered_series(engine, home.masks_dir, segmenter, uids, executor=impatient,
                                      worker_device="cpu", gpu=True)
    assert time.monotonic() - t < 120
    assert sorted(first.failed) == sorted(uids) and not first.done
    assert all("no Dask worker with GPU=1 was connected" in e and "--resources GPU=1" in e
               for e in first.failed.values())
    with session_scope(engine) as s:
        assert set(s.scalars(select(SegmentationRun.status))) == {"failed"}
        assert "no Dask worker with GPU=1" in s.scalars(select(SegmentationRun.error)).first()

    second = segment_registered_series(engine, home.masks_dir, segmenter, uids, executor=cluster,
                                       worker_device="cpu")
    assert sorted(second.done) == sorted(uids) and not second.failed
    with session_scope(engine) as s:
        rows = s.execute(select(SegmentationRun.series_id, func.count(), func.min(SegmentationRun.status))
                         .group_by(SegmentationRun.series_id)).all()
    assert len(rows) == len(uids) and all(n == 1 and status == "done" for _, n, status in rows)
    engine.dispose()


def test_scheduler_addresses_are_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ctstudy.cli import app

    assert parse_scheduler(None) == ("in-process", None)
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("remote", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:x", "somehost"):
        with pytest.raises(ValueError, match="--scheduler"):
            parse_scheduler(bad)
    # Every per-series command takes the option and says what a bad address should look like.
    home = new_home(tmp_path / "home")
    for command in (["imaging", "segment", "--all"], ["imaging", "distill", "--teacher", "phantom"],
                    ["biomarkers", "extract"], ["registry", "ingest", str(tmp_path)]):
        result = CliRunner().invoke(app, ["--home", str(home.root), *command, "--scheduler", "somehost"])
        assert result.exit_code != 0 and "--scheduler somehost: expected in-process, local:N" in result.output, (
            command, result.output)
