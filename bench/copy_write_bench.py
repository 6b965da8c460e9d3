"""What creating the archive copies costs the kernel, apart from ingest's code, and what makes it vary.

Each default ingest creates one new file per DICOM file (its de-identified copy, `os.open` + `os.writev` of
the header and the Pixel Data element). Prints, round by round, the wall and the kernel and user CPU
milliseconds a file of creating N new files of SIZE bytes that way, in a folder of the data home's filesystem
(FOLDER) and, where /dev/shm exists, in memory (tmpfs). Every round's files stay until the end.

On ext4 mounted without a journal (this machine's disk; `/sys/fs/ext4/<device>/journal_task` empty), a new
file does not take an inode freed in the last minute, or in the last six while its inode table block is
still dirty: the inode allocator reads each free inode's deletion time and steps past the recent ones
(`recently_deleted` in the kernel's fs/ext4/ialloc.c). After many deletions on the disk, creating a file
then costs a scan past them: `perf record -g` of a loop creating 3,000 such files in that state spent 63 %
of its samples in `recently_deleted` and the buffer lookups under it, 1 % copying the bytes. How many
recently freed inodes a new file meets depends on where the allocator places it, so the rounds' figures
move with what was deleted on the disk in the minutes before (0.07 to 1.0 ms of kernel CPU a file here)
while tmpfs stays put. An ingest into a study's archive deletes nothing (its staged copies are renamed into
the archive); a bench or a test that removes each run's folder adds to what the next run steps past.

With `--ingests K`: K default ingests (2 readers) of the ingest bench's 1,000 files in a row in this process,
each into a home kept until the end, with the readers' user and kernel CPU and the naive loop after each.

Usage: .venv/bin/python bench/copy_write_bench.py [FOLDER] [--files 1000] [--size 132584] [--rounds 5]
       .venv/bin/python bench/copy_write_bench.py [FOLDER] --ingests 10
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def write_round(folder: Path, files: int, size: int) -> tuple[float, float, float]:
    """(wall, kernel CPU, user CPU) milliseconds a file of writing `files` new files of `size` bytes in `folder`."""
    header, pixels = os.urandom(min(1500, size)), memoryview(os.urandom(max(0, size - 1500)))
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for n in range(files):
        fd = os.open(folder / f"{n}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.writev(fd, [header, pixels])
        finally:
            os.close(fd)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return (1000 * wall / files, 1000 * (after.ru_stime - before.ru_stime) / files,
            1000 * (after.ru_utime - before.ru_utime) / files)


def _report(name: str, wall: float, kernel: float, user: float) -> None:
    print(f"{name:38s}: {wall:.3f} ms wall, kernel {kernel:.3f} + user {user:.3f} ms CPU a file", flush=True)


def ingests_in_a_row(parent: Path, count: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import pydicom
    from ingest_bench import write_study_folder

    from registry.db.engine import make_engine, upgrade
    from registry.home import Home
    from registry.ingest.directory import ingest_directory

    work = Path(tempfile.mkdtemp(prefix="ctstudy-copy-write-", dir=parent))
    try:
        write_study_folder(work / "in", 25, 40, 256)
        files = sorted((work / "in").rglob("*.dcm"))
        for n in range(count):
            home = Home.resolve(work / f"home{n}")
            home.ensure()
            upgrade(home.db_url)
            engine = make_engine(home.db_url)
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            ingest_directory(engine, home, work / "in", actor="bench", workers=2)
            wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
            engine.dispose()
            start = time.perf_counter()
            for path in files:
                pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding the pixels is the point
            naive = time.perf_counter() - start
            print(f"ingest {n + 1}: {wall:.2f} s wall, readers' CPU user {after.ru_utime - before.ru_utime:.2f} s + "
                  f"kernel {after.ru_stime - before.ru_stime:.2f} s; naive loop {naive:.2f} s "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path(tempfile.gettempdir()),
                        help="a folder on the data home's filesystem (default: the temporary folder)")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=132584, help="bytes a file (the bench's 256 x 256 copies)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ingests", type=int, default=0, help="K default ingests in a row instead")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    print(f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.ingests:
        ingests_in_a_row(args.folder, args.ingests)
        return
    places = {"disk": args.folder, **({"tmpfs": Path("/dev/shm")} if Path("/dev/shm").is_dir() else {})}
    folders = []
    try:
        for r in range(args.rounds):
            for name, parent in places.items():
                folders.append(Path(tempfile.mkdtemp(prefix="ctstudy-copy-write-", dir=parent)))
                _report(f"round {r + 1} {name}", *write_round(folders[-1], args.files, args.size))
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
