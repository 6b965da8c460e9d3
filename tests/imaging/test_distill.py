"""`imaging distill`: the sample, stored teacher labels (resumable), manual precedence, report, student as a model.

The fast tests run a two-center study of 8 tiny phantoms with a tiny untrained checkpoint as the
teacher (its labels are arbitrary, which is all the bookkeeping needs, and it costs nothing to
run) and a tiny student; the slow one uses the shipped phantom model as the teacher and checks
the issue's bar: the student's Dice against the teacher within 0.05 of the teacher's own Dice
against truth, per class.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from imaging_study import write_study
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging.distill import DistillOptions, distill
from imaging.distill_report import report_paths, write_report
from imaging.model import SegmentationModel, build_unet, load_model
from imaging.preprocess import Preprocessing
from imaging.sampling import draw_sample
from imaging.segmenters import open_segmenter
from imaging.train import TrainingConfig, uid_digest
from registry.annotations import import_annotations
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import SegmentationRun
from registry.db.store import record_qc_decision
from registry.home import Home
from registry.ingest.directory import ingest_directory
from vocabulary.labels import LABEL_MAP, N_CLASSES

runner = CliRunner()
TINY = TrainingConfig(epochs=1, steps_per_epoch=2, batch_size=4, patch=32, seed=3, val_fraction=0.3,
                      net={"channels": [4, 8], "strides": [2], "num_res_units": 0})
TINY_PRE = Preprocessing(size=32, context_slices=1)


# ---------------------------------------------------------------- sampling (pure)

def _candidates(spec: dict[tuple[str, str], int], series_per_patient: int = 2) -> pd.DataFrame:
    rows = []
    for (center, scanner), n_patients in spec.items():
        for p in range(n_patients):
            for s in range(series_per_patient):
                rows.append({"series_instance_uid": f"{center}.{scanner}.{p}.{s}", "patient_key": f"{center}-{p}",
                             "center": center, "scanner": scanner, "annotated": False, "teacher_done": False})
    return pd.DataFrame(rows)


def test_sample_represents_every_center_and_scanner_and_respects_the_limit():
    c = _candidates({("A", "GE"): 30, ("A", "Siemens"): 3, ("B", "Philips"): 10, ("C", "GE"): 2})
    s = draw_sample(c, 20, seed=1)
    assert len(s) == 20
    assert set(s["stratum"]) == {"A / GE", "A / Siemens", "B / Philips", "C / GE"}
    # Proportional: the big stratum gets most, every stratum at least one.
    counts = s["stratum"].value_counts()
    assert counts["A / GE"] >= 10 and counts.min() >= 1
    # Drawn by patient: one series per patient before a second series of anyone in that stratum.
    ge = s[s["stratum"] == "A / GE"]
    assert ge["patient_key"].nunique() == len(ge)
    # Seeded: the same seed draws the same series, another seed other patients.
    assert list(draw_sample(c, 20, seed=1)["series_instance_uid"]) == list(s["series_instance_uid"])
    assert set(draw_sample(c, 20, seed=2)["series_instance_uid"]) != set(s["series_instance_uid"])
    # No limit, or a limit above the total: everything.
    assert len(draw_sample(c, None, seed=1)) == len(c) == len(draw_sample(c, 10_000, seed=1))


def test_sample_prefers_annotated_then_already_labelled_patients_and_refuses_to_drop_a_center():
    c = _candidates({("A", "GE"): 20, ("B", "GE"): 20}, series_per_patient=1)
    c.loc[c["series_instance_uid"] == "A.GE.17.0", "annotated"] = True
    c.loc[c["series_instance_uid"].isin(["B.GE.5.0", "B.GE.9.0"]), "teacher_done"] = True
    s = draw_sample(c, 4, seed=1)
    assert {"A.GE.17.0", "B.GE.5.0", "B.GE.9.0"} <= set(s["series_instance_uid"])
    # With fewer series than strata, strata fall back to centers; fewer than centers is refused.
    three = _candidates({("A", "GE"): 3, ("A", "Siemens"): 3, ("B", "GE"): 3})
    assert set(draw_sample(three, 2, seed=1)["stratum"]) == {"A", "B"}
    with pytest.raises(ValueError, match="below the number of centers"):
        draw_sample(three, 1, seed=1)
    with pytest.raises(LookupError, match="no QC-passed series"):
        draw_sample(c.iloc[0:0], 4, seed=1)


# ---------------------------------------------------------------- the pipeline on a tiny registry

@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("distill_study")
    records = write_study(root / "study", patients=4, seed=21, matrix=48, center="AA01")
    records += write_study(root / "study", patients=4, seed=22, matrix=48, center="BB02")
    home = Home.resolve(root / "home")
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, root / "study" / "dicom", actor="test")
    uids = [r["series_instance_uid"] for r in records]
    with session_scope(engine) as session:
        for uid in uids:
            record_qc_decision(session, uid, "passed", None, "test")
    # One series of each center has a manual annotation (its truth mask).
    ann = root / "annotations"
    ann.mkdir()
    for uid in (uids[0], uids[4]):
        shutil.copy(root / "study" / "truth" / "masks" / f"{uid}.nii.gz", ann / f"{uid}.nii.gz")
    with session_scope(engine) as session:
        import_annotations(session, ann, home.masks_dir, "test")
    engine.dispose()
    torch.manual_seed(0)
    teacher = SegmentationModel(net=build_unet(3, N_CLASSES, {"channels": [4, 8], "strides": [2], "num_res_units": 0}),
                                preprocessing=TINY_PRE, net_config={"channels": [4, 8], "strides": [2],
                                                                    "num_res_units": 0},
                                label_map=dict(LABEL_MAP), name="tiny-teacher")
    teacher.net.eval()
    teacher.save(root / "teacher.pt")
    return {"root": root, "home": home, "uids": uids, "annotated": {uids[0], uids[4]}, "teacher": root / "teacher.pt"}


class Interrupted(BaseException):
    """Stands for Ctrl-C: not an Exception, so the per-series error handling does not swallow it."""


class CountingTeacher:
    """A teacher, counting calls, and interrupted after `stop_after` when asked."""

    def __init__(self, inner, stop_after: int | None = None) -> None:  # noqa: ANN001
        self.inner, self.stop_after, self.calls = inner, stop_after, 0
        self.name, self.version, self.members, self.device = inner.name, inner.version, inner.members, inner.device

    def segment(self, volume):  # noqa: ANN001, ANN201
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise Interrupted
        self.calls += 1
        return self.inner.segment(volume)


def test_distillation_resumes_with_the_teacher_labels_already_done(study, tmp_path):
    home = study["home"]
    engine = make_engine(home.db_url)
    teacher0 = open_segmenter(study["teacher"], torch.device("cpu"))
    options = DistillOptions(series_limit=6, seed=5, training=TINY, preprocessing=TINY_PRE)

    first = CountingTeacher(teacher0, stop_after=3)
    with pytest.raises(Interrupted):
        distill(engine, home.masks_dir, first, options)
    with session_scope(engine) as session:
        runs = session.scalars(select(SegmentationRun).where(SegmentationRun.model_version == teacher0.version)).all()
        assert len(runs) == 3 and {r.status for r in runs} == {"done"}

    again = CountingTeacher(teacher0)
    result = distill(engine, home.masks_dir, again, options)
    assert again.calls == 3  # only the three series not labelled before the interruption
    assert len(result.teacher_reused) == 3 and len(result.teacher_labelled) == 3
    assert len(result.sample) == 6 and set(result.sample["center"]) == {"AA01", "BB02"}
    with session_scope(engine) as session:
        n = len(session.scalars(select(SegmentationRun).where(SegmentationRun.model_version == teacher0.version)).all())
    assert n == 6
    # Manual annotations take precedence over the teacher's masks wherever they exist.
    sources = dict(zip(result.sample["series_instance_uid"], result.sample["label_source"], strict=True))
    for uid, source in sources.items():
        assert source == ("manual" if uid in study["annotated"] else "teacher")
    assert "manual" in sources.values()  # annotated patients are drawn first

    # Provenance in the checkpoint: the teacher, the series (hashed), the agreement, the costs.
    meta = result.metadata
    assert meta["teacher"]["version"] == teacher0.version and meta["teacher"]["spec"] == teacher0.name
    assert meta["learned_from"]["series"] == 6
    assert meta["learned_from"]["label_sources"] == {"manual": sum(u in study["annotated"] for u in sources),
                                                     "teacher": sum(u not in study["annotated"] for u in sources)}
    assert result.model.name.startswith("unet2d-distilled from ")
    assert len(result.model.label_map) == N_CLASSES  # every class of the project's label map
    assert meta["cost"]["student_scans"] == int(result.sample["held_out"].sum()) > 0
    assert meta["cost"]["teacher_scans"] == 3  # the three labelled in this run were timed
    held = set(result.sample.loc[result.sample["held_out"], "series_instance_uid"])
    assert set(result.per_series["series_digest"]) == {uid_digest(u) for u in held}
    assert {"student_vs_teacher"} <= set(result.per_series["comparison"])

    # The report next to the student: the numbers of its tables are the per-series CSV's.
    path = tmp_path / "s.pt"
    paths = write_report(result, path, result.model.save(path))
    assert {p.parent for p in paths.values()} == {tmp_path}
    text = paths["markdown"].read_text()
    per = pd.read_csv(paths["csv"])
    st = per[per["comparison"] == "student_vs_teacher"]
    for key, g in st.groupby("class"):
        either = g[(g["pred_voxels"] + g["ref_voxels"]) > 0]
        if len(either):
            assert f"{either['dice'].mean():.3f}" in text, key
    assert f"{result.cost['teacher_s_per_scan']:.3f}" in text

    # Run a third time: every label is reused, so the teacher is timed afresh on held-out scans.
    third = CountingTeacher(teacher0)
    reused = distill(engine, home.masks_dir, third, DistillOptions(series_limit=6, seed=5, timing_scans=2,
                                                                   training=TINY, preprocessing=TINY_PRE))
    assert reused.teacher_labelled == [] and len(reused.teacher_reused) == 6
    assert third.calls == min(2, int(reused.sample["held_out"].sum())) == reused.cost["teacher_scans"]
    assert reused.cost["teacher_basis"] == "held-out scans timed in this run" and reused.cost["ratio"] > 0
    engine.dispose()


def test_cli_distill_writes_student_and_report_and_the_student_segments_like_any_model(study, tmp_path):
    home = study["home"]
    out = tmp_path / "models" / "student.pt"

    def cli(*args: str):
        return runner.invoke(app, ["--home", str(home.root), *args], catch_exceptions=False)

    result = cli("imaging", "distill", "--teacher", str(study["teacher"]), "--series-limit", "8", "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "4", "--size", "32", "--channels", "4,8",
                 "--val-fraction", "0.3", "--device", "cpu", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Student against teacher, held-out series" in result.output
    assert "Cost per scan" in result.output and "faster per scan" in result.output
    paths = report_paths(out)
    text = paths["markdown"].read_text()
    assert "Teacher and student against manual annotations" in text and "Before trusting the student" in text
    report = json.loads(paths["json"].read_text())
    student = load_model(out)
    assert report["model"]["version"] == student.version
    assert student.metadata["distillation"]["teacher"]["name"] == "tiny-teacher"
    assert student.metadata["distillation"]["teacher"]["version"] == load_model(study["teacher"]).version
    assert student.metadata["distillation"]["learned_from"]["series"] == 8
    comparisons = set(pd.read_csv(paths["csv"])["comparison"])
    assert "student_vs_teacher" in comparisons
    for uid in study["uids"]:  # no DICOM identifier travels with the model
        assert uid not in text and uid not in paths["json"].read_text()

    seg = cli("imaging", "segment", "--all", "--model", str(out), "--device", "cpu")
    assert seg.exit_code == 0, seg.output
    engine = make_engine(home.db_url)
    with session_scope(engine) as session:
        runs = session.scalars(select(SegmentationRun).where(SegmentationRun.model_version == student.version)).all()
        assert len(runs) == len(study["uids"]) and {r.status for r in runs} == {"done"}
        assert runs[0].model_name.startswith("unet2d-distilled from tiny-teacher")
    engine.dispose()

    # An unknown teacher is a clear error, not a traceback.
    bad = cli("imaging", "distill", "--teacher", str(tmp_path / "nope.pt"), "--out", str(out))
    assert bad.exit_code != 0
    assert "nope.pt" in bad.output


def test_cli_distill_from_the_phantom_model_with_rehearsal_starts_there_and_rehearses(study, tmp_path, one_thread):
    from imaging.model import DEFAULT_MODEL_PATH

    home = study["home"]
    out = tmp_path / "warm.pt"
    args = ["--home", str(home.root), "imaging", "distill", "--teacher", str(study["teacher"]), "--series-limit", "8",
            "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--val-fraction", "0.3",
            "--device", "cpu", "--out", str(out)]
    refused = runner.invoke(app, [*args, "--rehearsal", "2"], catch_exceptions=False)
    assert refused.exit_code == 2 and "--from" in refused.output  # rehearsal without a start keeps nothing
    not_unet = tmp_path / "deepmedic.pt"
    torch.save({"fully_connected.0.bn.weight": torch.ones(3)}, not_unet)  # a plain state dict, as BLAST-CT's
    refused = runner.invoke(app, [*args, "--from", str(not_unet)], catch_exceptions=False)
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "not a ctstudy imaging checkpoint" in said and "U-Net checkpoint" in said

    result = runner.invoke(app, [*args, "--from", "phantom", "--rehearsal", "2", "--rehearsal-fraction", "0.5"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    student, phantom = load_model(out), load_model(DEFAULT_MODEL_PATH)
    meta = student.metadata
    assert meta["initial_model"]["version"] == phantom.version
    assert meta["distillation"]["start"]["version"] == phantom.version
    assert student.preprocessing == phantom.preprocessing and student.net_config == phantom.net_config
    assert meta["metrics"]["history"][0]["epoch"] == 0  # the start competed on the validation patients
    assert meta["training_config"]["freeze_batchnorm"] is True and meta["training_config"]["lr"] == 3e-4
    assert meta["rehearsal"]["series"] == 2 and meta["rehearsal"]["fraction"] == 0.5
    assert meta["distillation"]["rehearsal_phantoms"] == 2
    assert meta["distillation"]["learned_from"]["series"] == 8  # phantoms are not the study's series


def test_report_cautions_when_a_warm_started_student_is_its_start_unchanged():
    from types import SimpleNamespace

    from imaging.distill_report import cautions

    summary = pd.DataFrame([{"comparison": "student_vs_teacher", "class": "iph", "with_class": 9, "dice_mean": 0.8}])

    def result(start, best_epoch):  # noqa: ANN001, ANN202 - what `cautions` reads of a DistillResult
        return SimpleNamespace(summary=summary, skipped={}, metadata={"start": start},
                               model=SimpleNamespace(metadata={"metrics": {"best_epoch": best_epoch}}))

    phantom = {"name": "unet2d-phantom", "version": "abc"}
    said = [c for c in cautions(result(phantom, 0)) if "unchanged" in c]
    assert len(said) == 1 and "unet2d-phantom" in said[0]
    assert not [c for c in cautions(result(phantom, 3)) if "unchanged" in c]
    assert not [c for c in cautions(result(None, 0)) if "unchanged" in c]  # no start: nothing to be unchanged from


def test_teacher_masks_outside_the_label_map_are_refused(study, tmp_path):
    from imaging.distill import check_labels

    check_labels(np.array([0, 1, 2, 3, 4], np.uint8), "x")
    with pytest.raises(ValueError, match="outside the project's label map"):
        check_labels(np.array([0, 7], np.uint8), "the teacher mask of series S")


# ---------------------------------------------------------------- the bar, with the phantom model as teacher

@pytest.mark.slow
def test_student_agrees_with_the_phantom_teacher_about_as_well_as_the_teacher_agrees_with_truth(tmp_path):
    from imaging.agreement import class_agreement, summarize_agreement
    from imaging.volume import load_series, read_mask_for

    study = tmp_path / "study"
    records = write_study(study, patients=10, seed=31, matrix=64, center="AA01")
    records += write_study(study, patients=6, seed=32, matrix=64, center="BB02")
    home = Home.resolve(tmp_path / "home")
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    ingest_directory(engine, home, study / "dicom", actor="test")
    with session_scope(engine) as session:
        for r in records:
            record_qc_decision(session, r["series_instance_uid"], "passed", None, "test")
    teacher = open_segmenter("phantom", torch.device("cpu"))
    options = DistillOptions(
        series_limit=None, seed=2,
        training=TrainingConfig(epochs=40, steps_per_epoch=40, batch_size=16, patch=64, lr=5e-3, seed=2,
                                val_fraction=0.3,
                                net={"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1}),
        preprocessing=Preprocessing(size=64, context_slices=1))
    result = distill(engine, home.masks_dir, teacher, options)

    held = result.sample.loc[result.sample["held_out"], "series_instance_uid"]
    assert len(held) >= 5 and set(result.sample.loc[result.sample["held_out"], "center"]) <= {"AA01", "BB02"}
    rows = []
    with session_scope(engine) as session:
        from imaging import store

        for uid in held:
            series = store.series_by_uid(session, uid)
            volume = load_series(store.instance_paths(session, series))
            run = store.run_for(session, series, teacher.version)
            truth = read_mask_for(study / "truth" / "masks" / f"{uid}.nii.gz", volume)
            rows += [{"comparison": "teacher_vs_truth", **r}
                     for r in class_agreement(read_mask_for(run.mask_path, volume), truth, volume.voxel_ml)]
    engine.dispose()
    teacher_truth = summarize_agreement(pd.DataFrame(rows)).set_index("class")
    student_teacher = result.summary[result.summary["comparison"] == "student_vs_teacher"].set_index("class")
    judged = teacher_truth.index[teacher_truth["with_class"] >= 3]
    assert len(judged) >= 2  # the phantoms' lesion classes
    for key in judged:
        bar = teacher_truth.at[key, "dice_mean"] - 0.05
        assert student_teacher.at[key, "dice_mean"] >= bar, (key, student_teacher.at[key, "dice_mean"], bar)
