"""A new user's adaptation, command by command: a study from another scanner profile is ingested and segmented
with the phantom model, ten series go out for correction, the annotator corrects them (three only on the slices
they looked at, the rest of those left 255 = not annotated), the corrections come back, `imaging adapt` shows
the gain on held-out patients and `--promote` makes the adapted model the one `segment --model study` uses.
About a minute on one thread (64 x 64 phantoms, a four-epoch fine-tuning), so it runs with the fast tests.

The scanner is the shifted one of `bench/adapt_curve_bench.py` (thin noisy slices, basal cisterns the phantom
U-Net reads as edema), where adapting gains; the README's walk-through runs these commands.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from imaging_dicom_factory import write_ct_series
from sqlalchemy import select
from typer.testing import CliRunner

from ctstudy.cli import app
from imaging.volume import read_mask, write_mask
from registry.db.engine import make_engine, session_scope
from registry.db.models import CorrectionAgreement, ManualAnnotation, SegmentationRun, Series, StudyModel
from registry.home import Home
from vocabulary.labels import UNANNOTATED

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from adapt_curve_bench import shifted_scanner_grid, shifted_scanner_series  # noqa: E402

CENTER = "SH01"
PATIENTS = 10
PARTIAL = 3  # corrections annotated only on the slices around the lesion
MARGIN = 0.05  # held-out score gain the adapted model must show
# A short fine-tuning on one thread (small patches: one is faster than two fighting a loaded machine).
ADAPT = ("--from", "phantom", "--epochs", "4", "--steps-per-epoch", "15", "--threads", "1")

runner = CliRunner()


def write_shifted_scanner_study(out: Path, patients: int, seed: int, matrix: int) -> dict[str, np.ndarray]:
    """DICOM of `patients` heads from the shifted scanner under `out/<CENTER>/`; their truth by series UID."""
    rng = np.random.default_rng(seed)
    grid = shifted_scanner_grid(matrix)
    truth = {}
    for i in range(patients):
        r = shifted_scanner_series(i, seed, grid, rng)
        uid = f"2.25.{seed}{i:04d}{int(rng.integers(1 << 40))}"
        write_ct_series(out / CENTER / f"{CENTER}-{i:04d}" / "ct", r.hu, spacing=grid.spacing,
                        positions=[tuple(v) for v in grid.slice_positions()], series_uid=uid,
                        patient_id=f"{CENTER}-{i:04d}")
        truth[uid] = r.labels
    return truth


def annotate_partly(truth: np.ndarray) -> np.ndarray:
    """The truth on the slices with lesion and one slice either side; every other slice not annotated."""
    lesion = np.flatnonzero((truth > 0).any(axis=(1, 2)))
    out = np.full_like(truth, UNANNOTATED)
    lo, hi = max(0, lesion.min() - 1), min(truth.shape[0], lesion.max() + 2)
    out[lo:hi] = truth[lo:hi]
    return out


def run(home: Path, *args: str) -> str:
    result = runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich folds long lines at the terminal's width


def test_a_new_user_corrects_ten_series_adapts_sees_the_gain_and_segments_with_the_promoted_model(tmp_path):
    home = tmp_path / "home"
    truth = write_shifted_scanner_study(tmp_path / "dicom", PATIENTS, seed=3, matrix=64)
    run(home, "init")
    run(home, "registry", "ingest", str(tmp_path / "dicom"))
    # The scanner covers the head from the skull base to the vertex only: the coordinator accepts the series.
    assert f"{PATIENTS} series awaiting a QC decision" in run(home, "registry", "qc-queue")
    for uid in truth:
        run(home, "registry", "qc", uid, "--pass", "--reason", "coverage enough for the lesion")
    run(home, "imaging", "segment", "--all", "--model", "phantom", "--threads", "1")
    package = tmp_path / "corrections"
    run(home, "imaging", "export-correction", "--center", CENTER, "--limit", "10", "--out", str(package))
    exported = sorted(p.name[: -len(".nii.gz")] for p in (package / "masks").glob("*.nii.gz"))
    assert exported == sorted(truth)

    # The annotator corrects each mask in place: seven whole, three only around the lesion.
    partial = exported[:PARTIAL]
    for uid in exported:
        _, affine = read_mask(package / "masks" / f"{uid}.nii.gz")
        labels = annotate_partly(truth[uid]) if uid in partial else truth[uid]
        write_mask(package / "masks" / f"{uid}.nii.gz", labels, affine)
    said = run(home, "imaging", "import-corrections", str(package), "--annotator", "reader 1")
    assert f"{PATIENTS} corrections imported" in said and said.count("partial ") == PARTIAL
    engine = make_engine(Home.resolve(home).db_url)
    with session_scope(engine) as session:
        shares = {(a.series_id, r.annotated_fraction) for r, a in session.execute(
            select(CorrectionAgreement, ManualAnnotation).join(
                ManualAnnotation, ManualAnnotation.id == CorrectionAgreement.annotation_id)).all()}
        assert len({sid for sid, _ in shares}) == PATIENTS
        assert sum(share < 1.0 for _, share in shares) == PARTIAL
        stored = session.scalars(select(ManualAnnotation)).all()
        assert sum(bool((read_mask(a.mask_path)[0] == UNANNOTATED).any()) for a in stored) == PARTIAL
    summary = run(home, "imaging", "corrections")
    assert "Partial corrections" in summary and "Mean share of the scan annotated" in summary
    # `imaging evaluate` against the annotations scores the phantom model's masks over the annotated voxels too.
    run(home, "imaging", "evaluate", "--out", str(tmp_path / "eval.csv"))
    evaluated = pd.read_csv(tmp_path / "eval.csv").query("`class` == 'iph'").set_index("series_instance_uid")
    assert int((evaluated["annotated_fraction"] < 1.0).sum()) == PARTIAL
    with session_scope(engine) as session:
        agreed = dict(session.execute(
            select(Series.series_instance_uid, CorrectionAgreement.dice)
            .join(ManualAnnotation, ManualAnnotation.id == CorrectionAgreement.annotation_id)
            .join(Series, Series.id == ManualAnnotation.series_id)
            .where(CorrectionAgreement.lesion_class == "iph")).all())
    assert evaluated["dice"].to_dict() == pytest.approx(agreed)

    said = run(home, "imaging", "adapt", "--promote", *ADAPT)
    print(said)  # the before/after table the user reads (pytest -s shows it)
    match = re.search(r"([0-9.]+) before, ([0-9.]+) after: better", said)
    assert match, said
    before, after = float(match.group(1)), float(match.group(2))
    assert after > before + MARGIN, (before, after)
    assert "Promoted" in said
    spec = said.split()[-1]
    assert Path(spec).is_file()

    run(home, "imaging", "segment", "--all", "--model", "study", "--threads", "1")
    with session_scope(engine) as session:
        promoted = session.scalars(select(StudyModel).where(StudyModel.promoted_at.is_not(None))).one()
        assert promoted.path == spec
        latest = session.scalars(select(SegmentationRun).where(SegmentationRun.model_version == promoted.version)
                                 ).all()
        assert len(latest) == PATIENTS and all(r.status == "done" for r in latest)
    engine.dispose()
