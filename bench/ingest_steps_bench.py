"""Where one file's time goes in the default ingest's reader: each step of `registry.ingest.reading._read_and_stage`
timed alone over the same files, in one process, against the naive read of the same run.

Prints milliseconds per file (median of the repeats) for: reading the bytes, SHA-256, pydicom's header read
(and the file meta group alone, part of it), the registry's header facts (and the identity checks alone, part
of them), the pseudonym, the archive name (mapped UIDs), the de-identified copy's header and Pixel Data span,
writing the staged copy; their sum, the naive read (pydicom dcmread + pixel_array) and the ratio, with the
load average. Then the reader as ingest runs it (`_read_and_stage`, every step in one call) against the naive
read in user and kernel CPU milliseconds a file (`os.times`: writing the staged copies is kernel work), and
the store phase's CPU per series (`_SeriesStorer`'s transactions in a one-process ingest of the same files).
Last, the default ingest (2 reader processes) in its phases (`ingest_phases`): its fixed costs (records and
file list before reading, the readers' start, the last center's store and the run record after the last
file) against the time reading the files, the parent's CPU (before reading, the store phase, the rest) and
the readers' CPU.

Usage: .venv/bin/python bench/ingest_steps_bench.py [--series 25] [--slices 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import multiprocessing.util
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import pydicom
from ingest_bench import write_study_folder
from pydicom.filereader import _read_file_meta_info, read_preamble

import registry.ingest.directory as ingest_module
import registry.ingest.reading as ingest_reading
from registry.db.engine import make_engine, upgrade
from registry.deid.center_names import center_names_patient
from registry.deid.deidentified_copy import deidentified_copy_parts
from registry.deid.pseudonym import pseudo_id
from registry.dicom_headers import (
    ParsedInstance,
    _check_pixel_data_complete,
    _header_from_dataset,
    _safe_text,
    _transfer_syntax,
    is_ctstudy_copy,
)
from registry.home import Home
from registry.ingest.archive_copy import _write_new_file
from registry.ingest.reading import _read_and_stage
from registry.ingest.series_archive import instance_name, series_folder

KEY = b"bench-key-of-32-bytes-for-hmac!!"


def time_steps(files: list[Path], stage: Path) -> dict[str, float]:
    """Seconds per step over `files`, each file going through every step in turn."""
    spent: dict[str, float] = defaultdict(float)

    def timed(step: str, f, *args, **kwargs):  # noqa: ANN001, ANN202 - any step
        start = time.perf_counter()
        result = f(*args, **kwargs)
        spent[step] += time.perf_counter() - start
        return result

    for n, path in enumerate(files):
        data = timed("read bytes", path.read_bytes)
        timed("SHA-256", lambda: hashlib.sha256(data).hexdigest())  # noqa: B023 - called at once
        fp = io.BytesIO(data)
        ds = timed("pydicom header read", pydicom.dcmread, fp, stop_before_pixels=True)
        offset = fp.tell()
        meta = io.BytesIO(data)
        read_preamble(meta, False)
        timed("  of which the file meta group", _read_file_meta_info, meta)
        syntax = timed("header facts", _transfer_syntax, ds, path)
        defect = timed("header facts", _check_pixel_data_complete, ds, data, offset, path)
        code = path.parent.parent.name
        header = timed("header facts", _header_from_dataset, ds, path, "", len(data), syntax, defect, code)
        timed("  of which the identity checks", identity_checks, code, header.patient_id, ds)
        pseudonym = timed("pseudonym", pseudo_id, KEY, code, header.patient_id)
        timed("archive name", series_folder, KEY, code, pseudonym, header.study_instance_uid,
              header.series_instance_uid)
        timed("archive name", instance_name, KEY, header.sop_instance_uid)
        parts = timed("copy's header and Pixel Data span", deidentified_copy_parts,
                      ParsedInstance(header, ds, data, offset), KEY, pseudonym)
        timed("write the staged copy", _write_new_file, str(stage / f"{n}.dcm"), parts)
    return spent


def identity_checks(code: str, patient_id: str, ds: pydicom.Dataset) -> tuple[bool, bool]:
    """What `_header_from_dataset` adds for the identity guards: the center code against the patient's name and
    ID, and ctstudy's de-identification marks."""
    return center_names_patient(code, patient_id, _safe_text(ds, "PatientName")), is_ctstudy_copy(ds)


def _cpu_split() -> tuple[float, float]:
    t = os.times()
    return t.user, t.system


def reader_cpu(files: list[Path], stage: Path, archive: Path) -> tuple[float, float]:
    """(user, kernel) CPU seconds of `_read_and_stage` over `files`, copies staged under `stage`."""
    read = functools.partial(_read_and_stage, key=KEY, archive=str(archive))
    before = _cpu_split()
    for n, path in enumerate(files):
        read((str(path), path.parent.parent.name, f"{stage}/{n}.dcm"))
    after = _cpu_split()
    return after[0] - before[0], after[1] - before[1]


def naive_cpu(files: list[Path]) -> tuple[float, float]:
    before = _cpu_split()
    for path in files:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding the pixels is the point
    after = _cpu_split()
    return after[0] - before[0], after[1] - before[1]


def store_cpu_per_series(folder: Path, home_dir: Path) -> float:
    """CPU seconds per series of the store phase (one transaction each) in a one-process ingest of `folder`."""
    home = Home.resolve(home_dir)
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    spent = [0.0, 0]
    real = ingest_module._SeriesStorer._store_one

    def timed(self, *args, **kwargs):  # noqa: ANN001, ANN202 - the storer's own signature
        start = time.process_time()
        try:
            return real(self, *args, **kwargs)
        finally:
            spent[0] += time.process_time() - start
            spent[1] += 1
    with mock.patch.object(ingest_module._SeriesStorer, "_store_one", timed):
        ingest_module.ingest_directory(engine, home, folder, actor="bench", workers=1)
    engine.dispose()
    return spent[0] / spent[1]


def ingest_phases(folder: Path, home_dir: Path, marks_dir: Path, workers: int = 2) -> dict[str, float]:
    """Seconds of one default ingest of `folder`, split into its fixed costs (once an ingest, whatever the
    number of files) and its per-file work, in the parent process and in the reader processes:
    wall from the call's start to reading, to the first file read, to the last, and to the end; the parent's
    CPU before reading, in the store phase (one transaction a series) and in all; the readers' start (fork
    to ready) and CPU. `marks_dir` receives each reader's marks."""
    home = Home.resolve(home_dir)
    home.ensure()
    upgrade(home.db_url)
    engine = make_engine(home.db_url)
    marks: dict[str, float] = {}
    store = [0.0, 0.0]
    real_store, real_group, real_kept = (ingest_module._SeriesStorer._store_one, ingest_module.read_and_group,
                                         ingest_reading._kept_staged)
    real_init = ingest_reading.die_with_parent

    def store_one(self, *args, **kwargs):  # noqa: ANN001, ANN202 - the storer's own signature
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return real_store(self, *args, **kwargs)
        finally:
            store[0] += time.perf_counter() - wall
            store[1] += time.process_time() - cpu

    def read_and_group(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        marks.setdefault("reading", time.perf_counter())
        marks.setdefault("cpu before reading", time.process_time())
        return real_group(*args, **kwargs)

    def kept_staged(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        now = time.perf_counter()
        marks.setdefault("first file", now)
        marks["last file"] = now
        return real_kept(*args, **kwargs)

    def reader_start() -> None:
        real_init()
        ready = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in every process

        def at_exit() -> None:
            t = os.times()
            (marks_dir / f"{os.getpid()}").write_text(f"{ready} {t.user + t.system}")
        multiprocessing.util.Finalize(None, at_exit, exitpriority=100)

    with mock.patch.object(ingest_module._SeriesStorer, "_store_one", store_one), \
            mock.patch.object(ingest_module, "read_and_group", read_and_group), \
            mock.patch.object(ingest_reading, "_kept_staged", kept_staged), \
            mock.patch.object(ingest_reading, "die_with_parent", reader_start), \
            mock.patch.object(ingest_module, "die_with_parent", reader_start):
        before = os.times()
        start, cpu = time.perf_counter(), time.process_time()
        ingest_module.ingest_directory(engine, home, folder, actor="bench", workers=workers)
        end, parent_cpu = time.perf_counter(), time.process_time() - cpu
        after = os.times()
    engine.dispose()
    readers = [tuple(map(float, f.read_text().split())) for f in marks_dir.iterdir()]
    before_reading = marks["cpu before reading"] - cpu
    for f in marks_dir.iterdir():
        f.unlink()
    return {
        "wall: start to reading (records, file list)": marks["reading"] - start,
        "wall: reading to the readers' start (fork)": max(r[0] for r in readers) - marks["reading"],
        "wall: to the first file read": marks["first file"] - start,
        "wall: first to last file read": marks["last file"] - marks["first file"],
        "wall: last file read to the end (last center stored, run record)": end - marks["last file"],
        "wall: whole ingest": end - start,
        "parent CPU: before reading": before_reading,
        "parent CPU: store phase": store[1],
        "parent CPU: the rest (results, grouping, run record)": parent_cpu - store[1] - before_reading,
        "parent wall in the store phase (CPU + waiting on flushes)": store[0],
        "readers' CPU, all": (after.children_user + after.children_system
                              - before.children_user - before.children_system),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=25)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctstudy-bench-") as tmp:
        folder = Path(tmp) / "in"
        n = write_study_folder(folder, args.series, args.slices, 256)
        files = sorted(folder.rglob("*.dcm"))
        print(f"{n} CT files of 256 x 256, one process, load average {os.getloadavg()[0]:.1f}")
        runs: dict[str, list[float]] = defaultdict(list)
        for r in range(args.repeats):
            stage = Path(tmp) / f"stage{r}"
            stage.mkdir()
            for step, seconds in time_steps(files, stage).items():
                runs[step].append(seconds)
            start = time.perf_counter()
            for path in files:
                pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding the pixels is the point
            runs["NAIVE"].append(time.perf_counter() - start)
        ms = {step: 1000 * statistics.median(values) / n for step, values in runs.items()}
        naive = ms.pop("NAIVE")
        for step, value in ms.items():
            print(f"{step:40s} {value:6.3f} ms/file")
        total = sum(v for step, v in ms.items() if not step.startswith(" "))
        print(f"{'sum (one process)':40s} {total:6.3f} ms/file\n{'naive dcmread + pixel_array':40s} {naive:6.3f} "
              f"ms/file: the reader's steps cost {total / naive:.2f} x the naive read "
              f"(load average now {os.getloadavg()[0]:.1f})")

        splits: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in range(args.repeats):
            stage = Path(tmp) / f"reader{r}"
            stage.mkdir()
            splits["reader (_read_and_stage)"].append(reader_cpu(files, stage, Path(tmp) / "archive"))
            splits["naive dcmread + pixel_array"].append(naive_cpu(files))
        for name, values in splits.items():
            user = 1000 * statistics.median(u for u, _ in values) / n
            kernel = 1000 * statistics.median(k for _, k in values) / n
            print(f"{name:40s} user {user:6.3f} + kernel {kernel:6.3f} ms/file (CPU, median of {args.repeats})")
        per_series = statistics.median(store_cpu_per_series(folder, Path(tmp) / f"home{r}")
                                       for r in range(args.repeats))
        print(f"{'store phase, per series':40s} {1000 * per_series:6.2f} ms CPU ({args.series} series: "
              f"{per_series * args.series:.2f} s; load average now {os.getloadavg()[0]:.1f})")

        marks_dir = Path(tmp) / "marks"
        marks_dir.mkdir()
        phases: dict[str, list[float]] = defaultdict(list)
        for r in range(args.repeats):
            for phase, seconds in ingest_phases(folder, Path(tmp) / f"phases{r}", marks_dir).items():
                phases[phase].append(seconds)
        print(f"default ingest (2 readers), its phases, median of {args.repeats} "
              f"(load average now {os.getloadavg()[0]:.1f}):")
        for phase, values in phases.items():
            print(f"  {phase:68s} {statistics.median(values):6.3f} s")


if __name__ == "__main__":
    main()
