"""`ctstudy imaging ...`: train, segment, export DICOM SEG, evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cluster.executor import SCHEDULER_HELP, open_executor
from imaging import store
from imaging.devices import select_device, set_cpu_threads
from imaging.volume import GridMismatchError, SeriesGeometryError, grid_difference, read_mask, read_mask_for
from registry.cli_support import open_registry
from registry.cli_tables import print_table
from registry.csv_export import write_csv
from registry.db.engine import session_scope
from registry.db.models import QC_AUTO_FAILED, QC_FAILED
from vocabulary.dictionary import label, short_uid

app = typer.Typer(help="Lesion segmentation (IPH, extra-axial, edema, IVH): train, segment, export, evaluate.",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)

DEVICE = typer.Option("auto", "--device", help="auto (CUDA if available, else CPU), cpu or cuda.")
MODEL = typer.Option(None, "--model", help="Checkpoint file (default: the model shipped in imaging/default_model).")
SCHEDULER = typer.Option("in-process", "--scheduler", help=SCHEDULER_HELP)
GPU_ONLY = typer.Option(None, "--gpu/--any-worker",
                        help="On a cluster: only workers started with --resources GPU=1 segment "
                             "(default: when the cluster has such workers).")




def _truth_masks(truth_dir: Path) -> dict[str, Path]:
    """<SeriesInstanceUID> -> mask file, from a synthetic truth folder (truth/ or truth/masks/)."""
    folder = truth_dir / "masks" if (truth_dir / "masks").is_dir() else truth_dir
    masks = {p.name[: -len(".nii.gz")]: p for p in sorted(folder.glob("*.nii.gz"))}
    if not masks:
        raise FileNotFoundError(f"{folder}: no <SeriesInstanceUID>.nii.gz masks")
    return masks


def _reference_masks(session, truth_dir: Path | None) -> list[tuple[object, Path]]:  # noqa: ANN001
    """(Series, mask path) pairs: manual annotations, or a truth folder's masks of registered series."""
    if truth_dir is None:
        return [(s, Path(a.mask_path)) for s, a in store.latest_annotations(session)]
    pairs = []
    for uid, path in _truth_masks(truth_dir).items():
        try:
            pairs.append((store.series_by_uid(session, uid), path))
        except LookupError:
            continue  # a truth mask of a series that was rejected at ingest or never sent
    return pairs


@app.command()
def train(
    ctx: typer.Context,
    epochs: int = typer.Option(40, "--epochs", min=1),
    steps_per_epoch: int = typer.Option(40, "--steps-per-epoch", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    device: str = DEVICE,
    out: Path = typer.Option(None, "--out", help="Checkpoint to write (default <home>/models/unet2d.pt)."),
    truth_dir: Path | None = typer.Option(None, "--truth-dir", exists=True, file_okay=False,
                                          help="Use a synthetic truth folder's masks as the annotations."),
    seed: int = typer.Option(1, "--seed"),
    size: int = typer.Option(256, "--size", help="Network input size (pixels, square)."),
    context_slices: int = typer.Option(1, "--context-slices", help="2.5D: neighbours on each side as channels."),
    channels: str = typer.Option("8,16,32,64,128", "--channels", help="U-Net widths per level."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the cores available)."),
    init_from: Path | None = typer.Option(None, "--init-from", exists=True, dir_okay=False,
                                          help="Start from this checkpoint's weights (fine-tune; a two-class "
                                               "checkpoint seeds the new classes from its hematoma channel)."),
    lr: float = typer.Option(3e-3, "--lr", min=0.0, help="Peak learning rate of the one-cycle schedule."),
) -> None:
    """Train the 2D U-Net on the study's manual annotations (or a synthetic truth folder)."""
    from imaging.model import load_model
    from imaging.preprocess import Preprocessing
    from imaging.train import TrainingConfig, TrainingExample, train_model

    with open_registry(ctx) as (home, engine):
        dev = select_device(device)
        if dev.type == "cpu":
            set_cpu_threads(threads)
        examples = []
        with session_scope(engine) as session:
            pairs = _reference_masks(session, truth_dir)
            if not pairs:
                raise LookupError("no annotated series: import masks with `ctstudy registry import-annotations DIR` "
                                  "or pass --truth-dir")
            with Progress(TextColumn("loading"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
                task = bar.add_task("load", total=len(pairs))
                for series, mask_path in pairs:
                    try:
                        vol = store.load_series_volume(session, series)
                        labels = read_mask_for(mask_path, vol)
                    except (SeriesGeometryError, GridMismatchError) as exc:
                        err.print(f"[yellow]skipped[/yellow] {exc}")
                    else:
                        examples.append(TrainingExample(series.series_instance_uid, store.patient_key(session, series),
                                                        vol.hu, labels))
                    bar.advance(task)
        cfg = TrainingConfig(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, seed=seed, lr=lr,
                             net={"channels": [int(c) for c in channels.split(",")],
                                  "strides": [2] * (len(channels.split(",")) - 1), "num_res_units": 1})
        pre = Preprocessing(size=size, context_slices=context_slices)
        console.print(f"{len(examples)} annotated series; training on {dev} for {epochs} epochs x "
                      f"{steps_per_epoch} steps of {batch_size}.")
        columns = [TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}  val Dice {task.fields[dice]}"),
                   TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("train", total=epochs * steps_per_epoch, epoch=1, loss=float("nan"), dice="-")

            def on_step(epoch: int, step: int, loss: float) -> None:
                bar.update(task, advance=1, epoch=epoch, loss=loss)

            def on_epoch(report) -> None:  # noqa: ANN001
                dice = " ".join(f"{k} {v:.3f}" for k, v in report.val_dice.items()) or "-"
                bar.update(task, dice=dice)
                if not console.is_terminal:  # a log file gets no live bar: one line per epoch instead
                    console.print(f"epoch {report.epoch}/{epochs}: loss {report.loss:.3f}, validation Dice {dice}, "
                                  f"{report.seconds:.0f} s")

            model = train_model(examples, cfg, pre, dev, on_step=on_step, on_epoch=on_epoch,
                                initial=load_model(init_from) if init_from is not None else None)
        path = out or home.models_dir / "unet2d.pt"
        version = model.save(path)
        m = model.metadata["metrics"]
        console.print(f"Model written to {path} (version {version[:16]}); best epoch {m['best_epoch']}, "
                      f"validation Dice {m['val_dice']}.")


@app.command()
def segment(
    ctx: typer.Context,
    all_series: bool = typer.Option(False, "--all", help="Every QC-passed series."),
    series: list[str] | None = typer.Option(None, "--series", help="SeriesInstanceUID (repeatable)."),
    centers: list[str] | None = typer.Option(None, "--center",
                                             help="With --all: only this center's series (repeatable)."),
    model_spec: str = typer.Option("study", "--model",
                                   help="study (the default: the study's promoted model from `imaging adapt --promote` "
                                        "when there is one, else blast-ct), blast-ct (BLAST-CT's networks, trained on "
                                        "real TBI CT), phantom (the demo's phantom-trained U-Net, never saw a "
                                        "patient) or a checkpoint path."),
    ensemble: int | None = typer.Option(None, "--ensemble", min=1,
                                        help="blast-ct: networks averaged in probability (default 1; each adds "
                                             "one network's time; up to the 5 shipped)."),
    resample: bool = typer.Option(False, "--resample",
                                  help="Segment series with irregular slice spacing by resampling them to a regular "
                                       "grid (masks mapped back onto the received instances) instead of failing."),
    fp32: bool = typer.Option(False, "--fp32",
                              help="blast-ct and adapted DeepMedic models on CPU: fp32 throughout instead of verified "
                                   "bf16 (used where the CPU computes bf16 natively; the same labels either way)."),
    device: str = DEVICE,
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Slices per forward pass (U-Net models)."),
    include_pending: bool = typer.Option(False, "--include-pending", help="Also series whose QC is still pending."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the cores the load average "
                                                                "leaves free, at least one)."),
    scheduler: str = SCHEDULER,
    gpu: bool | None = GPU_ONLY,
) -> None:
    """Segment lesions (IPH, extra-axial, edema, IVH) in QC-passed series; masks under <home>/masks, one run each."""
    from imaging.biomarker_source import current_biomarker_masks, source_changes
    from imaging.segment import segment_registered_series, series_uids_to_segment
    from imaging.segmenters import open_segmenter

    if not all_series and not series:
        err.print("[red]error:[/red] name --series UID (repeatable) or --all")
        raise typer.Exit(2)
    with open_registry(ctx) as (home, engine), open_executor(scheduler) as executor:
        # On a cluster the model is opened here on the CPU and each worker moves it to its own device.
        dev = select_device("cpu" if executor.distributed else device)
        n_threads = (set_cpu_threads(threads, beside_load=True) if dev.type == "cpu" and not executor.distributed
                     else None)
        from imaging.adapt_study import resolve_default_spec

        with session_scope(engine) as session:
            model_spec = resolve_default_spec(session, model_spec)
        try:
            segmenter = open_segmenter(model_spec, dev, batch_size=batch_size, ensemble=ensemble,
                                       precision="fp32" if fp32 else "auto")
        except (ValueError, FileNotFoundError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        try:
            uids = series_uids_to_segment(engine, None if all_series else list(series or []), include_pending,
                                          list(centers or []))
        except (ValueError, LookupError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        with session_scope(engine) as session:
            current = current_biomarker_masks(session, uids)
        members = len(segmenter.members)
        where = f"on {executor.describe()} (device {device} per worker)" if executor.distributed else f"on {dev}"
        console.print(f"{len(uids)} series; model {segmenter.name} {segmenter.version[:16]}"
                      + (f" (ensemble of {members} networks)" if members > 1 else "") + f" {where}"
                      + (f" ({n_threads} threads)" if n_threads else "")
                      + ("; irregular series resampled" if resample else ""))
        with Progress(TextColumn("segment"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("segment", total=len(uids), last="")
            report = segment_registered_series(
                engine, home.masks_dir, segmenter, uids,
                on_series=lambda uid, outcome: bar.update(task, advance=1,
                                                          last=f"last: series {short_uid(uid)} {outcome}"),
                executor=executor, worker_device=device if executor.distributed else None, gpu=gpu,
                resample=resample)
        secs = list(report.seconds.values())
        console.print(f"{len(report.done)} segmented, {len(report.skipped)} already done by this model, "
                      f"{len(report.failed)} failed" + (f"; median {np.median(secs):.2f} s per series" if secs else ""))
        for uid, note in report.notes.items():
            console.print(f"[dim]{uid}: {note}[/dim]")
        for uid, error in report.failed.items():
            err.print(f"[red]failed[/red] {uid}: {error}")
        changed = source_changes(current, list(report.done), segmenter.name, segmenter.version)
        for uid, before in changed.items():
            console.print(f"[yellow]biomarker source changes[/yellow]: series {short_uid(uid)}'s biomarkers were "
                          f"measured on {before}; `ctstudy biomarkers extract` now measures them on this "
                          f"{segmenter.name} mask.", soft_wrap=True)
        if report.failed:
            raise typer.Exit(1)


@app.command()
def distill(
    ctx: typer.Context,
    teacher_spec: str = typer.Option("blast-ct", "--teacher",
                                     help="blast-ct (the real-CT model), phantom, or a checkpoint path."),
    series_limit: int = typer.Option(200, "--series-limit", min=1,
                                     help="Series the teacher labels (drawn by patient, stratified by center and "
                                          "scanner)."),
    out: Path = typer.Option(None, "--out", help="Student checkpoint to write (default <home>/models/student.pt)."),
    epochs: int = typer.Option(40, "--epochs", min=1),
    steps_per_epoch: int = typer.Option(40, "--steps-per-epoch", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    val_fraction: float = typer.Option(0.2, "--val-fraction", min=0.05, max=0.9,
                                       help="Fraction of the drawn patients held out for validation and the report."),
    seed: int = typer.Option(1, "--seed", help="Seeds the sample, the split and the training."),
    size: int = typer.Option(256, "--size", help="Student input size (pixels, square)."),
    context_slices: int = typer.Option(1, "--context-slices", help="2.5D: neighbours on each side as channels."),
    channels: str = typer.Option("8,16,32,64,128", "--channels", help="Student U-Net widths per level."),
    from_spec: str | None = typer.Option(None, "--from",
                                         help="Start the student from this U-Net (phantom: the shipped model, or a "
                                              "checkpoint path) instead of random weights: for a study with few "
                                              "scans. Its size, context and widths are used; its BatchNorm "
                                              "statistics are kept; its weights compete as epoch 0."),
    rehearsal: int = typer.Option(0, "--rehearsal", min=0,
                                  help="Phantoms (rendered in memory, with their truth) mixed into every batch so "
                                       "that a student started --from phantom keeps what it knew (0: none)."),
    rehearsal_fraction: float = typer.Option(0.25, "--rehearsal-fraction", min=0.0, max=1.0,
                                             help="Share of each batch's slices drawn from the --rehearsal phantoms."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default 3e-3; 3e-4 with --from)."),
    ensemble: int | None = typer.Option(None, "--ensemble", min=1, help="Teacher ensemble members (blast-ct)."),
    timing_scans: int = typer.Option(3, "--timing-scans", min=1,
                                     help="Scans the teacher is timed on when its labels were all reused."),
    device: str = DEVICE,
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the cores available)."),
    scheduler: str = SCHEDULER,
    gpu: bool | None = GPU_ONLY,
) -> None:
    """Distil a teacher model into the fast 2.5D U-Net on the study's own QC-passed series; print and save a report.

    Resumable: the teacher's masks are stored as ordinary segmentation runs, so a run again reuses them.
    With --scheduler the teacher labels the drawn series on a Dask cluster (one task per series, each
    worker on its own --device); the student trains here.
    """
    from imaging.distill import DistillOptions
    from imaging.distill import distill as run_distillation
    from imaging.distill_report import (
        cautions,
        cost_table,
        manual_table,
        ratio_text,
        sample_table,
        student_teacher_table,
        write_report,
    )
    from imaging.model import DEFAULT_MODEL_PATH, load_model
    from imaging.preprocess import Preprocessing
    from imaging.segmenters import PHANTOM, open_segmenter
    from imaging.train import TrainingConfig

    widths = [int(c) for c in channels.split(",")]
    net = {"channels": widths, "strides": [2] * (len(widths) - 1), "num_res_units": 1}
    preprocessing = Preprocessing(size=size, context_slices=context_slices)
    initial = None
    if from_spec is not None:
        start = DEFAULT_MODEL_PATH if from_spec == PHANTOM else Path(from_spec)
        if not start.is_file():
            err.print(f"[red]error:[/red] --from {from_spec}: neither {PHANTOM!r} nor a checkpoint file")
            raise typer.Exit(2)
        try:
            initial = load_model(start)
        except ValueError as exc:
            err.print(f"[red]error:[/red] --from: {exc}. A student starts from a 2.5D U-Net checkpoint "
                      "(phantom, or a model.pt of `imaging train`, `distill` or `adapt --from phantom`), not from a "
                      "BLAST-CT network")
            raise typer.Exit(2) from exc
        net, preprocessing = dict(initial.net_config), initial.preprocessing
    if rehearsal and initial is None:
        err.print("[red]error:[/red] --rehearsal keeps what a starting model knew: give --from phantom (or a "
                  "checkpoint) too")
        raise typer.Exit(2)
    with open_registry(ctx) as (home, engine), open_executor(scheduler) as executor:
        dev = select_device(device)
        n_threads = set_cpu_threads(threads) if dev.type == "cpu" else None
        try:
            # On a cluster the teacher is opened here on the CPU and each worker moves it to its own device.
            teacher = open_segmenter(teacher_spec, select_device("cpu") if executor.distributed else dev,
                                     batch_size=batch_size, ensemble=ensemble)
        except NotImplementedError as exc:
            err.print(f"[red]error:[/red] teacher {teacher_spec!r} is not available in this installation ({exc}); "
                      "use --teacher phantom or a checkpoint path")
            raise typer.Exit(2) from exc
        options = DistillOptions(
            series_limit=series_limit, seed=seed, timing_scans=timing_scans,
            training=TrainingConfig(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, seed=seed,
                                    val_fraction=val_fraction, net=net,
                                    lr=lr if lr is not None else (3e-3 if initial is None else 3e-4),
                                    freeze_batchnorm=initial is not None, rehearsal_fraction=rehearsal_fraction),
            preprocessing=preprocessing, initial=initial, rehearsal_phantoms=rehearsal)
        path = out or home.models_dir / "student.pt"
        where = (f"on {executor.describe()} (device {device} per worker); the student on {dev}"
                 if executor.distributed else f"on {dev}")
        console.print(f"Teacher {teacher.name} {teacher.version[:16]} ({len(teacher.members)} member(s)) {where}"
                      + (f" ({n_threads} threads)" if n_threads else "") + f"; up to {series_limit} series.")
        columns = [TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=console) as bar:
            tasks: dict[str, int] = {}

            def on_phase(name: str, total: int) -> None:
                tasks[name] = bar.add_task(name, total=total, last="")

            def on_item(name: str) -> None:
                bar.update(tasks[name], advance=1)

            def on_teacher(uid: str, outcome: str) -> None:
                bar.update(tasks["teacher"], advance=1, last=f"{outcome} {uid[-12:]}")

            def on_step(epoch: int, step: int, loss: float) -> None:
                bar.update(tasks["train"], advance=1, last=f"epoch {epoch} loss {loss:.3f}")

            result = run_distillation(engine, home.masks_dir, teacher, options, dev, teacher_spec=teacher_spec,
                                      on_teacher_series=on_teacher, on_step=on_step, on_phase=on_phase,
                                      on_item=on_item, executor=executor,
                                      worker_device=device if executor.distributed else None, gpu=gpu)
        version = result.model.save(path)
        paths = write_report(result, path, version)
        console.print(f"Teacher labels: {len(result.teacher_labelled)} made now, {len(result.teacher_reused)} reused; "
                      f"{len(result.skipped)} drawn series left out.")
        _print_labelled(sample_table(result), "Sample by center and scanner")
        _print_labelled(student_teacher_table(result), "Student against teacher, held-out series")
        manual = manual_table(result)
        if not manual.empty:
            _print_labelled(manual, "Teacher and student against manual annotations, held-out series")
        _print_labelled(cost_table(result), "Cost per scan, measured in this run")
        console.print(f"The student is {ratio_text(result.cost['ratio'])} faster per scan than the teacher "
                      "(medians, both timed in this run).")
        for line in cautions(result):
            console.print(f"[yellow]caution[/yellow] {line}")
        console.print(f"Student written to {path} (version {version[:16]}, model name '{result.model.name}'); "
                      f"report {paths['markdown']}, {paths['json'].name}, {paths['csv'].name}. "
                      f"Segment with `ctstudy imaging segment --all --model {path}`.")


def _print_labelled(df: pd.DataFrame, title: str) -> None:
    """A report table whose columns already carry human labels and formatted values (never cut when piped)."""
    if not df.empty:
        print_table(console, df, title, labels=False)


@app.command("export-seg")
def export_seg(
    ctx: typer.Context,
    series_uid: str = typer.Argument(..., help="SeriesInstanceUID"),
    out: Path = typer.Option(..., "--out", help="DICOM SEG file to write."),
    model_path: Path | None = typer.Option(None, "--model", help="Export this model's mask (default: the latest)."),
) -> None:
    """Write a series' segmentation as a DICOM Segmentation referencing its CT instances."""
    from imaging.dicom_seg import segmentation_dataset
    from imaging.model import file_sha256
    from imaging.volume import load_series

    with open_registry(ctx) as (home, engine), session_scope(engine) as session:
        s = store.series_by_uid(session, series_uid)
        if s.qc_status in (QC_AUTO_FAILED, QC_FAILED):
            # An automatic reason (burned-in annotation, broken geometry) or a coordinator's fail: no SEG
            # leaves the registry until a coordinator passes the series.
            reasons = ", ".join(s.qc_reasons or []) or "no reason recorded"
            raise ValueError(f"series {series_uid} is {s.qc_status} ({reasons}): no DICOM SEG is written of it; "
                             "a coordinator passes it on the dashboard's Quality control page first")
        version = file_sha256(model_path) if model_path else None
        run = store.latest_done_run(session, s, version)
        if run is None or not run.mask_path:
            raise LookupError(f"series {series_uid} has no finished segmentation"
                              + (" by that model" if version else "") + ": run `ctstudy imaging segment` first")
        paths = store.instance_paths(session, s)
        vol = load_series(paths)
        labels = read_mask_for(run.mask_path, vol)
        # Only pseudonymous identity in the SEG: the key and the patient's pseudonym.
        seg = segmentation_dataset(paths, labels, vol.sop_instance_uids, run.model_name, run.model_version,
                                   identity=(home.secret(), store.patient_pseudo_id(session, s)))
        out.parent.mkdir(parents=True, exist_ok=True)
        seg.save_as(out)
        console.print(f"DICOM SEG of {series_uid} ({int((labels > 0).any(axis=(1, 2)).sum())} slices with findings, "
                      f"model {run.model_version[:16]}) written to {out}")


@app.command()
def adapt(
    ctx: typer.Context,
    from_spec: str | None = typer.Option(None, "--from",
                                         help="The network to start from: blast-ct (its DeepMedic network: only "
                                              "its fully connected layers train), phantom, or a checkpoint path "
                                              "(default: the study's promoted model, else <home>/models/student.pt "
                                              "from `imaging distill`)."),
    holdout_fraction: float = typer.Option(0.3, "--holdout-fraction", min=0.05, max=0.9,
                                           help="Annotated patients held out per center to compare before and after."),
    pseudo_per_annotated: float = typer.Option(1.0, "--pseudo-per-annotated", min=0.0,
                                               help="Unannotated series (labelled by the starting model) per "
                                                    "annotated training series, at most."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Default: 12 (U-Net), 8 (DeepMedic)."),
    steps_per_epoch: int | None = typer.Option(None, "--steps-per-epoch", min=1,
                                               help="Default: 30 (U-Net), 25 (DeepMedic)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1,
                                          help="Default: 8 slices (U-Net), 4096 voxels (DeepMedic)."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate of the fine-tuning (default: 1e-3 peak for "
                                                       "the U-Net, 1e-4 for DeepMedic's fully connected layers)."),
    seed: int = typer.Option(1, "--seed", help="Seeds the held-out draw, the pseudo-labelled draw and training."),
    train_batchnorm: bool = typer.Option(False, "--train-batchnorm",
                                         help="Let BatchNorm re-estimate its statistics on the study's patches "
                                              "(default: kept from the starting model)."),
    promote: bool = typer.Option(False, "--promote",
                                 help="Make the new model the study's default, only if it is better on the held-out "
                                      "annotated patients."),
    min_gain: float = typer.Option(0.0, "--min-gain", min=0.0,
                                   help="Better means a held-out score above the start's by more than this."),
    max_class_loss: float = typer.Option(0.05, "--max-class-loss", min=0.0,
                                         help="...and no lesion class of the held-out annotations losing more "
                                              "pooled Dice than this."),
    device: str = DEVICE,
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the cores available)."),
    actor: str | None = typer.Option(None, "--actor", help="Who adapts (recorded); default the login name."),
) -> None:
    """Fine-tune the fast U-Net or BLAST-CT's network on the study's annotations; compare it with its start on
    held-out patients.

    The last line printed is the new model's spec for `ctstudy imaging segment --model`.
    """
    from imaging.adapt import AdaptOptions
    from imaging.adapt_study import adapt_study, starts_deepmedic
    from imaging.deepmedic_finetune import DeepMedicTuning
    from imaging.inference import UNetSegmenter
    from imaging.train import TrainingConfig
    from registry.cli_support import login_name

    dev = select_device(device)
    n_threads = set_cpu_threads(threads) if dev.type == "cpu" else None
    given = {k: v for k, v in {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "lr": lr}.items() if v is not None}
    training = TrainingConfig(**{"epochs": 12, "steps_per_epoch": 30, "batch_size": batch_size or 8, "lr": 1e-3,
                                 **given}, freeze_batchnorm=not train_batchnorm)
    tuning = DeepMedicTuning(**given, seed=seed, **({"batch_voxels": batch_size} if batch_size else {}))
    options = AdaptOptions(holdout_fraction=holdout_fraction, pseudo_per_annotated=pseudo_per_annotated, seed=seed,
                           min_gain=min_gain, max_class_loss=max_class_loss, training=training)

    def segmenter(model):  # noqa: ANN001, ANN202 - the study's own inference path, prepared once per model
        unet = UNetSegmenter(model, dev)
        return lambda volume: unet.segment(volume)[0]

    console.print(f"Adapting on {dev}" + (f" ({n_threads} threads)" if n_threads else "") + ".")
    columns = (TextColumn("adapt"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with open_registry(ctx) as (home, engine), Progress(*columns, console=console) as bar:
        try:
            deepmedic = starts_deepmedic(engine, home, from_spec)
        except (ValueError, FileNotFoundError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        steps = (tuning.epochs * tuning.steps_per_epoch if deepmedic else training.epochs * training.steps_per_epoch)
        task = bar.add_task("adapt", total=steps, last="")
        done = adapt_study(engine, home, from_spec, options, dev, actor=actor or login_name(), promote=promote,
                           segmenter=segmenter, tuning=tuning,
                           on_step=lambda e, _s, loss: bar.update(task, advance=1, last=f"epoch {e} loss {loss:.3f}"))
    result, data = done.result, done.result.card["data"]
    for uid, why in done.skipped.items():
        err.print(f"[yellow]left out[/yellow] {short_uid(uid)}: {why}")
    console.print(f"Trained on {sum(data['annotated_training_series'].values())} annotated and "
                  f"{sum(data['pseudo_labelled_series'].values())} pseudo-labelled series; "
                  f"{data['held_out_patients']} annotated patients held out.")
    table = result.per_class.pivot_table(index="class", columns="comparison", values="dice_pooled", sort=False)
    table = table.reindex(columns=["before", "after"]).reset_index()
    from vocabulary.labels import BY_KEY

    table["class"] = table["class"].map(lambda k: BY_KEY[k].name if k in BY_KEY else "Any hemorrhage")
    _print(table.rename(columns={"class": "Lesion class", "before": "Pooled Dice before",
                                 "after": "Pooled Dice after"}).round(3),
           "Held-out annotated patients: the starting model and the adapted one")
    console.print(f"Score (mean pooled Dice over the classes the held-out annotations hold): "
                  f"{result.score_before:.3f} before, {result.score_after:.3f} after: {result.verdict}.")
    if promote:
        console.print("Promoted: the study's default for `imaging segment`." if done.promoted else
                      "Not promoted: it is not better than its start on the held-out patients.")
    console.print(f"Model card: {done.path.parent / 'model_card.md'}")
    typer.echo(str(done.path))  # whole on one line, never folded: scripts read it for `segment --model`


@app.command("export-correction")
def export_correction(
    ctx: typer.Context,
    series: list[str] | None = typer.Option(None, "--series", help="SeriesInstanceUID (repeatable)."),
    center: str | None = typer.Option(None, "--center",
                                      help="Instead of --series: this center's segmented series that have no "
                                           "manual annotation yet."),
    limit: int = typer.Option(10, "--limit", min=1, help="With --center: at most this many series."),
    out: Path = typer.Option(..., "--out", help="Folder of the correction package (created; may already hold one)."),
    model_path: Path | None = typer.Option(None, "--model", help="Export this model's masks (default: the latest)."),
) -> None:
    """Write series' model masks for an annotator: mask and CT as NIfTI (ITK-SNAP, 3D Slicer) and DICOM SEG."""
    from imaging.correction_round_trip import export_corrections
    from imaging.model import file_sha256

    if bool(series) == bool(center):
        raise typer.BadParameter("give --series UID (repeatable) or --center CODE, not both")
    with open_registry(ctx) as (home, engine), session_scope(engine) as session:
        version = file_sha256(model_path) if model_path else None
        chosen = ([store.series_by_uid(session, uid) for uid in series] if series
                  else store.uncorrected_segmented_series(session, center, limit, version))
        if not chosen:
            raise LookupError(f"center {center} has no segmented series without a manual annotation")
        exported = export_corrections(session, home, chosen, out, version)
    for e in exported:
        console.print(f"{short_uid(e.series_instance_uid)}: {e.model_name} ({e.model_version[:12]}), "
                      f"{e.slices_with_findings} slices with findings")
    console.print(f"{len(exported)} series written to {out}: open ct/<UID>.nii.gz with masks/<UID>.nii.gz as its "
                  f"segmentation, correct the mask in place, then `ctstudy imaging import-corrections {out}`")


@app.command("import-corrections")
def import_corrections_cmd(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., exists=True, file_okay=False,
                                  help="A correction package (its masks/ folder is read) or a folder of masks."),
    annotator: str | None = typer.Option(None, "--annotator", help="Who corrected the masks (recorded with them)."),
    actor: str | None = typer.Option(None, "--actor", help="Who imports (audit log); default the login name."),
) -> None:
    """Import corrected masks as manual annotations and report, per lesion class, how much each was changed."""
    from imaging.correction_round_trip import import_corrections
    from registry.cli_support import login_name

    with open_registry(ctx) as (home, engine), session_scope(engine) as session:
        report = import_corrections(session, home, folder, actor or login_name(), annotator)
    ann = report.annotations
    console.print(f"{folder}: {len(ann.imported)} corrections imported, {len(ann.unchanged)} unchanged, "
                  f"{len(ann.rejected)} rejected.")
    if report.changes:
        _print(_changes_table(pd.DataFrame(report.changes)), "What the annotator changed, per series and class")
    for uid, share in ann.partial.items():
        console.print(f"partial {short_uid(uid)}: {share:.0%} of the scan annotated (the rest 255, not annotated); "
                      "its Dice and volumes cover the annotated part")
    for uid, why in report.not_compared:
        err.print(f"[yellow]not compared[/yellow] {short_uid(uid)}: {why}")
    for path, reason, detail in ann.rejected:
        err.print(f"[red]rejected[/red] {path}: {reason}: {detail}")
    if ann.rejected:
        raise typer.Exit(1)


@app.command("corrections")
def corrections_cmd(
    ctx: typer.Context,
    center: str | None = typer.Option(None, "--center", help="Only this center."),
) -> None:
    """Model quality from the annotators' corrections, per center and lesion class."""
    from imaging.correction import summarize_corrections

    with open_registry(ctx) as (_, engine), session_scope(engine) as session:
        rows = pd.DataFrame(store.correction_rows(session, center))
    if rows.empty:
        console.print("No corrections imported yet: `ctstudy imaging export-correction`, correct the masks, then "
                      "`ctstudy imaging import-corrections`.")
        return
    summary = summarize_corrections(rows)
    _print(_class_names(summary).rename(columns={"center": "Center"}),
           "Model quality from corrections (Dice 1: nothing changed)")


def _class_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Lesion class keys as the label map's names, other columns as the data dictionary's headings."""
    from vocabulary.dictionary import display_columns
    from vocabulary.labels import LESION_CLASSES

    names = {c.key: c.name for c in LESION_CLASSES}
    out = frame.assign(**{"class": frame["class"].map(names).fillna(frame["class"])})
    return display_columns(out.rename(columns={"class": "lesion_class"}), "model_quality").round(3)


def _changes_table(changes: pd.DataFrame) -> pd.DataFrame:
    changes = changes.assign(series=changes["series_instance_uid"].map(short_uid))
    table = changes[["series", "class", "dice", "model_ml", "corrected_ml", "annotated_fraction"]]
    return _class_names(table).rename(columns={"series": "Series"})


@app.command()
def evaluate(
    ctx: typer.Context,
    against: str = typer.Option("manual", "--against", help="manual (imported annotations) or truth-dir."),
    truth_dir: Path | None = typer.Option(None, "--truth-dir", exists=True, file_okay=False,
                                          help="Synthetic truth folder (with --against truth-dir)."),
    model_path: Path | None = MODEL,
    out: Path | None = typer.Option(None, "--out",
                                    help="Per-series CSV (default <home>/reports/segmentation_eval.csv)."),
) -> None:
    """Dice, precision, recall, volume error and ABC/2 per series and class; summaries by split and volume group."""
    from imaging.agreement import restrict_to_annotated
    from imaging.evaluation import series_metrics, summary_by_split, summary_by_volume_group
    from imaging.model import load_model
    from imaging.train import uid_digest
    from vocabulary.labels import annotated_fraction

    if against not in ("manual", "truth-dir"):
        err.print("[red]error:[/red] --against is manual or truth-dir")
        raise typer.Exit(2)
    if against == "truth-dir" and truth_dir is None:
        err.print("[red]error:[/red] --against truth-dir needs --truth-dir DIR")
        raise typer.Exit(2)
    with open_registry(ctx) as (home, engine):
        model = load_model(model_path)
        split = model.metadata.get("split", {})
        train_ids, val_ids = set(split.get("train", [])), set(split.get("validation", []))
        rows = []
        with session_scope(engine) as session:
            pairs = _reference_masks(session, truth_dir if against == "truth-dir" else None)
            for s, ref_path in pairs:
                run = store.latest_done_run(session, s, model.version)
                if run is None:
                    continue
                pred, pred_aff = read_mask(run.mask_path)
                ref, ref_aff = read_mask(ref_path)
                problem = grid_difference(ref.shape, ref_aff, pred.shape, pred_aff)
                if problem:
                    raise GridMismatchError(f"{ref_path}: reference grid differs from the segmentation's: {problem}")
                spacing = tuple(float(v) for v in np.linalg.norm(pred_aff[:3, :3], axis=0)[::-1])
                voxel_ml = float(abs(np.linalg.det(pred_aff[:3, :3]))) / 1000
                digest = uid_digest(s.series_instance_uid)
                which = "train" if digest in train_ids else "validation" if digest in val_ids else "test"
                share = annotated_fraction(ref)  # a partial annotation is compared over its annotated voxels
                for r in series_metrics(restrict_to_annotated(pred, ref), ref, spacing, voxel_ml):
                    rows.append({"series_instance_uid": s.series_instance_uid, "split": which, **r,
                                 "annotated_fraction": share})
        if not rows:
            raise LookupError("no series has both a reference mask and a segmentation by this model")
        table = pd.DataFrame(rows)
        path = out or home.reports_dir / "segmentation_eval.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(table, path)
        _print(summary_by_split(table), f"Segmentation vs {against} by split (model {model.version[:16]})")
        _print(summary_by_volume_group(table), "IPH (hematoma) volume: |segmentation - reference| vs ABC/2, mL")
        console.print(f"{table['series_instance_uid'].nunique()} series; per-series CSV {path}")


def _print(df: pd.DataFrame, title: str) -> None:
    if "class" in df:  # class keys (iph, eah, ...) by their names in the label map
        df = df.assign(**{"class": df["class"].map(lambda k: label(k, "lesion_class"))})
    print_table(console, df, title)  # full width when piped: no header or cell cut to "…"


__all__ = ["app"]
