"""Ingest speed: `registry ingest --in-place` against the naive way, and the progress query at scale.

Prints (median of repeats, measured in this run):
- files/s indexing a folder of N small CT files in place (headers, SHA-256, series, QC, database),
- files/s of the naive way: pydicom.dcmread of every file with its pixels, plus .pixel_array,
- their ratio;
- files/s of the default ingest, which writes a de-identified copy of every file into the archive
  (DICOM PS3.15 Annex E basic profile; each copy made by the reader processes from the read that
  indexed the file), and its ratio to the naive way, with the load average before and after (the
  machine may be shared);
- the same ingest with every copy made from the source file again, by the writer processes (the
  whole-file way: `registry.ingest.archive_copy.write_archive_copy`), byte for byte the same archive;
- each lever of the default ingest turned off alone (the others on), its files/s and ratio to the naive
  way and to the default ingest, all three run in turn within each repeat (the headline ratio, naive read
  against the default ingest alternated in one run): the archive names' mapped UIDs remembered per process
  (`deidentified_header.remembered_mapped_uid`), the copies written from the header and the source's
  Pixel Data bytes where they lie (`os.writev`), the staged copies flushed to disk while reading goes on,
  each center's series stored while the next centers' files are read (`registry.ingest.centers_read`), the
  copy's header made from the one remembered for any patient's file, with only the pseudonym's two elements
  written again (`registry.deid.deidentified_header`), each staged copy's archive name (an HMAC) taken from
  the reader that made it rather than made again while storing, pydicom's value checks (which only warn)
  off while the readers convert values (`dicom_headers.values_unchecked_by_pydicom`);
- for each, the CPU seconds (this process and its worker processes) beside the wall seconds: on a
  shared machine the wall ratio follows the load, the CPU ratio much less.
- seconds for `collection_progress` on a registry of 1,000 patients / 5,000 series, on SQLite and,
  when reachable (CTSTUDY_TEST_PG_URL or the local server), on PostgreSQL.

Usage: .venv/bin/python bench/ingest_bench.py [--series 125] [--slices 40] [--repeats 3] [--matrix 256]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import insert

from registry.collection.progress import collection_progress
from registry.db.engine import make_engine, session_scope, upgrade
from registry.db.models import Center, ClinicalRecord, Outcome, Patient, QCDecision, Series, Study
from registry.db.scratch_database import ServerUnreachable, scratch_database
from registry.deid import deidentified_header
from registry.deid.profile import mapped_uid
from registry.home import Home
from registry.ingest.directory import ingest_directory


def write_study_folder(root: Path, n_series: int, n_slices: int, matrix: int = 64) -> int:
    """`n_series` series of `n_slices` CT slices (matrix x matrix int16) under root/<center>/<series>/."""
    template = Dataset()
    template.file_meta = FileMetaDataset()
    template.file_meta.MediaStorageSOPClassUID = CTImageStorage
    template.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    template.SOPClassUID = CTImageStorage
    template.Modality = "CT"
    template.ImageType = "ORIGINAL\\PRIMARY\\AXIAL"
    template.Manufacturer, template.ConvolutionKernel = "BENCH", "H30s"
    template.StudyDate, template.StudyTime = "20240306", "093000"
    template.SliceThickness, template.PixelSpacing = 5.0, [0.45, 0.45]
    template.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    template.Rows = template.Columns = matrix
    template.SamplesPerPixel, template.PhotometricInterpretation = 1, "MONOCHROME2"
    template.BitsAllocated, template.BitsStored, template.HighBit, template.PixelRepresentation = 16, 12, 11, 1
    template.RescaleIntercept, template.RescaleSlope = -1024, 1
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 1200, (matrix, matrix), dtype=np.int16).tobytes()
    n = 0
    for s in range(n_series):
        center = f"C{s % 5:02d}"
        folder = root / center / f"series{s:04d}"
        folder.mkdir(parents=True)
        template.PatientID = f"{center}-{s // 2:04d}"
        template.StudyInstanceUID = generate_uid()
        template.SeriesInstanceUID = generate_uid()
        for i in range(n_slices):
            sop = generate_uid()
            template.SOPInstanceUID = sop
            template.file_meta.MediaStorageSOPInstanceUID = sop
            template.InstanceNumber = i + 1
            template.ImagePositionPatient = [0.0, 0.0, 5.0 * i]
            template.PixelData = pixels
            template.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)
            n += 1
    return n


def _cpu() -> float:
    """CPU seconds of this process and of its finished child processes (the ingest's worker pools)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_in_place_ingest(folder: Path, workdir: Path, repeats: int, workers: int, in_place: bool = True,
                         label: str = "") -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of each repeat of an ingest of `folder` into a fresh home."""
    times, cpus = [], []
    for r in range(repeats):
        home = Home.resolve(workdir / f"home-{workers}-{r}-{'in-place' if in_place else 'archive'}{label}")
        home.ensure()
        upgrade(home.db_url)
        engine = make_engine(home.db_url)
        start, cpu = time.perf_counter(), _cpu()
        report = ingest_directory(engine, home, folder, in_place=in_place, actor="bench", workers=workers)
        times.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
        assert report.rejected == [] and report.new_instances > 0
        engine.dispose()
        if not keep_homes:
            shutil.rmtree(home.root)
    return times, cpus


# Each run's home stays until the bench ends where the disk has room for them all: on ext4 without a journal
# (this machine's disk) a new file skips the inodes freed in the last 1-6 minutes, reading each one's deletion
# time, so removing a run's files would make the next runs' file creations step past them
# (`bench/copy_write_bench.py`): a cost of the bench's own deletions, which an ingest into a study's archive
# does not meet. Set by `main` from the free space.
keep_homes = True
SPARE_BYTES = 2 * 2**30


def homes_fit(folder: Path, workdir: Path, repeats: int) -> bool:
    """Whether the archives of every copying run (default, whole-file, each lever variant) fit on the disk."""
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    copying_runs = repeats * (2 + len(LEVERS) + 1)
    return shutil.disk_usage(workdir).free > 1.1 * size * copying_runs + SPARE_BYTES


def time_whole_file_copies(folder: Path, workdir: Path, repeats: int, workers: int) -> tuple[list[float], list[float]]:
    """The default ingest with no copy staged while reading: every copy made from the source file again."""
    with mock.patch("registry.ingest.reading.stage_archive_copy", return_value=None):
        return time_in_place_ingest(folder, workdir, repeats, workers, in_place=False, label="-whole-file")


def _written_joined(path: str, parts: tuple[bytes | memoryview, ...]) -> None:
    Path(path).write_bytes(b"".join(parts))


def _templates_per_patient() -> contextlib.AbstractContextManager[object]:
    """A remembered copy header serves the files of its own patient only: another patient's file goes the
    whole way (and its copy becomes the remembered one)."""
    from_template = deidentified_header._from_template

    def own_patient_only(template, ds, key, pseudonym, sources):  # noqa: ANN001, ANN202 - as patched
        return None if pseudonym != template.pseudonym else from_template(template, ds, key, pseudonym, sources)
    return mock.patch("registry.deid.deidentified_header._from_template", own_patient_only)


# Each lever of the default ingest, and how the bench turns it off alone.
LEVERS = {
    "mapped UIDs computed for every file": lambda: mock.patch("registry.ingest.series_archive.remembered_mapped_uid",
                                                              mapped_uid),
    "copies joined into one buffer, then written": lambda: mock.patch("registry.ingest.archive_copy._write_new_file",
                                                                      _written_joined),
    "staged copies flushed only after reading": lambda: mock.patch(
        "registry.ingest.reading.FLUSH_WHILE_READING_COPIES", 10**12),
    "every series stored after reading": lambda: mock.patch("registry.ingest.reading._store_centers_read",
                                                            lambda *args: None),
    "copy headers remade for each patient": _templates_per_patient,
    "archive names made again while storing": lambda: mock.patch("registry.ingest.series_archive._staged_name",
                                                                 lambda *args: ""),
    "pydicom's value checks on while reading": lambda: mock.patch(
        "registry.ingest.reading.values_unchecked_by_pydicom", contextlib.nullcontext),
}


ALL_ON = "all levers on"
NAIVE = "naive read"


def time_levers_off(folder: Path, workdir: Path, repeats: int, workers: int) -> dict[str, tuple[float, float]]:
    """{lever: median (wall, CPU) seconds of the default ingest with that lever alone turned off}, under
    ALL_ON the default ingest's and under NAIVE the naive read's; the runs interleaved (each repeat runs every
    variant once, each repeat starting one variant further on), so that a change of the machine's load falls
    on all of them alike."""
    runs: dict[str, list[tuple[float, float]]] = {NAIVE: [], ALL_ON: [], **{name: [] for name in LEVERS}}
    names = list(runs)
    files = sorted(folder.rglob("*.dcm"))
    for r in range(repeats):
        for n, name in enumerate(names[r % len(names):] + names[: r % len(names)]):
            if name == NAIVE:
                walls, cpus = time_naive(files, 1)
            else:
                with LEVERS[name]() if name in LEVERS else contextlib.nullcontext():
                    walls, cpus = time_in_place_ingest(folder, workdir, 1, workers, in_place=False,
                                                       label=f"-variant{n}-{r}")
            runs[name].append((walls[0], cpus[0]))
    return {name: (statistics.median(w for w, _ in pairs), statistics.median(c for _, c in pairs))
            for name, pairs in runs.items()}


def time_naive(files: list[Path], repeats: int) -> tuple[list[float], list[float]]:
    times, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), _cpu()
        for path in files:
            pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding the pixels is the point
        times.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return times, cpus


def fill_registry(db_url: str, n_patients: int = 1000, n_series: int = 5000, n_centers: int = 19) -> None:
    """A registry of the CREACTIVE scale written with bulk inserts (no files: the query is what is timed)."""
    upgrade(db_url)
    engine = make_engine(db_url)
    rng = np.random.default_rng(1)
    now = dt.datetime(2024, 6, 1)
    statuses = np.array(["pending", "auto_failed", "passed", "failed"])
    with session_scope(engine) as s:
        s.execute(insert(Center), [{"id": c + 1, "code": f"IT{c:03d}", "created_at": now} for c in range(n_centers)])
        centers = rng.integers(n_centers, size=n_patients) + 1
        s.execute(insert(Patient), [{"id": p + 1, "pseudo_id": f"{p:020x}", "center_id": int(centers[p]),
                                     "created_at": now} for p in range(n_patients)])
        n_studies = n_series // 2
        s.execute(insert(Study), [{"id": i + 1, "study_instance_uid": f"1.2.{i}", "patient_id": i % n_patients + 1}
                                  for i in range(n_studies)])
        picks = rng.choice(statuses, n_series, p=[0.3, 0.1, 0.55, 0.05])
        s.execute(insert(Series), [{"id": i + 1, "series_instance_uid": f"1.3.{i}", "study_id": i % n_studies + 1,
                                    "qc_status": str(picks[i]), "qc_reasons": [], "phi_tags": [], "instance_count": 40,
                                    "ingested_at": now} for i in range(n_series)])
        s.execute(insert(QCDecision), [{"series_id": i + 1, "status": str(picks[i]), "reasons": [], "actor": "bench",
                                        "automatic": True, "decided_at": now} for i in range(n_series)])
        s.execute(insert(ClinicalRecord), [{"patient_id": p + 1, "age": 40.0, "imported_at": now}
                                           for p in range(0, n_patients, 1) if p % 5])
        s.execute(insert(Outcome), [{"patient_id": p + 1, "gos_6m": 4, "imported_at": now}
                                    for p in range(0, n_patients) if p % 3])
    engine.dispose()


def time_progress(db_url: str, repeats: int = 5) -> tuple[float, float]:
    """Median seconds of collection_progress now and as of a date (the as-of query is the heavier one)."""
    engine = make_engine(db_url)
    result = []
    for as_of in (None, dt.date(2024, 6, 2)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with session_scope(engine) as s:
                table = collection_progress(s, as_of=as_of)
            times.append(time.perf_counter() - start)
        assert table.iloc[-1]["series"] == 5000
        result.append(statistics.median(times))
    engine.dispose()
    return result[0], result[1]


def _load() -> str:
    """The 1, 5 and 15 minute load averages: the figures above are only comparable at similar loads."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=125)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    # 256 x 256 is the demo study's matrix; with tiny images the naive way's pixel decoding costs
    # nothing and the comparison would flatter it.
    parser.add_argument("--matrix", type=int, default=256)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ctstudy-bench-") as tmp:
        work = Path(tmp)
        folder = work / "in"
        n = write_study_folder(folder, args.series, args.slices, args.matrix)
        files = sorted(folder.rglob("*.dcm"))
        print(f"{n} CT files ({args.series} series x {args.slices} slices, {args.matrix}x{args.matrix}), "
              f"{os.cpu_count()} CPUs, load average {_load()}")

        global keep_homes
        keep_homes = homes_fit(folder, work, args.repeats)
        if not keep_homes:
            print("not enough free disk for every run's archive: each run's home is removed after it, and later "
                  "runs may pay for those deletions (see bench/copy_write_bench.py)")
        naive, naive_cpu = map(statistics.median, time_naive(files, args.repeats))
        results = {}
        for workers in (1, 2):
            results[workers] = statistics.median(time_in_place_ingest(folder, work, args.repeats, workers)[0])
        print(f"naive dcmread + pixel_array:              {n / naive:8.0f} files/s  ({naive:.2f} s, "
              f"{naive_cpu:.2f} CPU s, median of {args.repeats})")
        archive, archive_cpu = map(statistics.median,
                                   time_in_place_ingest(folder, work, args.repeats, 2, in_place=False))
        whole, whole_cpu = map(statistics.median, time_whole_file_copies(folder, work, args.repeats, 2))
        levers = time_levers_off(folder, work, args.repeats, 2)
        for workers, seconds in results.items():
            print(f"ingest --in-place, {workers} reader process(es): {n / seconds:8.0f} files/s  ({seconds:.2f} s)"
                  f"  = {naive / seconds:.2f} x naive")
        print(f"ingest, de-identified archive copies made while reading, 2 processes: {n / archive:8.0f} files/s  "
              f"({archive:.2f} s)  = {naive / archive:.2f} x naive; CPU {archive_cpu:.2f} s = "
              f"{naive_cpu / archive_cpu:.2f} x naive's CPU")
        print(f"ingest, copies made from the source file again (whole-file way):  {n / whole:8.0f} files/s  "
              f"({whole:.2f} s)  = {naive / whole:.2f} x naive; CPU {whole_cpu:.2f} s = "
              f"{naive_cpu / whole_cpu:.2f} x naive's CPU")
        on, on_cpu = levers.pop(ALL_ON)
        alternated, alternated_cpu = levers.pop(NAIVE)
        print(f"levers, interleaved runs with the naive read (median of {args.repeats}): naive read "
              f"{n / alternated:8.0f} files/s ({alternated:.2f} s, CPU {alternated_cpu:.2f} s); default ingest, all "
              f"levers on {n / on:8.0f} files/s ({on:.2f} s, CPU {on_cpu:.2f} s) = **{alternated / on:.2f} x naive** "
              f"(CPU {alternated_cpu / on_cpu:.2f} x naive's)")
        for name, (seconds, cpu) in levers.items():
            print(f"  lever off: {name}: {n / seconds:8.0f} files/s ({seconds:.2f} s, CPU {cpu:.2f} s) = "
                  f"{alternated / seconds:.2f} x naive; {seconds / on:.2f} x the wall with all levers on, "
                  f"{cpu / on_cpu:.2f} x its CPU")
        print(f"copies made while reading against the whole-file way: {whole / archive:.2f} x wall, "
              f"{whole_cpu / archive_cpu:.2f} x CPU  (load average now {_load()})")

        sqlite_url = f"sqlite:///{work / 'progress.sqlite'}"
        fill_registry(sqlite_url)
        now, as_of = time_progress(sqlite_url)
        print(f"collection_progress, 1,000 patients / 5,000 series, SQLite:     {now:.3f} s (as-of: {as_of:.3f} s)")

    try:
        with scratch_database("ctstudy_bench") as url:
            fill_registry(url)
            now, as_of = time_progress(url)
    except ServerUnreachable as exc:
        print(f"{exc}; PostgreSQL skipped")
        return
    print(f"collection_progress, 1,000 patients / 5,000 series, PostgreSQL: {now:.3f} s (as-of: {as_of:.3f} s)")


if __name__ == "__main__":
    main()
