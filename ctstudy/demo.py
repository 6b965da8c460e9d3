"""`ctstudy demo`: the whole pipeline on a synthetic study, ending with the dashboard's address.

The demo is a script of the real commands a study team would type, run in-process and printed
as it goes (`$ ctstudy registry ingest ...`), so that reading its output teaches the tool. It is
idempotent: run it again on the same home and every step reports that nothing is new.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import TextIO

import pandas as pd
import typer
from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from sqlalchemy import func, select

from registry.access.users import add_user
from registry.db.engine import make_engine, session_scope
from registry.db.models import QC_PASSED, QC_PENDING, Center, Patient, Series, Study, User
from registry.db.store import record_qc_decision
from registry.home import Home

# Soft wrap: a long line of the demo's own is one line in a log file, never folded at the console's width.
console = Console(soft_wrap=True)
# Width of the demo's output when it goes to a file or a pipe (rich assumes 80 columns there): wide enough for
# the commands' tables and lines to stay whole in a log.
LOG_COLUMNS = 200


def widen_output_when_piped(stream: TextIO = sys.stdout, environ: MutableMapping[str, str] = os.environ) -> bool:
    """When `stream` is not a terminal and COLUMNS is unset, set COLUMNS to LOG_COLUMNS; True when it did.

    Every rich Console of the commands the demo runs in-process reads COLUMNS when it lays a line out (they are
    made without a fixed width), so a demo written to a file is not hard-wrapped at 80 columns.
    """
    if stream.isatty() or environ.get("COLUMNS"):
        return False
    environ["COLUMNS"] = str(LOG_COLUMNS)
    return True

DEMO_ACTOR = "demo-coordinator"
# One log-in per role, printed at the end. Demo passwords only: a real deployment creates its
# users with `ctstudy users add` and passwords of its own.
DEMO_USERS = (
    ("coord", "coordinator", "demo-coord"),
    ("stats", "statistician", "demo-stats"),
    ("investigator", "investigator", "demo-invest"),
    ("admin", "admin", "demo-admin"),
)


# Bootstrap repetitions for the demo's model fits: enough for intervals, quick to run.
DEMO_BOOTSTRAP = 100
# Patients with clinical data and outcomes but no images, beside the imaged ones: with them the clinical models
# are fitted on about 1,060 patients, which meets Riley et al.'s sample-size criteria for their 11 parameters
# (about 880 patients for mortality at 30 %, tests/ctstudy); the models with imaging terms are fitted on the
# imaged patients only (prognosis.model_rows), short of the criteria and so penalized.
DEMO_TABULAR_PATIENTS = 1000
# The demo's outcome-model fits, in order (tests/prognosis runs the same steps on several seeds).
DEMO_MODEL_FITS = (
    ("mortality", "clinical"), ("mortality", "clinical+imaging"),
    ("unfavourable", "clinical"), ("unfavourable", "clinical+imaging"),
    ("gos", "clinical+imaging"), ("survival", "clinical+imaging"),
)


class DemoStepFailed(RuntimeError):
    pass


def run_command(home: Home, *args: str | Path) -> None:
    """Run one `ctstudy` command in-process against `home`, echoing it first; raise if it fails."""
    from ctstudy.cli import app  # the demo is mounted on this app: import late to avoid a cycle

    words = [str(a) for a in args]
    console.print(Rule(style="dim"))
    console.print(f"[bold cyan]$ ctstudy {' '.join(words)}[/bold cyan]")
    command = typer.main.get_command(app)
    try:
        code = command.main(args=["--home", str(home.root), "--db-url", home.db_url, *words],
                            prog_name="ctstudy", standalone_mode=False)
    except SystemExit as exc:  # typer.Exit inside a command surfaces as SystemExit or a return code
        code = exc.code
    if code not in (None, 0):
        raise DemoStepFailed(f"`ctstudy {' '.join(words)}` exited with status {code}")


# Series of the demo coordinator's center left waiting for review: the last ones to arrive, so that the
# coordinator opens the Quality-control page (or `registry qc-queue`) on real decisions to take.
DEMO_LEFT_FOR_REVIEW = 5


def coordinator_center(home: Home) -> str | None:
    """The center of the demo coordinator: the one with the most patients (ties by code)."""
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            return session.scalars(
                select(Center.code).join(Patient).group_by(Center.code)
                .order_by(func.count(Patient.id).desc(), Center.code)).first()
    finally:
        engine.dispose()


def review_pending_series(home: Home, defects_csv: Path, leave_center: str | None = None,
                          leave: int = DEMO_LEFT_FOR_REVIEW) -> tuple[int, int, int]:
    """Play the coordinator's visual review of the series pending QC; return (passed, failed, left pending).

    A person would look at each series in the dashboard's QC page. Here the synthetic study's own
    defect list stands in for their eyes: series with metal streak artifacts (which no header check
    can see) or with identifiers left in their headers are failed with that reason; the rest pass.
    The last `leave` series of `leave_center` to arrive stay pending, for the demo coordinator to
    decide; a second run finds the same ones pending and leaves them again.
    """
    defects = pd.read_csv(defects_csv, dtype=str).fillna("") if defects_csv.exists() else pd.DataFrame()
    metal = set(defects.loc[defects.get("kind", pd.Series(dtype=str)) == "metal_artifact", "series_instance_uid"]) \
        if not defects.empty else set()
    engine = make_engine(home.db_url)
    passed = failed = 0
    try:
        with session_scope(engine) as session:
            pending = session.scalars(select(Series).where(Series.qc_status == QC_PENDING)
                                      .order_by(Series.ingested_at, Series.id)).all()
            kept = [s.id for s in pending if s.study.patient.center.code == leave_center][-leave:] \
                if leave_center and leave > 0 else []
            for series in pending:
                if series.id in kept:
                    continue
                if series.series_instance_uid in metal:
                    reason = "metal streak artifacts obscure the brain"
                elif series.phi_tags:
                    reason = f"identifiers left in the header ({', '.join(series.phi_tags)}): center to resend"
                else:
                    reason = None
                record_qc_decision(session, series.series_instance_uid, "failed" if reason else "passed",
                                   reason, DEMO_ACTOR)
                failed += bool(reason)
                passed += not reason
    finally:
        engine.dispose()
    return passed, failed, len(kept)


def annotation_batch(study: Path, folder: Path, every: int = 3) -> Path:
    """A folder holding the truth masks of every `every`-th patient's series: the annotators' first batch."""
    series = pd.read_csv(study / "truth" / "series.csv", dtype=str)
    patients = sorted(series["patient_id"].unique())[::every]
    folder.mkdir(parents=True, exist_ok=True)
    for uid in series.loc[series["patient_id"].isin(patients), "series_instance_uid"]:
        target = folder / f"{uid}.nii.gz"
        if not target.exists():
            shutil.copyfile(study / "truth" / "masks" / f"{uid}.nii.gz", target)
    return folder


REAL_CENTER = "CTICH"
# Intra-op threads of the demo's phantom U-Net (see the segmentation step in `demo`).
PHANTOM_THREADS = 1


def real_center_series(home: Home) -> list[tuple[str, str]]:
    """(SeriesInstanceUID, qc_status) of the real CT-ICH center's series, oldest first."""
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            rows = session.execute(
                select(Series.series_instance_uid, Series.qc_status).join(Study).join(Patient).join(Center)
                .where(Center.code == REAL_CENTER).order_by(Series.id)).all()
            return [(uid, status) for uid, status in rows]
    finally:
        engine.dispose()


def show_real_ct_results(home: Home, uids: list[str]) -> None:
    """Per patient: hemorrhage found by the real-CT model vs the CT-ICH radiologists' masks (Dice, mL)."""
    import numpy as np

    from ctstudy import ct_ich
    from imaging import store as imaging_store
    from imaging.deepmedic_inference import default_ensemble, open_blast_ct
    from imaging.volume import read_mask
    from vocabulary.labels import HEMORRHAGE_LABELS, LESION_CLASSES

    version = open_blast_ct(torch_cpu(), default_ensemble(torch_cpu())).version
    table = Table(title="Real CT (CT-ICH, CC BY 4.0): real-CT model blast-ct vs the dataset's hemorrhage masks")
    for column in ("patient", "slices", "hemorrhage Dice", *(c.key + " mL" for c in LESION_CLASSES)):
        table.add_column(column, justify="right")
    stacks = {ct_ich.series_uid(sl): (patient, sl) for patient, numbers in ct_ich.DEMO_STACKS
              for sl in [ct_ich.patient_slices(patient, numbers)]}
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            for uid in uids:
                run = imaging_store.latest_done_run(session, imaging_store.series_by_uid(session, uid), version)
                if run is None or uid not in stacks:
                    continue
                labels, affine = read_mask(run.mask_path)
                patient, slices = stacks[uid]
                truth = ct_ich.truth_masks(slices)
                pred = np.isin(labels, HEMORRHAGE_LABELS)
                dice = 2 * int((pred & truth).sum()) / max(1, int(pred.sum()) + int(truth.sum()))
                voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000
                table.add_row(str(patient), str(labels.shape[0]), f"{dice:.2f}",
                              *(f"{int((labels == c.value).sum()) * voxel_ml:.1f}" for c in LESION_CLASSES))
    finally:
        engine.dispose()
    console.print(table)
    console.print(f"Images: {ct_ich.ATTRIBUTION}. Model: BLAST-CT (Monteiro et al., Lancet Digit Health 2020; "
                  "Apache-2.0). JPG brain-window slices converted to DICOM: HU approximated, 0.36 mm pixels assumed.")


def torch_cpu():  # noqa: ANN201 - a torch.device; torch is imported late to keep `ctstudy --help` fast
    import torch

    return torch.device("cpu")


def run_real_center(home: Home) -> None:
    """The CT-ICH stacks of patients 81 and 78 as a small real center, segmented by the real-CT model."""
    from ctstudy import ct_ich

    root = home.root / "ct-ich-dicom"
    if not (root / REAL_CENTER).is_dir():
        ct_ich.write_demo_center(root / REAL_CENTER)
    console.print(Rule(style="dim"))
    console.print(f"a small real center: CT-ICH patients 81 (subdural) and 78 (epidural), {ct_ich.ATTRIBUTION}")
    run_command(home, "registry", "ingest", root, "--in-place", "--actor", DEMO_ACTOR)
    # The automatic QC rightly flags these stacks (partial head coverage, few slices: the dataset
    # published only some slices); the coordinator reviews them and accepts them for the demo.
    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            for uid, status in real_center_series(home):
                if status != QC_PASSED:
                    record_qc_decision(session, uid, "passed", "partial stack of a public dataset: accepted for the "
                                       "demonstration", DEMO_ACTOR)
    finally:
        engine.dispose()
    uids = [uid for uid, _ in real_center_series(home)]
    run_command(home, "imaging", "segment", "--model", "blast-ct", *(w for u in uids for w in ("--series", u)))
    show_real_ct_results(home, uids)


def ensure_demo_users(home: Home, largest: str | None) -> list[tuple[str, str, str, str]]:
    """One user per role (the coordinator on center `largest`); existing ones are left as they are."""
    engine = make_engine(home.db_url)
    rows = []
    try:
        with session_scope(engine) as session:
            for username, role, password in DEMO_USERS:
                center = largest if role == "coordinator" else None
                if session.scalar(select(User.id).where(User.username == username)) is None:
                    add_user(session, username, role, password, center_code=center, actor=DEMO_ACTOR)
                rows.append((username, password, role, f"center {center}" if center else "all centers"))
    finally:
        engine.dispose()
    return rows


def set_demo_targets(home: Home) -> None:
    """Per-center targets, as the study's admin would set them on the Collection page: each synthetic center
    owes its share of the study's patients, all of them with a QC-passed scan and segmented. Targets already
    stored are left as they are."""
    from registry.collection.targets import TARGET_METRICS, set_target, stored_targets

    engine = make_engine(home.db_url)
    try:
        with session_scope(engine) as session:
            stored = stored_targets(session)
            have = set(zip(stored["center"], stored["metric"], strict=True))
            patients = dict(session.execute(select(Center.code, func.count(Patient.id)).join(Patient)
                                            .where(Center.code != REAL_CENTER).group_by(Center.code)).all())
            # Series are owed by the patients with images only (not by those with clinical data alone).
            imaged = dict(session.execute(select(Center.code, func.count(func.distinct(Patient.id))).join(Patient)
                                          .join(Study).where(Center.code != REAL_CENTER).group_by(Center.code)).all())
            for code, n in sorted(patients.items()):
                # Enrolment still open: each center aims a little beyond what it has sent so far.
                scans = 2 * max(1, imaged.get(code, 0))
                wanted = {"patients": n + n // 4 + 1, "series_qc_passed": scans, "series_segmented": scans}
                for metric, value in wanted.items():
                    if metric in TARGET_METRICS and (code, metric) not in have:
                        set_target(session, code, metric, value, DEMO_ACTOR)
    finally:
        engine.dispose()


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else a free port the OS picks."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def demo(
    ctx: typer.Context,
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after the pipeline; don't start the dashboard."),
    port: int = typer.Option(8501, "--port", help="Dashboard port (another free one if taken)."),
    centers: int = typer.Option(5, "--centers", min=1),
    patients: int = typer.Option(60, "--patients", min=1),
    seed: int = typer.Option(0, "--seed", help="Synthetic study seed (the default model was trained on another seed)."),
    tabular_patients: int = typer.Option(DEMO_TABULAR_PATIENTS, "--tabular-patients", min=0,
                                         help="Patients with clinical data and outcomes but no images (0: none)."),
) -> None:
    """Generate a synthetic study into the home and run the whole pipeline on it, then serve the dashboard."""
    home: Home = ctx.obj
    study = home.root / "synthetic-study"
    widen_output_when_piped()
    console.print(f"[bold]ctstudy demo[/bold]: data home {home.root}")
    try:
        run_command(home, "init")
        if not (study / "truth" / "series.csv").exists():
            run_command(home, "synth", "--out", study, "--centers", centers, "--patients", patients,
                        "--seed", seed, "--defects", "--tabular-patients", tabular_patients)
        else:
            console.print(f"synthetic study already at {study}: reused")
        # The study already lives in the home: index it in place rather than keep a second copy.
        run_command(home, "registry", "ingest", study / "dicom", "--in-place", "--actor", DEMO_ACTOR)
        # The study's clinical file carries one impossible value on purpose: import the valid
        # rows and show the rejected one, as a coordinator would.
        run_command(home, "registry", "import-clinical", study / "clinical.csv", "--skip-invalid",
                    "--actor", DEMO_ACTOR)
        run_command(home, "registry", "import-outcomes", study / "outcomes.csv", "--actor", DEMO_ACTOR)
        if (study / "clinical_tabular.csv").exists():
            # The study's patients whose CT stayed at their center: clinical data and outcomes only. They are
            # new to the registry (no images were ingested for them), hence --create.
            run_command(home, "registry", "import-clinical", study / "clinical_tabular.csv", "--create",
                        "--actor", DEMO_ACTOR)
            run_command(home, "registry", "import-outcomes", study / "outcomes_tabular.csv", "--actor", DEMO_ACTOR)
            console.print(Rule(style="dim"))
            console.print("patients without images: clinical data and outcomes of the patients whose CT was read at "
                          "their center but not sent (`No CT received` below); the clinical outcome models use them, "
                          "the models with imaging terms do not")
        coordinator = coordinator_center(home)
        passed, failed, left = review_pending_series(home, study / "truth" / "defects.csv", coordinator)
        console.print(Rule(style="dim"))
        console.print(f"coordinator review (stands in for the QC page): {passed} series passed, {failed} failed; "
                      f"{left} of center {coordinator} left waiting for its coordinator (log-in `coord`, below)")
        if coordinator is not None:
            run_command(home, "registry", "qc-queue", "--center", coordinator)
        run_command(home, "registry", "progress")
        run_command(home, "registry", "missing")

        # Annotators have drawn hematoma and edema on a first batch of series (the synthetic truth
        # stands in for their masks), as in CREACTIVE where manual masks covered part of the scans.
        batch = annotation_batch(study, home.root / "annotations-batch-1")
        run_command(home, "registry", "import-annotations", batch, "--annotator", "demo-annotator",
                    "--actor", DEMO_ACTOR)
        # The phantoms are segmented by the phantom-trained U-Net (it has never seen a patient);
        # real scans get the real-CT model (below, on the CT-ICH center).
        console.print(Rule(style="dim"))
        console.print("segmentation model for the synthetic phantoms: [bold]phantom[/bold] (a U-Net trained on "
                      "phantoms only; real studies use the default, blast-ct)")
        # Only the synthetic centers: the real center below is segmented by the real-CT model alone.
        synthetic_centers = sorted(p.name for p in (study / "dicom").iterdir() if p.is_dir())
        # One thread: the phantom U-Net is small (27 slices of 256 x 256 per series), so a second intra-op thread
        # mostly waits at its barriers; on 2 cores one thread took 0.38 CPU s and 1.41 s per series against 1.12 CPU
        # s and 3.38 s for two (`bench/demo_bench.py --unet-threads`, docs/benchmarks.md).
        run_command(home, "imaging", "segment", "--all", "--model", "phantom", "--threads", PHANTOM_THREADS,
                    *(w for code in synthetic_centers for w in ("--center", code)))
        run_command(home, "imaging", "evaluate", "--against", "truth-dir", "--truth-dir", study / "truth")
        # The real center joins before the biomarkers and models, so that a second run finds every
        # step already done (the same masks, the same analysis table, the same fits).
        run_real_center(home)
        run_command(home, "biomarkers", "extract")
        run_command(home, "biomarkers", "export", home.reports_dir / "biomarkers_per_patient.csv", "--per-patient")
        for outcome, features in DEMO_MODEL_FITS:
            run_command(home, "prognosis", "fit", "--outcome", outcome, "--features", features,
                        "--n-boot", DEMO_BOOTSTRAP)
        run_command(home, "prognosis", "report", "--out", home.reports_dir, "--n-boot", DEMO_BOOTSTRAP, "--pdf")
        set_demo_targets(home)
        logins = ensure_demo_users(home, coordinator)
    except DemoStepFailed as exc:
        console.print(f"[red]demo stopped:[/red] {exc}")
        raise typer.Exit(1) from exc

    console.print(Rule(style="dim"))
    table = Table(title="Dashboard log-ins (demo passwords: change them with `ctstudy users passwd`)")
    for column in ("user", "password", "role", "sees"):
        table.add_column(column)
    for row in logins:
        table.add_row(*row)
    console.print(table)
    console.print(f"Outcome-model report: {home.reports_dir / 'prognosis_report.html'}")
    if no_serve:
        console.print(f"Done (--no-serve). Start the dashboard with: ctstudy --home {home.root} dashboard")
        return
    serve_in_place_of_demo(home, free_port(port))


def dashboard_exec_args(home: Home, port: int) -> list[str]:
    """The command line of `ctstudy --home HOME --db-url URL dashboard --port PORT`, run by this Python."""
    return [sys.executable, "-c", "from ctstudy.cli import main; main()", "--home", str(home.root),
            "--db-url", home.db_url, "dashboard", "--port", str(port)]


def serve_in_place_of_demo(home: Home, port: int) -> None:
    """Replace this process by `ctstudy dashboard` (exec): the pipeline's memory (models, volumes, imported
    libraries: over a gigabyte) is handed back, rather than held by a parent that only waits for the server."""
    console.print(Rule(style="dim"))
    console.print(f"[bold cyan]$ ctstudy dashboard --port {port}[/bold cyan]")
    sys.stdout.flush()
    sys.stderr.flush()
    args = dashboard_exec_args(home, port)
    os.execv(args[0], args)
