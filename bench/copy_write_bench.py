"""What writing the archive copies costs the kernel, apart from ingest's code.

Each default ingest writes one new file per DICOM file (its de-identified copy, `os.open` + `os.writev` of the
header and the Pixel Data element). Prints, round by round (each round a fresh folder, removed after it): the
wall and the kernel and user CPU milliseconds a file of writing N new files of SIZE bytes that way, beside the
disk, in a folder of the data home's filesystem (FOLDER) and, where /dev/shm exists, in memory (tmpfs). With
`--ingests K`: K default ingests (2 readers) of the ingest bench's 1,000 files in a row in this process, each
with the readers' user and kernel CPU and the naive loop after it: how the kernel's part moves from one ingest
to the next while the naive loop, which writes nothing, does not.

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
            shutil.rmtree(home.root)
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
    for r in range(args.rounds):
        for name, parent in places.items():
            folder = Path(tempfile.mkdtemp(prefix="ctstudy-copy-write-", dir=parent))
            try:
                wall, kernel, user = write_round(folder, args.files, args.size)
            finally:
                shutil.rmtree(folder)
            print(f"round {r + 1} {name:5s}: {wall:.3f} ms wall, kernel {kernel:.3f} + user {user:.3f} ms CPU a file",
                  flush=True)


if __name__ == "__main__":
    main()
